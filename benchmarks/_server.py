"""Start and stop the loopback fake server (``python -m workbench.testing``) in its own process."""

from __future__ import annotations

import contextlib
import subprocess
import sys


@contextlib.contextmanager
def fake_server(latency: float = 0.05, rpm: int | None = None, tpm: int | None = None, error_rate: float = 0.0,
                window: float = 10.0, bucket: bool = False, burst: float = 1.0, rate_headers: bool = True):
    args = [sys.executable, "-m", "workbench.testing", "--latency", str(latency), "--window", str(window),
            "--burst", str(burst)]
    if bucket:
        args.append("--bucket")
    if not rate_headers:
        args.append("--no-rate-headers")
    if rpm:
        args += ["--rpm", str(rpm)]
    if tpm:
        args += ["--tpm", str(tpm)]
    if error_rate:
        args += ["--error-rate", str(error_rate)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"fake server did not start: {line!r}")
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
