"""The Batch API path (#15), against the loopback fake of the Files and Batches endpoints (workbench.testing.batch):
split at the limits, merge shuffled output by custom_id, error lines and unrun remainders as error cells, cancel
and expiry keep the finished part, Azure's shape, kill -9 then `workbench batch resume`, and the cache after."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from workbench.batch import BatchLimits, BatchSettings, batch_status, cancel, check_file, resume
from workbench.errors import BatchFileInvalid, BudgetExceeded, ConfigError
from workbench.experiment import Experiment
from workbench.harness import run
from workbench.ledger import RunLedger
from workbench.testing import FakeBackend, HTTPError, PromptFiltered, serve_in_background

FAST = BatchSettings(poll_interval_s=0.001)


def answer(req) -> str:
    """The fake's answer names the case, so a merged answer can be checked against its cell."""
    return "echo " + req.user_text.split()[-1]


def make_exp(n: int, targets=("fake",), name: str = "b") -> Experiment:
    rows = [{"id": f"c{i:05d}", "text": f"case {i}"} for i in range(n)]
    return Experiment(name=name, dataset=rows, variants=[{"name": "v", "user": "{{ text }}"}], targets=list(targets))


def go(exp, provider, out, settings=FAST, **kw):
    kw.setdefault("cache", False)
    kw.setdefault("progress", False)
    return run(exp, providers={"fake": provider}, out=out, mode="batch", batch=settings, **kw)


def check_answers(results) -> None:
    for r in results.records:
        if r.outcome == "ok":
            assert r.output == f"echo {int(r.case_id[1:])}", (r.case_id, r.output)


def test_5000_cells_split_into_2_files_by_a_3000_line_limit(tmp_path):
    fake = FakeBackend(answer)
    res = go(make_exp(5000), fake.provider("openai", batch=True), tmp_path / "run",
             BatchSettings(poll_interval_s=0.001, max_lines=3000))
    assert res.status == "complete" and len(res) == 5000 and res.n_errors == 0
    jobs = list(fake.batches.jobs.values())
    assert sorted(len(j.lines) for j in jobs) == [2000, 3000]
    assert all({ln["body"]["model"] for ln in j.lines} == {"gpt-4o-mini"} for j in jobs)
    assert max(fake.batches.accepted.values()) == 1 and len(fake.batches.accepted) == 5000
    assert fake.chat_requests == []  # nothing went online
    check_answers(res)
    assert {r.batch_id for r in res.records} == {j.id for j in jobs}
    assert sorted(res.info["batch_ids"]) == sorted(j.id for j in jobs)


def test_shuffled_output_is_merged_by_custom_id_and_a_rerun_answers_every_cell_from_the_cache(tmp_path):
    fake = FakeBackend(answer)
    prov = fake.provider("openai", batch=True)
    exp = make_exp(300)
    res = go(exp, prov, tmp_path / "run", cache=tmp_path / "cache.sqlite")
    assert res.status == "complete" and len(res) == 300
    job = next(iter(fake.batches.jobs.values()))
    out = fake.batches.files[job.output_file_id].data.decode().splitlines()
    order = [json.loads(line)["custom_id"] for line in out]
    assert order != [ln["custom_id"] for ln in job.lines] and sorted(order) == sorted(ln["custom_id"] for ln in
                                                                                          job.lines)
    check_answers(res)
    # batch prices: half of what the same tokens cost online
    assert res.info["saving_usd"] == pytest.approx(res.info["batch_cost_usd"])
    again = run(exp, providers={"fake": prov}, out=tmp_path / "online-rerun", cache=tmp_path / "cache.sqlite",
                progress=False)
    assert again.status == "complete" and len(again) == 300
    assert again.info["cache_hits"] == 300 and fake.chat_requests == []
    assert [r.output for r in again.records] == [r.output for r in res.records]


