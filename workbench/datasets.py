"""Datasets: the cases an experiment runs on, from CSV, JSONL, Parquet, a DataFrame or a list of dicts.

Each case has a stable id (an id column, or a hash of its content) so results, caches and resumed runs
line up across reorderings. Errors name the file, the row and the field, and say what to do.

CSV, TSV, JSON and JSONL are read with the standard library, strictly: a row with more or fewer fields than the
header is refused (naming the file, the line and the fields), never padded or cut. pandas is imported only for
Parquet and DataFrames, so loading a spec and its cases stays light.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

ID_COLUMNS = ("id", "case_id")


@dataclass(frozen=True)
class Case:
    """One row of a dataset: its id, its variables (every column) and the expected answer, if any."""

    id: str
    vars: Mapping[str, Any]
    expected: Any = None
    row: int | None = None  # 1-based line/row number in the source file, for error messages

    def where(self, source: str | None = None) -> str:
        loc = f"case {self.id!r}"
        if self.row is not None:
            loc += f" (row {self.row}" + (f" of {source})" if source else ")")
        return loc


@dataclass
class Dataset:
    name: str
    cases: list[Case]
    source: str | None = None  # path (as given) or "DataFrame"/"inline"
    sha256: str = ""  # hash of the cases' content, for provenance
    columns: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[Case]:
        return iter(self.cases)

    def __getitem__(self, i: int) -> Case:
        return self.cases[i]

    def head(self, k: int) -> Dataset:
        _check_count("head", k)
        return self._subset(self.cases[:k], f"head({k})")

    def sample(self, n: int, seed: int = 0) -> Dataset:
        """A reproducible random sample of ``n`` cases (kept in dataset order)."""
        _check_count("sample", n)
        if n >= len(self.cases):
            return self
        picked = sorted(random.Random(seed).sample(range(len(self.cases)), n))
        return self._subset([self.cases[i] for i in picked], f"sample({n}, sample_seed={seed})")

    def _subset(self, cases: list[Case], how: str) -> Dataset:
        return Dataset(self.name, cases, f"{self.source} | {how}", _hash_cases(cases), self.columns)

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        # the id column is shown once, as case_id (not again under its own name)
        return pd.DataFrame([{"case_id": c.id, **{k: v for k, v in c.vars.items()
                                                  if not (k in ("id", "case_id") and str(v) == c.id)}}
                             for c in self.cases])

    def _repr_html_(self) -> str:
        head = self.to_frame().head(10).to_html(index=False, escape=True)
        return f"<p><b>Dataset {self.name}</b>: {len(self)} cases from {self.source}</p>{head}"


def _check_count(what: str, n: Any) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise DataError(f"{what}({n!r}): give a whole number of cases, 1 or more.")


# ----------------------------------------------------------------------------------------------- loading


def load_dataset(
    source: str | Path | pd.DataFrame | Sequence[Mapping[str, Any]],
    *,
    id_column: str | None = None,
    expected_column: str = "expected",
    name: str | None = None,
    base_dir: str | Path | None = None,
) -> Dataset:
    """Load cases from a CSV/JSONL/JSON/Parquet file, a DataFrame, or a list of dicts.

    ``id_column``: the column holding case ids (default: ``id`` or ``case_id`` if present, else a stable hash
    of the row). ``expected_column``: the expected answer (optional). Relative paths resolve against
    ``base_dir`` (an experiment file's folder).
    """
    if is_dataframe(source):
        rows = _frame_rows(source)
        return _build(rows, id_column, expected_column, name or "dataframe", "DataFrame", first_row=1)
    if isinstance(source, (list, tuple)):
        rows = [dict(r) for r in source]
        for i, r in enumerate(rows, 1):
            if not isinstance(r, Mapping):
                raise DataError(f"Inline dataset item {i} is {type(r).__name__}, not a mapping of column -> value.")
        return _build(list(enumerate(rows, 1)), id_column, expected_column, name or "inline", "inline", first_row=1)
    path = Path(source)
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    if not path.is_file():
        raise DataError(f"Dataset file {path} does not exist. Check the path (relative paths are resolved from "
                        f"{Path(base_dir) if base_dir else Path.cwd()}).")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    readers = {".csv": _read_csv, ".tsv": _read_csv, ".jsonl": _read_jsonl, ".ndjson": _read_jsonl,
               ".json": _read_json, ".parquet": _read_parquet}
    reader = readers.get(suffix.lower())
    if reader is None:
        raise DataError(f"{path}: unsupported dataset format {suffix!r}; use .csv, .tsv, .jsonl, .json or .parquet.")
    rows = reader(path)
    return _build(rows, id_column, expected_column, name or path.stem, str(source), first_row=None)


def is_dataframe(value: Any) -> bool:
    """Whether ``value`` is a pandas DataFrame - without importing pandas (if it is not loaded, it is not one)."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(value, pd.DataFrame)


def _frame_rows(df: pd.DataFrame) -> list[tuple[int, dict[str, Any]]]:
    records = df.to_dict(orient="records")
    return [(i, {str(k): _clean(v) for k, v in r.items()}) for i, r in enumerate(records, 1)]


def _clean(v: Any) -> Any:
    # pandas gives NaN for empty cells and numpy scalars for numbers; keep plain JSON-able Python values
    if v is None:
        return None
    if isinstance(v, float) and v != v:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            return v.item()
        except (ValueError, AttributeError):
            return v.tolist() if hasattr(v, "tolist") else v
    return v


def _read_csv(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Rows keyed by the header, each with the line it starts on. Strings stay strings ("007" is not 7); an
    empty cell is an empty string; blank lines are skipped; a row whose field count differs from the header's
    is refused - a missing comma or an unquoted comma, never a case to guess at."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    start = 1  # the line the current row starts on (a quoted field may span lines)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter, strict=True)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path} is empty: a CSV dataset needs a header row and at least one case.")
            _check_header(path, header)
            rows, start = [], reader.line_num + 1
            for fields in reader:
                if fields:  # a blank line
                    if len(fields) != len(header):
                        raise DataError(_field_count_message(path, start, fields, header, delimiter))
                    rows.append((start, dict(zip(header, fields))))
                start = reader.line_num + 1
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}). Save the file as UTF-8.") from None
    except csv.Error as e:
        raise DataError(f"{path}, row {start}: cannot parse CSV ({e}). Check the quoting: a field that contains "
                        f"a quote, a comma or a line break goes in double quotes, with quotes inside doubled.") \
            from None
    return rows


