"""Serve a :class:`~workbench.testing.FakeBackend` over real HTTP on loopback (benchmarks, other processes)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator

import httpx2

from .backend import FakeBackend, FakeEventStream, ServerError, request_key


def _json_or_none(body: bytes):
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


class FakeServer:
    """Serve a :class:`FakeBackend` over real HTTP on 127.0.0.1 (for benchmarks and out-of-process clients).

    A small asyncio HTTP/1.1 server with keep-alive; latency is an ``asyncio.sleep``, so concurrent requests
    overlap as they would against a real service. ``python -m workbench.testing --port 8999 --latency 0.05
    --rpm 1200`` runs one from the shell. ``GET /_fake/stats`` answers the backend's counters (statuses, calls
    paid and paid twice) and the calls in flight, for benchmarks that kill their clients.
    """

    def __init__(self, backend: FakeBackend, host: str = "127.0.0.1", port: int = 0):
        self.backend, self.host, self.port = backend, host, port
        self._server: asyncio.base_events.Server | None = None
        self.in_flight = 0  # requests answered but not yet delivered (their latency is running)
        self._in_flight_keys: dict[str, int] = {}
        self.payments: list[tuple[str, int, float]] = []  # (request_key, client port, time) of each chat 200
        self.first_chat_at: float | None = None  # time.time() of the first chat request since start / reset
        self.first_request_at: float | None = None  # ... and of the first API request of any kind (a preflight)

    @staticmethod
    def _write(writer: asyncio.StreamWriter, status: int, content: bytes, headers=None, reason: str = "OK") -> None:
        out = [f"HTTP/1.1 {status} {reason}"]
        for k, v in (headers or {"content-type": "application/json"}).items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                out.append(f"{k}: {v}")
        out.append(f"content-length: {len(content)}")
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + content)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    async def start(self) -> FakeServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        async with self._server:
            await self._server.serve_forever()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def _fake_endpoint(self, target: str) -> dict:
        if target.startswith("/_fake/payments"):
            return {"payments": self.payments}
        if target.startswith("/_fake/reset"):  # a benchmark between two runs
            self.payments, self.first_chat_at, self.first_request_at = [], None, None
            self.backend.reset_counters()
            return {"reset": True}
        return {**self.backend.stats(), "in_flight": self.in_flight, "in_flight_keys": sorted(self._in_flight_keys),
                "first_chat_at": self.first_chat_at, "first_request_at": self.first_request_at}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_port = peer[1] if peer else 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", 0) or 0))
                if self.first_chat_at is None and "chat/completions" in target:
                    self.first_chat_at = time.time()
                if self.first_request_at is None and not target.startswith("/_fake/"):
                    self.first_request_at = time.time()
                if target.startswith("/_fake/"):
                    self._write(writer, 200, json.dumps(self._fake_endpoint(target)).encode())
                    await writer.drain()
                    continue
                request = httpx2.Request(
                    method, f"http://{self.host}:{self.port}{target}", headers=headers, content=body
                )
                try:
                    delay, response = self.backend.respond(request)
                except httpx2.TimeoutException:
                    await asyncio.sleep(3600)  # a timeout fault: never answer
                    return
                except httpx2.TransportError:
                    return  # a connection fault: drop the connection
                chat = response.status_code == 200 and "chat/completions" in target
                key = request_key(_json_or_none(body)) if chat else None
                self.in_flight += 1
                if key:
                    self._in_flight_keys[key] = self._in_flight_keys.get(key, 0) + 1
                    self.payments.append((key, peer_port, time.time()))
                try:
                    if delay:
                        await asyncio.sleep(delay)
                    if isinstance(response.stream, FakeEventStream):
                        await self._write_stream(writer, response)
                    else:
                        self._write(writer, response.status_code, response.content, response.headers,
                                    response.reason_phrase)
                        await writer.drain()
                finally:
                    self.in_flight -= 1
                    if key:
                        self._in_flight_keys[key] -= 1
                        if not self._in_flight_keys[key]:
                            del self._in_flight_keys[key]
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


    @staticmethod
    async def _write_stream(writer: asyncio.StreamWriter, response: httpx2.Response) -> None:
        """A streamed answer over HTTP/1.1: chunked transfer encoding, each event written as it comes."""
        out = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
        out += [f"{k}: {v}" for k, v in response.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection")]
        out.append("transfer-encoding: chunked")
        writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
        async for data in response.stream:
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()


@contextlib.contextmanager
def serve_in_background(backend: FakeBackend) -> Iterator[FakeServer]:
    """A :class:`FakeServer` for ``backend`` on its own event loop in a thread, for the length of the ``with``:
    how a test drives a ``workbench`` subprocess against a fake whose request log it then reads."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fake-server", daemon=True)
    thread.start()
    server = FakeServer(backend)
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(prog="python -m workbench.testing", description="Serve a fake OpenAI/Azure backend.")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=0.05)
    p.add_argument("--rpm", type=int, default=None)
    p.add_argument("--tpm", type=int, default=None)
    p.add_argument("--window", type=float, default=10.0, help="quota window in seconds (Azure: 10 s)")
    p.add_argument("--bucket", action="store_true",
                   help="a token-bucket quota (OpenAI-style) instead of the sliding window")
    p.add_argument("--burst", type=float, default=1.0, help="token bucket: seconds of quota it holds")
    p.add_argument("--no-rate-headers", action="store_true", help="do not send x-ratelimit-* headers")
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction of HTTP 500s")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    backend = FakeBackend(latency=args.latency, seed=args.seed, require_auth=False)
    if args.rpm or args.tpm:
        backend.quota(rpm=args.rpm, tpm=args.tpm, window_s=args.window, bucket=args.bucket, burst_s=args.burst,
                      headers=not args.no_rate_headers)
    if args.error_rate:
        backend.fault_rate(ServerError(500), args.error_rate)

    async def main():
        server = await FakeServer(backend, port=args.port).start()
        print(f"READY {server.base_url}", flush=True)
        await server.serve_forever()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