@pytest.mark.parametrize("follow_up", ["batch", "online"])
def test_error_lines_become_error_cells_and_a_follow_up_submits_only_them(tmp_path, follow_up):
    fake = FakeBackend(answer)
    bad = {f"case {i}" for i in (3, 17, 42)}
    fake.fail(HTTPError(400, "invalid_request", "The request is malformed"), times=3,
              when=lambda r: r.user_text in bad)
    prov = fake.provider("openai", batch=True)
    exp = make_exp(60)
    res = go(exp, prov, tmp_path / "run")
    assert res.status == "complete with errors" and res.n_errors == 3
    errs = [r for r in res.records if r.outcome == "error"]
    assert {r.case_id for r in errs} == {"c00003", "c00017", "c00042"}
    assert all(r.error_type == "invalid_request" and "The request is malformed" in r.error_message for r in errs)
    assert len(fake.batches.jobs) == 1
    if follow_up == "batch":
        again = go(exp, prov, tmp_path / "run")
        newest = list(fake.batches.jobs.values())[-1]
        assert {ln["custom_id"] for ln in newest.lines} == {r.cell_key for r in errs}
        assert fake.chat_requests == []
    else:
        again = run(exp, providers={"fake": prov}, out=tmp_path / "run", cache=False, progress=False)
        assert sorted(r.user_text for r in fake.chat_requests) == sorted(bad)
        assert len(fake.batches.jobs) == 1
    assert again.status == "complete" and len(again) == 60 and again.n_errors == 0
    assert max(fake.batches.accepted.values()) == 1 or follow_up == "batch"
    check_answers(again)


def test_a_cancelled_batch_keeps_its_finished_part_and_the_rest_can_follow(tmp_path):
    fake = FakeBackend(answer)
    fake.batches.lines_per_poll = 25
    prov = fake.provider("openai", batch=True)
    exp = make_exp(100)
    first = go(exp, prov, tmp_path / "run", wait=False)  # submitted; one check: validating -> in_progress
    assert first.status == "batch in progress" and len(first) == 0
    resume(tmp_path / "run", providers={"fake": prov}, wait=False, progress=False, cache=False)  # 25 lines run
    res = cancel(tmp_path / "run", providers={"fake": prov}, poll_interval_s=0.001, progress=False, cache=False)
    job = next(iter(fake.batches.jobs.values()))
    assert job.status == "cancelled" and 0 < len(job.results) < 100
    done = [r for r in res.records if r.outcome == "ok"]
    assert len(done) == len(job.results) and len(res) == 100
    cancelled = [r for r in res.records if r.outcome == "error"]
    assert cancelled and all(r.error_type == "batch_cancelled" for r in cancelled)
    check_answers(res)
    again = go(exp, prov, tmp_path / "run")
    newest = list(fake.batches.jobs.values())[-1]
    assert {ln["custom_id"] for ln in newest.lines} == {r.cell_key for r in cancelled}
    assert again.status == "complete" and again.n_errors == 0
    assert max(fake.batches.processed.values()) == 1  # the finished part was never submitted again


def test_an_expired_batch_returns_its_finished_part(tmp_path):
    fake = FakeBackend(answer)
    fake.batches.lines_per_poll = 10
    fake.batches.expire_after(lines=40)
    res = go(make_exp(100), fake.provider("openai", batch=True), tmp_path / "run")
    assert res.status == "complete with errors"
    counts = Counter(r.error_type or r.outcome for r in res.records)
    assert counts == {"ok": 40, "batch_expired": 60}
    assert "expired" in next(r for r in res.records if r.outcome == "error").error_message


def azure(fake: FakeBackend, style: str = "azure"):
    return fake.provider(style, deployments={"chat-batch": "gpt-4o-mini", "big-batch": "gpt-4o"},
                         batch_deployments=["chat-batch", "big-batch"], model="chat-batch")