def _check_header(path: Path, header: list[str]) -> None:
    empty = [i for i, name in enumerate(header, 1) if not name.strip()]
    if empty:
        raise DataError(f"{path}: the header has {len(empty)} empty column name(s) (column {empty[0]}); name "
                        "every column.")
    repeated = sorted({n for n in header if header.count(n) > 1})
    if repeated:
        raise DataError(f"{path}: the header names column {repeated[0]!r} more than once; column names must be "
                        "unique.")


def _field_count_message(path: Path, line: int, fields: list[str], header: list[str], delimiter: str) -> str:
    sep = "tab" if delimiter == "\t" else "comma"
    if len(fields) < len(header):
        missing = ", ".join(header[len(fields):])
        return (f"{path}, row {line}: {len(fields)} field(s), but the header has {len(header)} "
                f"({', '.join(header)}); missing: {missing}. Add the missing field(s) (an empty one is just a "
                f"{sep}), or quote a value that contains a line break.")
    return (f"{path}, row {line}: {len(fields)} fields, but the header has {len(header)} ({', '.join(header)}). "
            f"A value that contains a {sep} must be in double quotes (\"like{',' if sep == 'comma' else ''} "
            f"this\"), or the header is missing a column.")


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {lineno}: not valid JSON ({e.msg} at column {e.colno}). "
                                f"Each line must be one JSON object.") from e
            if not isinstance(obj, dict):
                raise DataError(f"{path}, line {lineno}: expected a JSON object {{...}}, got {type(obj).__name__}.")
            rows.append((lineno, obj))
    return rows


def _read_json(path: Path) -> list[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}).") from e
    if isinstance(data, dict) and isinstance(data.get("cases"), list):
        data = data["cases"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of objects (or {{\"cases\": [...]}}).")
    for i, obj in enumerate(data, 1):
        if not isinstance(obj, dict):
            raise DataError(f"{path}: item {i} is {type(obj).__name__}, not an object.")
    return list(enumerate(data, 1))


def _read_parquet(path: Path) -> list[tuple[int, dict[str, Any]]]:
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except Exception as e:
        raise DataError(f"{path}: cannot read Parquet: {e}") from e
    return _frame_rows(df)


def _content_id(row: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _hash_cases(cases: Iterable[Case]) -> str:
    h = hashlib.sha256()
    for c in cases:
        h.update(json.dumps({"id": c.id, "vars": c.vars}, sort_keys=True, default=str).encode())
        h.update(b"\n")
    return h.hexdigest()


def _build(rows: list[tuple[int, dict[str, Any]]], id_column: str | None, expected_column: str,
           name: str, source: str, first_row: int | None) -> Dataset:
    if not rows:
        raise DataError(f"Dataset {source} has no cases.")
    columns = list(dict.fromkeys(k for _, r in rows for k in r))
    if id_column is None:
        id_column = next((c for c in ID_COLUMNS if c in columns), None)
    elif id_column not in columns:
        raise DataError(f"{source}: id column {id_column!r} not found. Columns: {', '.join(columns)}.")
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for rowno, row in rows:
        where = f"{source}, row {rowno}"
        if id_column:
            raw = row.get(id_column)
            if raw is None or str(raw).strip() == "":
                raise DataError(f"{where}: field {id_column!r} (the case id) is empty. Give every case an id.")
            cid = str(raw).strip()
        else:
            cid = _content_id(row)
            n = seen.get(cid)
            if n is not None:  # identical rows: keep both, distinguish them stably by occurrence
                cid = f"{cid}-{sum(1 for c in cases if c.id.startswith(cid))}"
        if cid in seen and id_column:
            raise DataError(f"{where}: duplicate case id {cid!r} (first seen on row {seen[cid]}). Ids must be unique.")
        seen.setdefault(cid, rowno)
        bad = [k for k in row if not isinstance(k, str) or not k.isidentifier()]
        if bad:
            raise DataError(f"{source}: column name {bad[0]!r} cannot be used in templates; use letters, digits "
                            f"and underscores (e.g. {_identifier(bad[0])!r}).")
        cases.append(Case(cid, dict(row), row.get(expected_column), rowno))
    return Dataset(name, cases, source, _hash_cases(cases), columns)


def _identifier(name: Any) -> str:
    s = "".join(ch if ch.isalnum() else "_" for ch in str(name)).strip("_") or "column"
    return s if not s[0].isdigit() else f"c_{s}"
