"""The one thread that runs the embedded model, shared fairly by every request of the process.

A llama.cpp context is not thread-safe and holds one conversation at a time (its KV cache), so every call of a
process goes through one worker thread that owns the context. Requests are *jobs*:

- a non-streamed job runs to its end in one go (a batch run sees exactly the old serialised behaviour);
- streamed jobs **take turns**: a job that has not produced its first chunk goes first (prompt processing and
  one token), then the running jobs share the model in time slices of :data:`QUANTUM_S`. Between two slices of
  different jobs the context's state (KV cache, logits, sampler, RNG) is saved and restored, so an interleaved
  stream produces exactly the tokens it would produce alone - four playground cards stream at once instead of
  one after the other.

The worker never waits for a consumer: chunks go into the job's own queue, so a stream read slowly (or never)
blocks no other call. A consumer that closes its stream cancels the job at the next slice.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

QUANTUM_S = 0.15  # a running stream's time slice when others wait; a switch costs about a millisecond


class _End:
    """The last item of a job's queue: what it finished with (``result``) or the exception that stopped it."""

    __slots__ = ("result", "error")

    def __init__(self, result: Any = None, error: BaseException | None = None):
        self.result, self.error = result, error


@dataclass
class _Saved:
    """A stream's share of the context while another job runs: the C state plus llama-cpp-python's view of it."""

    buffer: Any
    size: int
    input_ids: Any
    n_tokens: int
    sampler: Any
    seed: int


class Job:
    """One request to the model. The worker ``emit``s items; the consumer reads them with :meth:`get` (a thread)
    or :meth:`aget` (an event loop: wake-ups come through ``call_soon_threadsafe``, no thread is held)."""

    def __init__(self, start: Callable[[Any], Any], *, stream: bool, loop: asyncio.AbstractEventLoop | None = None):
        self.start = start  # start(llm) -> the result (non-streamed) or an iterator of chunks (streamed)
        self.stream = stream
        self.cancelled = threading.Event()
        self.items: deque[Any] = deque()
        self._cond = threading.Condition()
        self._loop = loop
        self._wake = asyncio.Event() if loop is not None else None
        # worker-side state
        self.chunks: Iterator[dict[str, Any]] | None = None
        self.saved: _Saved | None = None
        self.prompt_tokens = 0
        self.finished = False

    # -- worker side ------------------------------------------------------------------------------------
    def emit(self, item: Any) -> None:
        with self._cond:
            self.items.append(item)
            self._cond.notify_all()
        if self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:  # the consumer's event loop is gone: nobody will read this job
                self.cancelled.set()

    # -- consumer side ----------------------------------------------------------------------------------
    def get(self, timeout: float | None = None) -> Any:
        with self._cond:
            if not self._cond.wait_for(lambda: self.items, timeout):
                raise TimeoutError("the local model did not answer in time")
            return self.items.popleft()

    async def aget(self) -> Any:
        while not self.items:
            self._wake.clear()
            if self.items:
                break
            await self._wake.wait()
        with self._cond:
            return self.items.popleft()

    def cancel(self) -> None:
        self.cancelled.set()


