"""``make bench``: every benchmark in this folder, one after the other, each in its own process.

Benchmarks are not tests: they print numbers for the notes (ratios against the raw openai SDK measured in the
same run), and these machines are shared and noisy, so nothing here asserts a time. Run one on its own with
``.venv/bin/python benchmarks/bench_<name>.py --help``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    only = set(argv)
    scripts = sorted(p for p in HERE.glob("bench_*.py") if not only or p.stem.removeprefix("bench_") in only)
    if not scripts:
        print(f"no benchmark matches {sorted(only)}; have: "
              f"{', '.join(p.stem.removeprefix('bench_') for p in HERE.glob('bench_*.py'))}", file=sys.stderr)
        return 2
    failed = []
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"=== {script.name}: exit {code}, {time.monotonic() - t0:.1f} s ===", flush=True)
        if code:
            failed.append(script.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
