"""The run ledger: exactly-once cells under any number of processes, changed requests, reruns, damaged files,
retry budgets and preflight (issue #10). Fake backends only; processes talk to in-process fakes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import httpx2
import pytest

from workbench.errors import CacheCorrupt, LedgerError, PreflightFailed, RequestChanged
from workbench.experiment import Experiment
from workbench.harness import run
from workbench.ledger import RunLedger, cell_key
from workbench.records import CellResult
from workbench.results import Results
from workbench.store import ResponseCache
from workbench.testing import FakeBackend, RateLimit, ServerError, Timeout
from workbench.variants import Variant

SCRIPT = Path(__file__).parent / "scripts" / "fake_eval.py"


def sentiment(req):
    return "positive" if "love" in req.user_text else "negative"


def make_exp(n=10, **kw):
    rows = [{"id": f"c{i:03d}", "text": ("I love it " if i % 2 else "I hate it ") + str(i)} for i in range(n)]
    kw.setdefault("targets", ["fake"])
    kw.setdefault("concurrency", 4)
    variants = kw.pop("variants", [Variant(name="plain", user="{{ text }}"),
                                   Variant(name="sys", system="Classify.", user="{{ text }}")])
    return Experiment(name="t", dataset=rows, variants=variants, **kw)


def go(exp, provider, out, **kw):
    kw.setdefault("cache", False)
    kw.setdefault("progress", False)
    return run(exp, providers={"fake": provider}, out=out, **kw)


def ledger_rows(run_dir: Path) -> int:
    with sqlite3.connect(run_dir / "results.sqlite") as c:
        return c.execute("SELECT COUNT(*) FROM cells").fetchone()[0]


# ------------------------------------------------------------------------------------------ many processes


@pytest.mark.parametrize("n_procs", [2, 3])
def test_processes_on_one_folder_send_every_cell_once_and_report_true_totals(tmp_path, n_procs):
    run_dir = tmp_path / "run"
    procs = [subprocess.Popen([sys.executable, str(SCRIPT), str(run_dir), "-", str(tmp_path / f"log{i}"), "0.01"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n_procs)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (stdout, stderr) in zip(procs, outs):
        assert p.returncode == 0, stderr
        assert "DONE 200 complete" in stdout
    sent = Counter(line for i in range(n_procs) for line in (tmp_path / f"log{i}").read_text().splitlines())
    assert len(sent) == 200 and max(sent.values()) == 1, "a cell was sent twice"  # no response cache to hide it
    shares = [len((tmp_path / f"log{i}").read_text().splitlines()) for i in range(n_procs)]
    assert sum(shares) == 200
    totals = {line for stdout, _ in outs for line in stdout.splitlines() if line.startswith("TOTALS")}
    assert len(totals) == 1, f"the processes disagree about the run: {totals}"  # each reports the whole run
    assert ledger_rows(run_dir) == 200


def test_claims_of_a_live_owner_are_never_taken_and_a_dead_owners_are(tmp_path):
    ledger = RunLedger(tmp_path)
    from workbench.ledger import PlannedRow

    ledger.sync_plan(PlannedRow(cell_key("e", f"c{i}", "v", "t", 0), i, f"c{i}", "v", "t", 0, f"fp{i}", "{}")
                     for i in range(10))
    a, b = ledger.register_owner(), ledger.register_owner()
    first = ledger.claim(a, 4)
    second = ledger.claim(b, 100)
    assert len(first) == 4 and len(second) == 6 and not {k for k, _ in first} & {k for k, _ in second}
    assert ledger.claim(b, 100) == [] and ledger.busy_elsewhere(b) == 4
    ledger.execute("UPDATE owners SET heartbeat_at = 0 WHERE owner = ?", (a,))  # a stopped heartbeating
    assert ledger.busy_elsewhere(b) == 0
    taken = ledger.claim(b, 100)
    assert {k for k, _ in taken} == {k for k, _ in first}
    # a done cell is never overwritten: the first answer stays
    key = taken[0][0]
    rec = CellResult(cell_key=key, experiment="e", case_id="c0", variant="v", target="t", profile="p",
                     deployment="d", model="m", repeat=0, messages=[], output="first")
    ledger.finish_many([(rec, 0.0)])
    ledger.finish_many([(rec.replace(output="second"), 0.0)])
    assert [r.output for r in ledger.iter_records() if r.cell_key == key] == ["first"]
    ledger.close()


def test_a_dead_process_claims_are_taken_over_at_once(tmp_path):
    ledger = RunLedger(tmp_path)
    from workbench.ledger import PlannedRow

    ledger.sync_plan([PlannedRow("k1", 0, "c0", "v", "t", 0, "fp", "{}")])
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    ledger.execute("INSERT INTO owners (owner, host, pid, started_at, heartbeat_at, lease_s) VALUES (?, ?, ?, ?, ?, ?)",
                   ("ghost", __import__("socket").gethostname(), pid, 0, 9e12, 1e9))  # fresh beat, but gone
    ledger.execute("UPDATE cells SET state = 'claimed', owner = 'ghost'")
    me = ledger.register_owner()
    assert ledger.busy_elsewhere(me) == 0 and [k for k, _ in ledger.claim(me, 5)] == ["k1"]
    ledger.close()


def test_batch_cells_are_never_claimed(tmp_path):
    ledger = RunLedger(tmp_path)
    from workbench.ledger import PlannedRow

    ledger.sync_plan(PlannedRow(f"k{i}", i, f"c{i}", "v", "t", 0, "fp", "{}") for i in range(3))
    me = ledger.register_owner()
    keys = [k for k, _ in ledger.claim(me, 2)]
    assert ledger.submit_batch(keys, "batch_123", me) == 2
    assert ledger.batch_cells("batch_123") == keys and ledger.states() == {"batch": 2, "planned": 1}
    other = ledger.register_owner()
    assert [k for k, _ in ledger.claim(other, 10)] == ["k2"]
    ledger.close()


# ---------------------------------------------------------------------------------- reruns into one folder


def test_a_changed_endpoint_is_refused_then_resent_on_request(tmp_path):
    fake = FakeBackend(sentiment)
    out = tmp_path / "run"
    first = go(make_exp(10), fake.provider("openai", base_url="http://127.0.0.1:5001/v1"), out)
    assert len(first) == 20 and len(fake.chat_requests) == 20
    old_fps = {r.request_fingerprint for r in first.records}
    moved = fake.provider("openai", base_url="http://127.0.0.1:5002/v1")
    with pytest.raises(RequestChanged) as err:
        go(make_exp(10), moved, out)
    msg = str(err.value)
    assert "20 finished cells" in msg and "base_url http://127.0.0.1:5001/v1 -> http://127.0.0.1:5002/v1" in msg
    assert "--resend-changed" in msg and "--out" in msg
    assert len(fake.chat_requests) == 20  # nothing was sent
    assert Results.load(out).status == "complete"  # the refused rerun changed nothing
    again = go(make_exp(10), moved, out, resend_changed=True)
    assert len(fake.chat_requests) == 40 and len(again) == 20 and again.status == "complete"
    assert ledger_rows(out) == 20  # the spec's cell count, not two copies of the matrix
    fps = {r.request_fingerprint for r in again.records}
    assert len(fps) == 20 and not fps & old_fps
    go(make_exp(10), moved, out)  # now it is simply finished
    assert len(fake.chat_requests) == 40


def test_a_changed_api_version_names_both_versions(tmp_path):
    fake = FakeBackend(sentiment)
    go(make_exp(3), fake.provider("azure"), tmp_path / "run")
    with pytest.raises(RequestChanged, match=r"api_version 2025-04-01-preview -> 2024-10-21"):
        go(make_exp(3), fake.provider("azure", api_version="2024-10-21"), tmp_path / "run")


def test_error_rows_are_retried_on_rerun_and_replaced(tmp_path):
    broken = FakeBackend(sentiment).fail(ServerError(500), times=1000, when=lambda r: r.user_text.endswith(" 3"))
    out = tmp_path / "run"
    first = go(make_exp(6, max_retries=0), broken.provider("azure"), out)
    assert first.status == "complete with errors" and first.n_errors == 2 and len(first) == 12
    healthy = FakeBackend(sentiment)
    second = go(make_exp(6, max_retries=0), healthy.provider("azure"), out)
    assert len(healthy.chat_requests) == 2  # only the failed cells
    assert second.status == "complete" and second.n_errors == 0 and len(second) == 12
    assert ledger_rows(out) == 12


# ----------------------------------------------------------------------------------------- retry budgets


def test_many_429s_then_a_500_still_ends_ok(tmp_path):
    fake = FakeBackend(sentiment)
    fake.fail(RateLimit(retry_after=0.01), times=6).fail(ServerError(500), times=1)
    res = go(make_exp(1, max_retries=1, concurrency=1, variants=[Variant(name="v", user="{{ text }}")]),
             fake.provider("azure"), tmp_path / "run")
    rec = res.records[0]
    assert res.n_errors == 0 and rec.outcome == "ok"
    assert rec.rate_limited == 6 and rec.retries == 7
    assert fake.chat_status_counts() == {429: 6, 500: 1, 200: 1}


def test_429s_count_against_time_patience_and_the_message_names_it(tmp_path):
    fake = FakeBackend(sentiment).fail(RateLimit(retry_after=0.02), times=1000)
    exp = make_exp(1, max_retries=0, rate_limit_patience_s=0.1, variants=[Variant(name="v", user="{{ text }}")])
    res = go(exp, fake.provider("openai"), tmp_path / "run")
    rec = res.records[0]
    assert rec.outcome == "error" and rec.error_type == "RateLimitError"
    assert "rate_limit_patience_s = 0.1" in rec.error_message and "target 'fake'" in rec.error_message
    assert rec.rate_limited >= 3  # max_retries = 0 did not stop the 429 waits


def test_timeout_message_names_the_limit_attempts_and_target(tmp_path):
    fake = FakeBackend(sentiment).fail(Timeout(), times=1000)
    exp = make_exp(1, max_retries=1, timeout_s=7, variants=[Variant(name="v", user="{{ text }}")])
    rec = go(exp, fake.provider("openai"), tmp_path / "run").records[0]
    assert rec.error_type == "APITimeoutError"
    msg = rec.error_message
    assert "timeout_s = 7 s" in msg and "2 attempts" in msg and "max_retries = 1" in msg
    assert "target 'fake'" in msg and "https://fake-openai.test/v1" in msg


# --------------------------------------------------------------------------------------------- preflight


def test_a_target_without_a_key_fails_before_any_request_with_one_clear_error(tmp_path, monkeypatch):
    fake = FakeBackend(sentiment)
    provider = fake.provider("azure", api_key_env="NO_SUCH_KEY_VAR")
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(PreflightFailed) as err:
        go(make_exp(20), provider, tmp_path / "run")
    msg = str(err.value)
    assert "profile 'fake-azure'" in msg.lower() or "Profile 'fake-azure'" in msg
    assert "NO_SUCH_KEY_VAR" in msg and "Nothing was sent" in msg
    assert fake.requests == []  # not a single request, so no retries and no waiting
    assert Results.load(tmp_path / "run").status.startswith("refused: preflight")  # never left "running"


class Down(FakeBackend):
    """A backend whose every connection is refused (model list included)."""

    def respond(self, request):
        self._decode(request)
        raise httpx2.ConnectError("connection refused")


def test_an_unreachable_endpoint_fails_preflight_naming_it(tmp_path):
    fake = Down(sentiment)
    with pytest.raises(PreflightFailed, match=r"cannot connect to https://fake-openai\.test/v1 \(connection refused"):
        go(make_exp(2), fake.provider("openai"), tmp_path / "run")
    assert fake.chat_requests == []


def test_entra_preflight_asks_the_injected_token_provider(tmp_path):
    fake = FakeBackend(sentiment)

    def no_token():
        raise RuntimeError("AADSTS700016: application not found")

    with pytest.raises(PreflightFailed, match=r"could not get an Entra ID token.*AADSTS700016.*az login"):
        go(make_exp(2), fake.provider("azure-entra", token_provider=no_token), tmp_path / "run")
    assert fake.requests == []
    ok = go(make_exp(2), fake.provider("azure-entra", token_provider=lambda: "tok"), tmp_path / "run2")
    assert ok.status == "complete"


def test_keyless_preflight_without_an_azure_sign_in_says_what_it_would_try(tmp_path, monkeypatch):
    from workbench.providers import Provider

    monkeypatch.setenv("PATH", str(tmp_path))  # no az / azd here
    monkeypatch.setenv("AZURE_CONFIG_DIR", str(tmp_path / "azure"))
    fake = FakeBackend(sentiment)
    provider = Provider(fake.profile("azure-entra"), transport=fake.transport)  # DefaultAzureCredential, unused
    assert provider.default_credential
    with pytest.raises(PreflightFailed, match=r"DefaultAzureCredential would try .*az login"):
        go(make_exp(2), provider, tmp_path / "run")
    assert fake.requests == []


def test_doctor_reports_the_same_missing_key(run_cli, tmp_path):
    (tmp_path / "workbench.toml").write_text(
        '[profiles.nokey]\nbackend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "NOKEY_VAR"\n')
    out = run_cli("doctor", "--profile", "nokey", cwd=str(tmp_path))
    assert out.returncode == 1, out.stderr  # a profile the user wrote that cannot be used is a failure
    assert "FAIL" in out.stdout and "NOKEY_VAR" in out.stdout and "failing: nokey" in out.stderr


def test_eval_with_a_missing_key_prints_one_error_line(run_cli, tmp_path):
    (tmp_path / "workbench.toml").write_text(
        '[profiles.nokey]\nbackend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\napi_key_env = "NOKEY_VAR"\n'
        'model = "gpt-4o-mini"\n')
    spec = make_exp(5, targets=["nokey"])
    spec.save(tmp_path / "spec.yaml")
    out = run_cli("eval", str(tmp_path / "spec.yaml"), "--out", str(tmp_path / "run"), "-q", cwd=str(tmp_path))
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "NOKEY_VAR" in lines[0], out.stderr
    assert "Traceback" not in out.stderr


# ------------------------------------------------------------------------------------------ damaged files


def test_a_damaged_cache_is_moved_aside_and_the_run_goes_on(tmp_path):
    cache = tmp_path / "cache.sqlite"
    cache.write_bytes(b"this is not a database at all" * 100)
    fake = FakeBackend(sentiment)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = go(make_exp(3), fake.provider("azure"), tmp_path / "run", cache=cache)
    assert res.status == "complete" and len(res) == 6
    found = [w for w in caught if issubclass(w.category, CacheCorrupt)]
    assert len(found) == 1
    moved = [p for p in tmp_path.iterdir() if p.name.startswith("cache.sqlite.damaged-")]
    assert len(moved) == 1 and str(cache) in str(found[0].message) and moved[0].name in str(found[0].message)
    assert moved[0].read_bytes().startswith(b"this is not a database")
    assert len(ResponseCache(cache)) == 6  # a fresh cache, filled by this run


def test_a_damaged_ledger_stops_with_the_file_and_the_way_out(tmp_path, run_cli):
    out = tmp_path / "run"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"garbage" * 500)
    fake = FakeBackend(sentiment)
    with pytest.raises(LedgerError) as err:
        go(make_exp(3), fake.provider("azure"), out)
    msg = str(err.value)
    assert str(out / "results.sqlite") in msg and "mv " in msg and "--out" in msg
    assert fake.requests == []
    with pytest.raises(LedgerError, match="is damaged"):
        Results.load(out)
    spec = make_exp(3, targets=["local"])
    spec.save(tmp_path / "spec.yaml")
    cli = run_cli("eval", str(tmp_path / "spec.yaml"), "--out", str(out), "-q")
    assert cli.returncode == 1 and cli.stderr.startswith("error: The run ledger") and "Traceback" not in cli.stderr


# ---------------------------------------------------------------------------------------- old run folders


def _v1_folder(run_dir: Path) -> None:
    """A results.sqlite as the workbench wrote it before the ledger: one row per request fingerprint."""
    run_dir.mkdir(parents=True)
    with sqlite3.connect(run_dir / "results.sqlite") as c:
        c.executescript("""
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE cells (cell_key TEXT PRIMARY KEY, case_id TEXT NOT NULL, variant TEXT NOT NULL,
            target TEXT NOT NULL, repeat INTEGER NOT NULL, outcome TEXT NOT NULL, record TEXT NOT NULL);""")
        c.execute("INSERT INTO meta VALUES ('status', ?)", (json.dumps("complete with errors"),))

        def rec(key, case, outcome, output=""):
            return json.dumps({"schema_version": 1, "cell_key": key, "experiment": "t", "case_id": case,
                               "variant": "plain", "target": "fake", "profile": "fake", "deployment": "chat",
                               "model": "gpt-4o-mini", "repeat": 0, "messages": [], "output": output,
                               "outcome": outcome, "cost_usd": 0.001 if outcome == "ok" else None})

        rows = [("old1", "c000", "ok", "negative"), ("old2", "c001", "error", ""),
                ("old3", "c001", "ok", "positive"),  # the same cell again after an endpoint change
                ("old4", "c002", "error", "")]
        for key, case, outcome, output in rows:
            c.execute("INSERT INTO cells VALUES (?, ?, 'plain', 'fake', 0, ?, ?)",
                      (key, case, outcome, rec(key, case, outcome, output)))


def test_an_old_run_folder_loads_and_migrates(tmp_path):
    out = tmp_path / "run"
    _v1_folder(out)
    res = Results.load(out)
    assert len(res) == 3 and res.n_errors == 1  # one row per logical cell; the done copy of c001 kept
    assert sorted(r.case_id for r in res.records) == ["c000", "c001", "c002"]
    assert {r.case_id: r.output for r in res.records}["c001"] == "positive"
    assert (out / "results.v1.sqlite").is_file()
    assert len(res.df) == 3 and res.status == "complete with errors"
    # and a rerun into it sends only what is missing or failed
    fake = FakeBackend(sentiment)
    again = go(make_exp(3, variants=[Variant(name="plain", user="{{ text }}")]), fake.provider("azure"), out)
    assert [r.user_text for r in fake.chat_requests] == ["I hate it 2"]
    assert len(again) == 3 and again.n_errors == 0


def test_a_ledger_from_a_newer_workbench_is_refused(tmp_path):
    RunLedger(tmp_path).set_meta("ledger_schema", 99)
    with pytest.raises(LedgerError, match="newer workbench"):
        RunLedger(tmp_path)


def test_results_of_a_folder_are_read_lazily_and_agree_with_the_full_table(tmp_path):
    # the answer depends on the request's index, so repeats of a case disagree and per-case means are fractions
    fake = FakeBackend(lambda r: "positive" if ("love" in r.user_text) != (r.index % 3 == 0) else "negative")
    rows = [{"id": f"c{i:03d}", "text": ("I love it " if i % 2 else "I hate it ") + str(i),
             "expected": "positive" if i % 2 else "negative"} for i in range(12)]
    exp = Experiment(name="t", dataset=rows, targets=["fake"], repeats=2, scorers=["exact"],
                     variants=[Variant(name="plain", user="{{ text }}"),
                               Variant(name="sys", system="S", user="{{ text }}")])
    res = go(exp, fake.provider("azure"), tmp_path / "run")
    lazy = Results.load(tmp_path / "run")
    assert lazy._records is None and len(lazy) == 48 and lazy.scorers == res.scorers
    summary = lazy.summary()  # from the score columns only
    assert lazy._records is None and lazy._df is None
    eager = Results(list(lazy.iter_records()), exp)
    import pandas as pd

    pd.testing.assert_frame_equal(summary, eager.summary())
    assert set(summary["method"]) == {"bootstrap (case means)"}  # the graded path, not only Wilson
    # the command line's summary: no pandas, same numbers
    for rows in (lazy.summary_rows(), eager.summary_rows()):
        assert len(rows) == len(summary)
        for row, (_, want) in zip(rows, summary.iterrows()):
            assert set(row) == set(summary.columns)
            for col in ("variant", "target", "n", "n_errors", "n_cases", "method", "n_ambiguous", "n_refused"):
                assert row[col] == want[col], col
            for col in ("mean", "ci_low", "ci_high", "cost_usd", "prompt_tokens", "completion_tokens"):
                assert row[col] == pytest.approx(want[col], rel=1e-12), col
    assert lazy.total_cost == pytest.approx(eager.total_cost) and lazy.n_errors == eager.n_errors == 0
    pd.testing.assert_frame_equal(lazy.df, eager.df)


def test_imported_records_keep_one_row_per_cell(tmp_path):
    ledger = RunLedger(tmp_path)
    rec = CellResult(cell_key="k", experiment="e", case_id="c", variant="v", target="t", profile="p",
                     deployment="d", model="m", repeat=0, messages=[], outcome="error")
    ledger.put(rec)
    ledger.put(rec.replace(outcome="ok", output="fine"))
    assert [r.output for r in ledger.iter_records()] == ["fine"] and ledger_rows(tmp_path) == 1
    ledger.close()


def test_owner_ids_hold_no_secret(tmp_path):
    ledger = RunLedger(tmp_path)
    owner = ledger.register_owner()
    host, pid, token = owner.split(":")
    assert int(pid) == os.getpid() and len(token) == 8
    ledger.close()


# ------------------------------------------------------------------------------- quota learned from headers


def test_an_unknown_quota_is_learned_from_headers_without_a_storm(tmp_path):
    fake = FakeBackend(sentiment, latency=0.002).quota(rpm=1800, bucket=True, burst_s=1.0)  # 30 at once, 30/s
    res = go(make_exp(60, concurrency=32), fake.provider("openai"), tmp_path / "run")
    statuses = fake.chat_status_counts()
    assert res.n_errors == 0 and statuses[200] == 120
    # without the headers' pace (AIMD and the shared pause alone) this run meets several 429s, the raw SDK dozens
    assert statuses.get(429, 0) <= 1, statuses


def test_a_200_reporting_nothing_remaining_is_a_success_and_not_resent(tmp_path):
    from workbench.testing import Reply

    headers = {"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "0",
               "x-ratelimit-reset-requests": "100ms"}
    fake = FakeBackend(lambda r: Reply(sentiment(r), headers=headers))
    res = go(make_exp(3, concurrency=2), fake.provider("openai"), tmp_path / "run")
    assert res.n_errors == 0 and len(fake.chat_requests) == 6 and res.info["rate_limited"] == 0


def test_a_schema_2_ledger_gains_the_summary_columns_and_manifests_read_sql(tmp_path):
    fake = FakeBackend(sentiment)
    res = go(make_exp(5), fake.provider("azure"), tmp_path / "run")
    eager = Results(list(res.iter_records()))
    with sqlite3.connect(tmp_path / "run" / "results.sqlite") as c:  # as schema 2 wrote it
        for col in ("profile", "deployment", "model", "system_fingerprint", "cached_tokens", "reasoning_tokens"):
            c.execute(f"ALTER TABLE cells DROP COLUMN {col}")
        c.execute("UPDATE meta SET value = '2' WHERE key = 'ledger_schema'")
    lazy = Results.load(tmp_path / "run")
    assert lazy.totals() == eager.totals() and lazy.totals()["calls"] == 10
    assert lazy.target_facts() == eager.target_facts() == [
        {"target": "fake", "profile": "fake", "deployment": "chat", "model": "gpt-4o-mini", "calls": 10,
         "system_fingerprints": ["fp_fake0001"]}]
    assert RunLedger(tmp_path / "run").get_meta("ledger_schema") == 3