def test_azure_shape_deployment_in_the_body_one_deployment_per_file_filters_kept(tmp_path):
    fake = FakeBackend(answer)
    fake.fail(PromptFiltered(), times=1, when=lambda r: r.user_text == "case 5")
    fake.batches.deployments = {"chat-batch", "big-batch"}
    exp = make_exp(20, targets=("fake:chat-batch", "fake:big-batch"))
    res = go(exp, azure(fake), tmp_path / "run")
    assert len(res) == 40, res.status
    jobs = list(fake.batches.jobs.values())
    assert sorted({ln["body"]["model"] for ln in j.lines}.pop() for j in jobs) == ["big-batch", "chat-batch"]
    assert all(len({ln["body"]["model"] for ln in j.lines}) == 1 for j in jobs)
    assert {j.endpoint for j in jobs} == {"/chat/completions"}
    assert all(ln["url"] == "/chat/completions" for j in jobs for ln in j.lines)
    paths = {r.path for r in fake.requests if "files" in r.path or "batches" in r.path}
    assert "/openai/files" in paths and "/openai/batches" in paths
    assert all(r.api_version for r in fake.requests if r.path.startswith("/openai/"))
    ok = [r for r in res.records if r.outcome == "ok"]
    assert ok and all(r.content_filter for r in ok)  # Azure's content_filter_results kept
    filtered = [r for r in res.records if r.outcome == "prompt_filtered"]
    assert len(filtered) == 1 and filtered[0].case_id == "c00005" and filtered[0].content_filter
    # Azure always writes an error file, empty when nothing failed: merging it is not an error
    assert all(j.error_file_id for j in jobs)


def test_azure_v1_endpoint_uses_v1_urls(tmp_path):
    fake = FakeBackend(answer)
    res = go(make_exp(10), azure(fake, "azure-v1"), tmp_path / "run")
    assert res.status == "complete" and len(res) == 10
    job = next(iter(fake.batches.jobs.values()))
    assert job.endpoint == "/v1/chat/completions" and job.style == "azure_v1"
    assert any(r.path == "/openai/v1/batches" for r in fake.requests)


def lines(*rows) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def row(cid: str, model: str = "chat-batch", url: str = "/chat/completions"):
    return {"custom_id": cid, "method": "POST", "url": url, "body": {"model": model, "messages": []}}


def test_a_bom_is_refused_before_upload_and_by_the_fake_service():
    data = b"\xef\xbb\xbf" + lines(row("a"), row("b"))
    with pytest.raises(BatchFileInvalid, match="byte-order mark") as e:
        check_file(data, BatchLimits.for_style("azure"), "/chat/completions", name="in.jsonl")
    assert e.value.code == "invalid_json_line" and "in.jsonl" in str(e.value)
    fake = FakeBackend()
    client = azure(fake).client
    f = client.files.create(file=("in.jsonl", data, "application/jsonl"), purpose="batch")
    b = client.batches.create(input_file_id=f.id, endpoint="/chat/completions", completion_window="24h")
    b = client.batches.retrieve(b.id)
    assert b.status == "failed" and b.errors.data[0].code == "invalid_json_line"


@pytest.mark.parametrize("data, code", [
    (lines(row("a"), row("a")), "duplicate_custom_id"),
    (lines(row("a"), row("b", model="big-batch")), "model_mismatch"),
    (lines(row("a", url="/v1/chat/completions")), "url_mismatch"),
    (b"", "empty_file"),
    (b"{not json}\n", "invalid_json_line"),
    (lines(row("a"), row("b"), row("c")), "too_many_tasks"),
])
def test_a_file_breaking_a_rule_is_refused_before_upload_naming_the_line(data, code):
    with pytest.raises(BatchFileInvalid) as e:
        check_file(data, BatchLimits(max_lines=2), "/chat/completions")
    assert e.value.code == code


def test_a_target_not_marked_batch_capable_is_refused_before_anything_is_sent(tmp_path):
    fake = FakeBackend(answer)
    with pytest.raises(ConfigError, match="batch_deployments"):
        go(make_exp(5), fake.provider("azure"), tmp_path / "run")
    assert fake.batches.files == {} and fake.chat_requests == []


