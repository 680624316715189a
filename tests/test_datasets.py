import json

import pandas as pd
import pytest

from workbench.datasets import load_dataset
from workbench.errors import DataError


def test_csv_keeps_strings_and_ids(tmp_path):
    f = tmp_path / "cases.csv"
    f.write_text("id,text,expected\n007,hello,x\n008,,y\n")
    ds = load_dataset(f)
    assert [c.id for c in ds] == ["007", "008"]
    assert ds[0].vars["text"] == "hello" and ds[1].vars["text"] == "" and ds[0].expected == "x"
    assert ds[1].row == 3  # header is line 1
    assert len(ds.sha256) == 64 and ds.columns == ["id", "text", "expected"]


def test_jsonl_and_dataframe_and_parquet_agree(tmp_path):
    rows = [{"id": "a", "q": "1+1", "expected": 2}, {"id": "b", "q": "2+2", "expected": 4}]
    jl = tmp_path / "c.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    pq = tmp_path / "c.parquet"
    pd.DataFrame(rows).to_parquet(pq)
    a, b, c = load_dataset(jl), load_dataset(pd.DataFrame(rows)), load_dataset(pq)
    assert [x.vars for x in a] == [x.vars for x in b] == [x.vars for x in c] == rows
    assert a.sha256 == b.sha256 == c.sha256
    assert isinstance(c[0].expected, int)  # numpy scalars become plain Python


def test_derived_ids_are_stable_under_reordering():
    rows = [{"t": "x"}, {"t": "y"}, {"t": "x"}]
    ids = [c.id for c in load_dataset(rows)]
    rev = [c.id for c in load_dataset(list(reversed(rows)))]
    assert len(set(ids)) == 3 and set(ids) == set(rev)


def test_sample_is_reproducible():
    ds = load_dataset([{"id": str(i), "t": i} for i in range(50)])
    assert [c.id for c in ds.sample(10, seed=3)] == [c.id for c in ds.sample(10, seed=3)]
    assert [c.id for c in ds.sample(10, seed=3)] != [c.id for c in ds.sample(10, seed=4)]


def test_bad_jsonl_line_names_file_and_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"id": "a", "t": 1}\n{"id": "b", "t": \n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: not valid JSON"):
        load_dataset(f)


def test_non_object_jsonl_line(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"id": "a"}\n[1, 2]\n')
    with pytest.raises(DataError, match="line 2: expected a JSON object"):
        load_dataset(f)


def test_duplicate_ids_name_both_rows(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("id,t\na,1\nb,2\na,3\n")
    with pytest.raises(DataError, match=r"d.csv, row 4: duplicate case id 'a' \(first seen on row 2\)"):
        load_dataset(f)


def test_empty_id_names_row_and_field(tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("case_id,t\nx,1\n ,2\n")
    with pytest.raises(DataError, match=r"row 3: field 'case_id' \(the case id\) is empty"):
        load_dataset(f)


def test_unknown_id_column_lists_columns(tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("key,t\nx,1\n")
    with pytest.raises(DataError, match="id column 'id_col' not found. Columns: key, t"):
        load_dataset(f, id_column="id_col")


def test_column_names_must_be_usable_in_templates(tmp_path):
    f = tmp_path / "e.csv"
    f.write_text("id,user text\nx,1\n")
    with pytest.raises(DataError, match="'user text' cannot be used in templates.*'user_text'"):
        load_dataset(f)


def test_missing_file_and_unsupported_format(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nope.csv")
    (tmp_path / "x.xlsx").write_text("")
    with pytest.raises(DataError, match="unsupported dataset format '.xlsx'"):
        load_dataset(tmp_path / "x.xlsx")


def test_ragged_csv_is_reported(tmp_path):
    f = tmp_path / "r.csv"
    f.write_text('id,t\na,1\nb,2,3,4\n')
    with pytest.raises(DataError, match=r"r.csv, row 3: 4 fields, but the header has 2 \(id, t\)"):
        load_dataset(f)


def test_empty_and_non_utf8(tmp_path):
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(DataError, match="is empty"):
        load_dataset(tmp_path / "e.csv")
    (tmp_path / "l.csv").write_bytes("id,t\na,caf\xe9\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        load_dataset(tmp_path / "l.csv")
