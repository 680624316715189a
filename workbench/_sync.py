"""Run async code from sync code - in a script, and in Jupyter, where the kernel's event loop is already running.

One helper for the whole package (the harness's ``run``, scorers' ``score``, widgets): without a running loop
it is ``asyncio.run``; inside one (a notebook cell) the coroutine runs on its own loop in a helper thread, and
its exception, KeyboardInterrupt included, is re-raised in the caller's thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(coro: Coroutine[Any, Any, T], *, thread_name: str = "workbench-async") -> T:
    """Run ``coro`` to completion and return its result, whether or not this thread has a running loop."""
    if not in_running_loop():
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coro)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=target, name=thread_name, daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]
