"""The fault scenario of the run ledger (issue #10): nothing lost, nothing paid twice, whatever happens.

One `workbench eval` of 2 variants x N cases against a loopback fake server whose quota the harness is not told
(a 429 storm until it paces itself), with 5% HTTP 500s, while:

1. the first process is killed with SIGKILL after ~15% of the cells;
2. two processes are started together on the same run folder (a resume and a concurrent second process);
3. one of them is killed with SIGKILL after ~50%; the other finishes the run;
4. a last run of the same command must find nothing to do.

Printed: cells, distinct cells, errors, cells lost, calls paid (answered 200 by the server), calls paid beyond
the cell count, and who paid them again: answers in flight at a kill (the only allowed re-payment) or a second
process (must be 0). Each payment is attributed to a process by its TCP client port (the benchmark watches each
child's sockets in /proc).

    .venv/bin/python benchmarks/bench_faults.py [--cases 500] [--rpm 1200] [--error-rate 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import yaml  # noqa: E402
from _server import fake_server  # noqa: E402


def _ports_of(pid: int) -> set[int]:
    """Local TCP ports of a process's sockets (from /proc: its fds' socket inodes, matched in /proc/net/tcp)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return set()
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[9] in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    return ports


class Children:
    """The `workbench eval` processes of the scenario, and which client ports each one used."""

    def __init__(self, workdir: Path, env: dict[str, str], spec: Path, run_dir: Path):
        self.workdir, self.env, self.spec, self.run_dir = workdir, env, spec, run_dir
        self.procs: dict[str, subprocess.Popen] = {}
        self.port_owner: dict[int, str] = {}
        self.kills: dict[str, float] = {}

    def start(self, name: str) -> None:
        cmd = [sys.executable, "-m", "workbench", "eval", str(self.spec), "--out", str(self.run_dir), "-q"]
        self.procs[name] = subprocess.Popen(cmd, cwd=self.workdir, env=self.env, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, text=True)

    def watch(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is None:
                for port in _ports_of(p.pid):
                    self.port_owner.setdefault(port, name)

    def wait_for(self, stored: int, timeout: float = 600) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline and stored_cells(self.run_dir) < stored:
            self.watch()
            if all(p.poll() is not None for p in self.procs.values()):
                return
            time.sleep(0.02)

    def kill(self, name: str) -> None:
        self.watch()
        self.procs[name].send_signal(signal.SIGKILL)
        self.kills[name] = time.time()
        self.procs[name].wait()

    def finish(self, name: str, timeout: float = 900) -> tuple[int, str, str]:
        p = self.procs[name]
        deadline = time.time() + timeout
        while p.poll() is None and time.time() < deadline:
            self.watch()
            time.sleep(0.05)
        out, err = p.communicate(timeout=60)
        return p.returncode, out, err


def stored_cells(run_dir: Path) -> int:
    try:
        with sqlite3.connect(run_dir / "results.sqlite", timeout=5) as c:
            return c.execute("SELECT COUNT(*) FROM cells WHERE record IS NOT NULL").fetchone()[0]
    except sqlite3.Error:
        return 0


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=500, help="cases (x 2 variants = cells)")
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--rpm", type=int, default=1200, help="the server's quota (the harness is not told)")
    ap.add_argument("--error-rate", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    n_cells = 2 * args.cases
    print(f"fault scenario: {n_cells} cells, server quota {args.rpm} RPM (not told to the harness), "
          f"{args.error_rate:.0%} HTTP 500s, {args.latency * 1000:.0f} ms latency, concurrency {args.concurrency}",
          flush=True)
    with fake_server(latency=args.latency, rpm=args.rpm, error_rate=args.error_rate) as url, \
            tempfile.TemporaryDirectory() as tmp:
        root = url.rsplit("/v1", 1)[0]
        work = Path(tmp)
        (work / "workbench.toml").write_text(
            f'[profiles.bench]\nbackend = "openai"\nbase_url = "{url}"\nauth = "none"\nmodel = "gpt-4o-mini"\n')
        rows = [{"id": f"c{i:05d}", "text": f"Question number {i}: what is {i} plus {i}?"} for i in range(args.cases)]
        spec = {"name": "faults", "dataset": {"rows": rows}, "targets": ["bench"], "concurrency": args.concurrency,
                "variants": [{"name": "a", "user": "{{ text }}", "params": {"max_tokens": 16}},
                             {"name": "b", "system": "Answer briefly.", "user": "{{ text }}",
                              "params": {"max_tokens": 16}}]}
        (work / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        env = {**os.environ, "WORKBENCH_HOME": str(work / "home")}
        kids = Children(work, env, work / "spec.yaml", work / "run")
        t0 = time.time()

        kids.start("first")
        kids.wait_for(int(0.15 * n_cells))
        in_flight_1 = get(f"{root}/_fake/stats")["in_flight"]
        kids.kill("first")
        print(f"  kill -9 of the first process at {stored_cells(kids.run_dir)} stored cells "
              f"({in_flight_1} calls in flight at the server)", flush=True)

        kids.start("resume")
        kids.start("second")
        kids.wait_for(int(0.5 * n_cells))
        in_flight_2 = get(f"{root}/_fake/stats")["in_flight"]
        kids.kill("resume")
        print(f"  kill -9 of the resumed process at {stored_cells(kids.run_dir)} stored cells "
              f"({in_flight_2} calls in flight at the server); the concurrent second process goes on", flush=True)
        code, out, err = kids.finish("second")
        print(f"  second process: exit {code}; {out.strip().splitlines()[0] if out.strip() else err.strip()[-300:]}",
              flush=True)
        kids.start("last")
        code_last, out_last, err_last = kids.finish("last")
        wall = time.time() - t0
        first_line = out_last.strip().splitlines()[0] if out_last.strip() else err_last.strip()[-300:]
        print(f"  last run of the same command: exit {code_last}; {first_line}", flush=True)

        stats = get(f"{root}/_fake/stats")
        payments = get(f"{root}/_fake/payments")["payments"]
        with sqlite3.connect(kids.run_dir / "results.sqlite") as c:
            rows_n = c.execute("SELECT COUNT(*) FROM cells").fetchone()[0]
            distinct = c.execute("SELECT COUNT(DISTINCT case_id || '/' || variant) FROM cells "
                                 "WHERE state = 'done'").fetchone()[0]
            errors = c.execute("SELECT COUNT(*) FROM cells WHERE outcome = 'error'").fetchone()[0]

    by_key: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for key, port, t in payments:
        by_key[key].append((kids.port_owner.get(port, "?"), t))
    after_kill = by_other = 0
    for pays in by_key.values():
        pays.sort(key=lambda x: x[1])
        for i, (_who, _t) in enumerate(pays[1:], start=1):
            earlier = pays[:i]
            # allowed: an earlier payment by a process that was killed, made shortly before its kill
            if any(w in kids.kills and kids.kills[w] - 2.0 - args.latency <= tt <= kids.kills[w] for w, tt in earlier):
                after_kill += 1
            else:
                by_other += 1
    paid = len(payments)
    statuses = stats["chat_status_counts"]
    print(f"cells {n_cells}; ledger rows {rows_n}; distinct cells done {distinct}; errors {errors}; "
          f"lost {n_cells - distinct}")
    print(f"calls paid {paid}; paid beyond the cell count {paid - n_cells}: {after_kill} in flight at a kill "
          f"(2 kills, concurrency {args.concurrency}: at most {2 * args.concurrency}), {by_other} by a second process")
    unattributed = sum(1 for _k, port, _t in payments if port not in kids.port_owner)
    print(f"server answers: {statuses.get('200', 0)} x 200, {statuses.get('429', 0)} x 429, "
          f"{statuses.get('500', 0)} x 500; payments not attributed to a process: {unattributed}; wall {wall:.1f} s")


if __name__ == "__main__":
    main()
