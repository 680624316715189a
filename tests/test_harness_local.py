"""One real evaluation on the embedded model, and `workbench eval` from the shell."""

import pytest

from workbench.examples import example_path, load_example
from workbench.harness import run

pytestmark = pytest.mark.local_model


def test_demo_variants_make_a_visible_difference_on_the_local_model(tmp_path):
    exp = load_example().replace(sample=6, seed=1)
    res = run(exp, out=tmp_path / "run", cache=tmp_path / "c.sqlite", progress=False)
    assert len(res) == 18 and res.n_errors == 0
    df = res.df
    assert (df["system_fingerprint"].str.startswith("fp_llamacpp")).all()
    assert (df["completion_tokens"] > 0).all() and (df["cost_usd"] == 0).all()
    schema = df[df["variant"] == "json-schema"]
    assert schema["parsed"].notna().all()  # grammar-constrained output always parses
    summary = res.summary().set_index("variant")
    assert summary.loc["json-schema", "mean"] > summary.loc["bare", "mean"]


def test_eval_cli_dry_run_and_run(run_cli, tmp_path):
    dry = run_cli("eval", "--dry-run", "--sample", "3")
    assert dry.returncode == 0, dry.stderr
    assert "sentiment-demo: 9 calls" in dry.stdout and "estimated cost: up to $0\n" in dry.stdout  # free, said so
    out = run_cli("eval", str(example_path()), "--sample", "2", "--out", str(tmp_path / "r"), "-q",
                  "--export", "jsonl")
    assert out.returncode == 0, out.stderr
    assert "label (pass rate with 95% CI)" in out.stdout and "json-schema" in out.stdout
    assert "spent $0" in out.stdout and "a free model" in out.stdout  # the headline: scores, spend
    assert (tmp_path / "r" / "results.jsonl").exists() and (tmp_path / "r" / "results.sqlite").exists()


def test_eval_cli_reports_a_bad_spec(run_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ndataset: {path: nowhere.csv}\nvariants: [{name: v}]\n")
    out = run_cli("eval", str(bad))
    assert out.returncode == 1 and "nowhere.csv does not exist" in out.stderr and "Traceback" not in out.stderr
