"""Did a re-run reproduce its original? The stable part of a results table, and the differences in words.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import WorkbenchError
from .manifest import (
    Reproduction,
    load_manifest,
)

if TYPE_CHECKING:  # pragma: no cover
    pass


from .layout import RESULTS_JSONL, load_results

# The columns a re-run must reproduce exactly (times, latencies, request ids and cache flags may differ).
STABLE_COLUMNS = ("case_id", "variant", "target", "repeat", "outcome", "output", "parsed", "prompt_tokens",
                  "completion_tokens", "finish_reason")


STABLE_PREFIXES = ("score.", "passed.", "answer.")


def stable_table(run_dir: str | Path):
    """The part of a run's results table that a re-run must reproduce, in a canonical order."""
    import pandas as pd

    from ..results import Results

    run_dir = Path(run_dir)
    if (run_dir / RESULTS_JSONL).is_file():
        df = Results.from_jsonl(run_dir / RESULTS_JSONL).df
    else:
        res = load_results(run_dir, {})
        df = res.df if res is not None else pd.DataFrame()
    if df.empty:
        return df
    cols = [c for c in STABLE_COLUMNS if c in df.columns]
    cols += sorted(c for c in df.columns if c.startswith(STABLE_PREFIXES))
    keys = ["case_id", "variant", "target", "repeat"]
    return df[cols].sort_values(keys, kind="stable").reset_index(drop=True)


def compare_tables(a, b, limit: int = 10) -> list[str]:
    """Differences between two stable tables, in words (empty: identical)."""
    import pandas as pd

    diffs: list[str] = []
    if list(a.columns) != list(b.columns):
        diffs.append(f"columns differ: {sorted(set(a.columns) ^ set(b.columns))}")
        return diffs
    keys = ["case_id", "variant", "target", "repeat"]
    ka = set(map(tuple, a[keys].astype(str).values)) if len(a) else set()
    kb = set(map(tuple, b[keys].astype(str).values)) if len(b) else set()
    if ka != kb:
        diffs.append(f"{len(ka - kb)} cells only in the original, {len(kb - ka)} only in the re-run")
        return diffs
    for col in a.columns:
        va, vb = a[col], b[col]
        same = (va == vb) | (va.isna() & vb.isna()) if len(a) else pd.Series(dtype=bool)
        for i in list((~same).to_numpy().nonzero()[0])[:limit]:
            row = a.iloc[i]
            diffs.append(f"{row['case_id']}/{row['variant']}/{row['target']}/{row['repeat']}: {col} "
                         f"{_short(va.iloc[i])} -> {_short(vb.iloc[i])}")
    return diffs


def _short(v: Any, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def check_reproduction(original: Path, rerun_dir: Path) -> Reproduction:
    try:
        m = load_manifest(original)
        of = m.run_id
    except WorkbenchError:
        of = original.name
    a, b = stable_table(original), stable_table(rerun_dir)
    if a.empty and b.empty:
        return Reproduction(of_run=of, of_dir=str(original), identical=None, differences=["no results to compare"])
    diffs = compare_tables(a, b)
    return Reproduction(of_run=of, of_dir=str(original), identical=not diffs, differences=diffs)