class Worker:
    """The thread that owns one llama.cpp context (``load()`` returns the ``Llama`` object, loading it once)."""

    def __init__(self, load: Callable[[], Any], name: str = "workbench-local-model"):
        self._load = load
        self._name = name
        self._cond = threading.Condition()
        self._new: deque[Job] = deque()  # not started yet: served first
        self._running: deque[Job] = deque()  # streams with chunks still to come, in turn order
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._stopping = False
        self._current: Job | None = None  # whose state is live in the context
        self.switches = 0  # context switches between streams (for tests and benchmarks)

    def submit(self, job: Job) -> Job:
        with self._cond:
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                # (re)start: first use, or a forked child that inherited a thread that does not exist in it
                self._stopping, self._pid = False, os.getpid()
                self._new.clear()
                self._running.clear()
                self._current = None
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            self._new.append(job)
            self._cond.notify_all()
        return job

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    # -- the loop ---------------------------------------------------------------------------------------
    def _next(self) -> Job | None:
        with self._cond:
            while not self._new and not self._running:
                if self._stopping:
                    return None
                self._cond.wait()
            if self._stopping:
                for job in (*self._new, *self._running):
                    job.emit(_End(error=RuntimeError("the local model was closed")))
                return None
            return self._new.popleft() if self._new else self._running.popleft()

    def _others_waiting(self) -> bool:
        with self._cond:
            return bool(self._new or self._running)

    def _loop(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            if job.cancelled.is_set():
                self._drop(job)
                continue
            try:
                llm = self._load()
                self._switch_to(llm, job)
                if not job.stream:
                    job.emit(_End(result=job.start(llm)))
                    job.finished = True
                elif job.chunks is None:
                    self._first_step(llm, job)
                else:
                    self._slice(llm, job)
            except BaseException as e:  # the job's consumer raises it; the worker goes on
                job.finished = True
                job.emit(_End(error=e))
            if not job.finished:
                with self._cond:
                    self._running.append(job)
            elif self._current is job:
                self._current = None

    def _first_step(self, llm: Any, job: Job) -> None:
        """Prompt processing and the first piece of text (the role chunk alone would show nothing)."""
        job.chunks = iter(job.start(llm))
        counted = False
        while True:
            chunk = next(job.chunks, None)
            if not counted:
                job.prompt_tokens = llm.n_tokens  # the prompt is evaluated, the first sampled token not yet
                counted = True
            if chunk is None:
                self._finish(llm, job)
                return
            job.emit(chunk)
            if _has_text_or_end(chunk):
                return

    def _slice(self, llm: Any, job: Job) -> None:
        began = time.perf_counter()
        while not job.cancelled.is_set():
            chunk = next(job.chunks, None)
            if chunk is None:
                self._finish(llm, job)
                return
            job.emit(chunk)
            if time.perf_counter() - began >= QUANTUM_S and self._others_waiting():
                return
        self._drop(job)

    def _finish(self, llm: Any, job: Job) -> None:
        job.finished = True
        job.emit(_End(result={"prompt_tokens": job.prompt_tokens, "evaluated_tokens": llm.n_tokens}))

    def _drop(self, job: Job) -> None:
        job.finished = True
        if job.chunks is not None:
            try:
                job.chunks.close()  # type: ignore[attr-defined]
            except Exception:
                pass
        job.saved = None
        if self._current is job:
            self._current = None
        job.emit(_End(error=RuntimeError("cancelled")))

    # -- sharing the context ----------------------------------------------------------------------------
    def _switch_to(self, llm: Any, job: Job) -> None:
        current = self._current
        if current is job:
            return
        if current is not None and not current.finished and current.chunks is not None:
            current.saved = _save(llm)
            self.switches += 1
        if job.saved is not None:
            _restore(llm, job.saved)
            job.saved = None
        self._current = job


def _has_text_or_end(chunk: dict[str, Any]) -> bool:
    for choice in chunk.get("choices") or []:
        if (choice.get("delta") or {}).get("content") or choice.get("finish_reason"):
            return True
    return False


def _save(llm: Any) -> _Saved:
    import llama_cpp

    size = int(llama_cpp.llama_state_get_size(llm.ctx))
    buffer = (ctypes.c_uint8 * size)()
    written = int(llama_cpp.llama_state_get_data(llm.ctx, buffer, size))
    return _Saved(buffer, written, llm.input_ids[: llm.n_tokens].copy(), llm.n_tokens, llm._sampler, llm._seed)


def _restore(llm: Any, s: _Saved) -> None:
    import llama_cpp

    if int(llama_cpp.llama_state_set_data(llm.ctx, s.buffer, s.size)) != s.size:
        raise RuntimeError("the local model could not restore a stream's state")
    llm.input_ids[: s.n_tokens] = s.input_ids
    llm.n_tokens = s.n_tokens
    # the sampler carries the stream's grammar, penalties and random state; llama-cpp-python keeps the one in use
    llm._sampler = s.sampler
    llm._seed = s.seed