def test_the_budget_gate_prices_the_submission_at_batch_rates(tmp_path):
    fake = FakeBackend(answer)
    prov = fake.provider("openai", batch=True)
    exp = make_exp(200).replace(variants=[{"name": "v", "user": "{{ text }}", "params": {"max_tokens": 1000}}])
    from workbench.harness import estimate

    online = estimate(exp, providers={"fake": prov}).usd
    with pytest.raises(BudgetExceeded, match="batch prices"):
        go(exp, prov, tmp_path / "over", budget_usd=online * 0.4)
    assert fake.batches.files == {}
    res = go(exp, prov, tmp_path / "under", budget_usd=online * 0.6)  # over the online price, under the batch one
    assert res.status == "complete"


def test_token_limit_exceeded_at_creation_is_retried_and_nothing_runs_twice(tmp_path):
    fake = FakeBackend(answer)
    fake.batches.fail_create("token_limit_exceeded", times=2)
    res = go(make_exp(30), fake.provider("openai", batch=True), tmp_path / "run")
    assert res.status == "complete" and len(res) == 30
    assert fake.batches.creates == 3 and max(fake.batches.accepted.values()) == 1


def test_a_batch_created_but_not_recorded_is_found_again_not_created_twice(tmp_path):
    """kill -9 between batches.create and the ledger write: the ledger says `uploaded` with no batch id."""
    fake = FakeBackend(answer)
    prov = fake.provider("openai", batch=True)
    go(make_exp(30), prov, tmp_path / "run", wait=False)
    with sqlite3.connect(tmp_path / "run" / "results.sqlite") as db:
        db.execute("UPDATE batches SET state = 'uploaded', batch_id = NULL, status = NULL")
    res = resume(tmp_path / "run", providers={"fake": prov}, poll_interval_s=0.001, progress=False, cache=False)
    assert res.status == "complete" and len(res) == 30
    assert fake.batches.creates == 1 and max(fake.batches.accepted.values()) == 1


def test_batch_status_shows_each_batch_and_its_counts(tmp_path):
    fake = FakeBackend(answer)
    fake.batches.lines_per_poll = 5
    prov = fake.provider("openai", batch=True)
    go(make_exp(20), prov, tmp_path / "run", BatchSettings(poll_interval_s=0.001, max_lines=10, max_polls=2))
    st = batch_status(tmp_path / "run")
    assert len(st.jobs) == 2 and not st.finished
    text = str(st)
    assert all(j.batch_id in text for j in st.jobs) and "in_progress" in text
    assert [j.completed for j in st.jobs] == [5, 5] and st.cells == {"batch": 20}
    assert "<table>" in st._repr_html_()


# --------------------------------------------------------------------------------------- kill -9 and the CLI

TOML = """\
[profiles.fake]
backend = "openai"
base_url = "{base_url}"
api_key_env = "WB_BATCH_KEY"
model = "gpt-4o-mini"
batch = true
"""


def submitted(run_dir: Path) -> list[tuple]:
    db = run_dir / "results.sqlite"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as c:
            return c.execute("SELECT state, batch_id FROM batches").fetchall()
    except sqlite3.OperationalError:
        return []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_kill_9_while_polling_then_batch_resume_completes_with_no_line_submitted_twice(tmp_path, sig):
    fake = FakeBackend(answer)
    fake.batches.lines_per_poll = 10
    rows = "id,text\n" + "".join(f"c{i:05d},case {i}\n" for i in range(300))
    (tmp_path / "cases.csv").write_text(rows)
    (tmp_path / "spec.yaml").write_text("name: killed\ndataset: cases.csv\ntargets: [fake]\nvariants:\n"
                                        "  - name: v\n    user: '{{ text }}'\n")
    env = {**os.environ, "WB_BATCH_KEY": "made-up-batch-key-for-the-fake"}
    run_dir = tmp_path / "run"
    with serve_in_background(fake) as server:
        (tmp_path / "workbench.toml").write_text(TOML.format(base_url=server.base_url))
        proc = subprocess.Popen([sys.executable, "-m", "workbench", "eval", "spec.yaml", "--batch", "--out", "run",
                                 "--poll-interval", "0.05", "--batch-max-lines", "200", "-q"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            jobs = submitted(run_dir)
            if len(jobs) == 2 and all(s == "submitted" for s, _ in jobs) and \
                    any(j.results for j in fake.batches.jobs.values()):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the run ended before it could be killed: " + proc.communicate()[1]
        os.kill(proc.pid, sig)
        code = proc.wait(timeout=120)
        assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL), proc.communicate()[1]
        assert all(j.status not in ("completed",) for j in fake.batches.jobs.values())
        st = subprocess.run([sys.executable, "-m", "workbench", "batch", "status", "run"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
        assert st.returncode == 0 and "in_progress" in st.stdout, st.stderr
        out = subprocess.run([sys.executable, "-m", "workbench", "batch", "resume", "run", "--poll-interval", "0.01",
                              "-q"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "status: complete" in out.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["mode"] == "batch" and len(manifest["batch"]["batch_ids"]) == 2
    assert manifest["batch"]["saving_usd"] > 0
    assert fake.batches.creates == 2 and len(fake.batches.files) == 2 + 2  # 2 inputs, 2 outputs
    assert len(fake.batches.accepted) == 300 and max(fake.batches.accepted.values()) == 1
    assert fake.stats()["paid_twice"] == []
    ledger = RunLedger(run_dir)
    try:
        assert ledger.states() == {"done": 300}
        recs = ledger.records()
    finally:
        ledger.close()
    assert all(r.output == f"echo {int(r.case_id[1:])}" for r in recs)


def test_the_notebook_runs_a_batch_and_the_manifest_records_mode_ids_and_saving(tmp_path):
    from workbench import runs
    from workbench.runs.finalize import write_run_manifest

    fake = FakeBackend(answer)
    prov = fake.provider("openai", batch=True)
    res = runs.run_experiment(make_exp(12), tmp_path / "nb-run", providers={"fake": prov}, mode="batch",
                              poll_interval_s=0.001, progress=False, cache=False)
    assert res.status == "complete" and len(res) == 12 and fake.chat_requests == []
    manifest = json.loads(write_run_manifest(res, started_at=None, finished_at=None, duration_s=None).read_text())
    assert manifest["mode"] == "batch"
    assert manifest["batch"]["batch_ids"] == [next(iter(fake.batches.jobs))]
    b = manifest["batch"]
    assert b["online_cost_usd"] == pytest.approx(2 * b["batch_cost_usd"]) and b["saving_usd"] > 0
    from workbench.runs.manifest import Manifest
    from workbench.runs.report import batch_facts

    facts = dict(batch_facts(Manifest.model_validate(manifest)))
    assert facts["batch ids"] == b["batch_ids"][0] and "saved $" in facts["batch cost"]
    with pytest.raises(Exception, match="mode = 'bulk'"):
        runs.run_experiment(make_exp(2), tmp_path / "x", providers={"fake": prov}, mode="bulk")


def test_eval_batch_from_the_shell_and_its_flags_refused_without_it(tmp_path, run_cli):
    fake = FakeBackend(answer)
    (tmp_path / "cases.csv").write_text("id,text\n" + "".join(f"c{i:05d},case {i}\n" for i in range(8)))
    (tmp_path / "spec.yaml").write_text("name: shell\ndataset: cases.csv\ntargets: [fake]\nvariants:\n"
                                        "  - name: v\n    user: '{{ text }}'\n")
    env = {"WB_BATCH_KEY": "made-up-batch-key-for-the-fake"}
    with serve_in_background(fake) as server:
        (tmp_path / "workbench.toml").write_text(TOML.format(base_url=server.base_url))
        lonely = run_cli("eval", "spec.yaml", "--poll-interval", "1", "--out", "run", cwd=str(tmp_path), env=env)
        assert lonely.returncode == 1 and "--poll-interval is for batch runs" in lonely.stderr
        out = run_cli("eval", "spec.yaml", "--batch", "--poll-interval", "0", "--out", "run", "-q", cwd=str(tmp_path),
                      env=env)
        assert out.returncode == 0, out.stderr
        assert "complete · 8 calls" in out.stdout
        dry = run_cli("eval", "spec.yaml", "--batch", "--dry-run", cwd=str(tmp_path), env=env)
        assert dry.returncode == 0 and "as a batch (--batch, batch prices): up to $" in dry.stdout, dry.stderr
        (tmp_path / "workbench.toml").write_text(TOML.format(base_url=server.base_url).replace("batch = true\n", ""))
        refused = run_cli("eval", "spec.yaml", "--batch", "--out", "run2", "--no-cache", cwd=str(tmp_path),
                          env=env)
    assert refused.returncode == 1 and "not marked batch-capable" in refused.stderr and "batch = true" in refused.stderr
    assert len(fake.batches.jobs) == 1 and fake.chat_requests == []


def test_an_upload_that_fails_stops_with_resume_advice_and_resume_submits_each_cell_once(tmp_path):
    from workbench.errors import BatchFailed

    fake = FakeBackend(answer)
    fake.batches.fail_upload(times=1)
    prov = fake.provider("openai", batch=True)
    with pytest.raises(BatchFailed, match="workbench batch resume") as e:
        go(make_exp(30), prov, tmp_path / "run", BatchSettings(poll_interval_s=0.001, max_lines=20))
    assert "HTTP 500" in str(e.value)
    assert batch_status(tmp_path / "run").cells == {"batch": 20, "planned": 10}  # file 1 reserved, file 2 not yet
    res = resume(tmp_path / "run", providers={"fake": prov}, poll_interval_s=0.001, progress=False, cache=False)
    assert res.status == "complete" and len(res) == 30
    assert fake.batches.creates == 2 and len(fake.batches.accepted) == 30
    assert max(fake.batches.accepted.values()) == 1


def test_profiles_mark_batch_capable_deployments_and_bad_values_are_refused(tmp_path):
    from workbench.config import load_config

    good = tmp_path / "good.toml"
    good.write_text('[profiles.prod]\nbackend = "azure"\nendpoint = "https://r.openai.azure.com"\n'
                    'api_version = "2025-04-01-preview"\nbatch_deployments = ["mini-batch"]\n'
                    '[profiles.prod.deployments]\nmini-batch = "gpt-4o-mini"\nmini = "gpt-4o-mini"\n'
                    '[profiles.vllm]\nbackend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nauth = "none"\n')
    profiles = load_config([good]).profiles
    assert profiles["prod"].batch_capable("mini-batch") and not profiles["prod"].batch_capable("mini")
    assert not profiles["vllm"].batch_capable("any")
    bad = tmp_path / "bad.toml"
    bad.write_text('[profiles.prod]\nbackend = "azure"\nbatch_deployments = "mini-batch"\n')
    with pytest.raises(ConfigError, match="batch_deployments"):
        load_config([bad])


def test_resume_refuses_when_the_dataset_changed_since_submission(tmp_path):
    from workbench.errors import BatchFailed
    from workbench.experiment import load_experiment

    (tmp_path / "cases.csv").write_text("id,text\n" + "".join(f"c{i:05d},case {i}\n" for i in range(10)))
    (tmp_path / "spec.yaml").write_text("name: moved\ndataset: cases.csv\ntargets: [fake]\nvariants:\n"
                                        "  - name: v\n    user: '{{ text }}'\n")
    fake = FakeBackend(answer)
    prov = fake.provider("openai", batch=True)
    go(load_experiment(tmp_path / "spec.yaml"), prov, tmp_path / "run", wait=False)
    (tmp_path / "cases.csv").write_text("id,text\n" + "".join(f"c{i:05d},case {i + 1}\n" for i in range(10)))
    with pytest.raises(BatchFailed, match="has changed since its batches were submitted"):
        resume(tmp_path / "run", providers={"fake": prov}, poll_interval_s=0.001, progress=False, cache=False)
    assert batch_status(tmp_path / "run").cells == {"batch": 10}  # nothing merged, nothing lost
