"""The harness driven through the fake backend: faults, filters, cache, resume, budget."""

import threading

import pytest

from workbench.errors import BudgetExceeded, ConfigError, DataError
from workbench.experiment import Experiment
from workbench.harness import plan, run
from workbench.ledger import RunStore
from workbench.results import Results
from workbench.store import ResponseCache
from workbench.testing import (
    CompletionFiltered,
    FakeBackend,
    HTTPError,
    PromptFiltered,
    RateLimit,
    Reply,
    ServerError,
    Timeout,
)
from workbench.variants import Variant


def sentiment(req):
    return "positive" if "love" in req.user_text else "negative"


def make_exp(n=20, variants=None, **kw):
    rows = [{"id": f"c{i:03d}", "text": ("I love it " if i % 2 else "I hate it ") + str(i),
             "expected": "positive" if i % 2 else "negative"} for i in range(n)]
    variants = variants or [Variant(name="plain", user="{{ text }}"),
                            Variant(name="sys", system="Classify.", user="{{ text }}", params={"max_tokens": 5})]
    kw.setdefault("targets", ["fake"])
    kw.setdefault("concurrency", 8)
    return Experiment(name="t", dataset=rows, variants=variants, **kw)


@pytest.fixture
def fake():
    return FakeBackend(sentiment)


def go(exp, fake, tmp_path, style="azure", **kw):
    kw.setdefault("cache", tmp_path / "cache.sqlite")
    kw.setdefault("progress", False)
    return run(exp, providers={"fake": fake.provider(style)}, out=tmp_path / "run", **kw)


def test_every_cell_runs_once_and_is_recorded(fake, tmp_path):
    res = go(make_exp(10, repeats=2), fake, tmp_path)
    assert len(res) == 40 and len(fake.chat_requests) == 40 and res.status == "complete"
    df = res.df
    assert set(df["variant"]) == {"plain", "sys"} and set(df["repeat"]) == {0, 1}
    assert (df["output"] == df["case_id"].map(lambda c: "positive" if int(c[1:]) % 2 else "negative")).all()
    for col in ("prompt_tokens", "completion_tokens", "latency_s", "request_id", "system_fingerprint",
                "started_at", "finished_at", "messages", "cache_hit", "cost_usd"):
        assert col in df.columns
    assert df["cost_usd"].notna().all() and res.total_cost > 0  # gpt-4o-mini has a price


def test_429_storm_finishes_every_cell(fake, tmp_path):
    fake.fail(RateLimit(retry_after=0.05), times=60)
    res = go(make_exp(20), fake, tmp_path)
    assert res.n_errors == 0 and len(res) == 40
    assert res.info["rate_limited"] == 60
    assert fake.chat_status_counts() == {429: 60, 200: 40}


def test_server_errors_are_retried_no_cell_lost(tmp_path):
    fake = FakeBackend(sentiment, seed=1).fault_rate(ServerError(500), 0.05)
    res = go(make_exp(100), fake, tmp_path)
    assert res.n_errors == 0 and len(res) == 200 and fake.status_counts.get(500, 0) > 0


def test_timeouts_retried_then_recorded_per_cell(fake, tmp_path):
    fake.fail(Timeout(), times=2)
    res = go(make_exp(4, max_retries=3), fake, tmp_path)
    assert res.n_errors == 0
    # a cell that always times out is recorded as an error and the run goes on
    fake2 = FakeBackend(sentiment)
    fake2.fail(Timeout(), times=100, when=lambda r: "c001" in str(r.body) or r.user_text.endswith(" 1"))
    res2 = run(make_exp(4, max_retries=1), providers={"fake": fake2.provider("azure")}, out=tmp_path / "r2",
               cache=False, progress=False)
    errors = res2.errors()
    assert set(errors["case_id"]) == {"c001"} and set(errors["error_type"]) == {"APITimeoutError"}
    assert res2.status == "complete with errors" and len(res2) == 8


def test_content_filter_outcomes_are_recorded(fake, tmp_path):
    fake.fail(PromptFiltered({"violence": "high"}), when=lambda r: r.user_text.endswith(" 2"), times=2)
    fake.fail(CompletionFiltered({"hate": "medium"}), when=lambda r: r.user_text.endswith(" 3"), times=2)
    res = go(make_exp(4), fake, tmp_path)
    df = res.df.set_index(["case_id", "variant"])
    assert df.loc[("c002", "plain"), "outcome"] == "prompt_filtered"
    assert "prompt:violence:high" in df.loc[("c002", "plain"), "filter_flags"]
    assert df.loc[("c003", "sys"), "outcome"] == "completion_filtered"
    assert df.loc[("c003", "sys"), "filtered"]
    assert res.n_errors == 0  # filtered outcomes are results, not errors


def test_missing_template_variable_fails_before_any_request(fake, tmp_path):
    exp = make_exp(3, variants=[Variant(name="v", user="{{ text }} in {{ language }}")])
    with pytest.raises(DataError, match=r"variant 'v' uses \{\{ language \}\}, missing for case 'c000'"):
        go(exp, fake, tmp_path)
    assert fake.requests == []


def test_unknown_deployment_is_named(fake, tmp_path):
    exp = make_exp(2, targets=["fake:no-such-deploy"])
    with pytest.raises(ConfigError, match="Target 'fake:no-such-deploy'"):
        go(exp, fake, tmp_path)


def test_rerun_is_served_from_cache_and_reproduces_results(fake, tmp_path):
    first = go(make_exp(10), fake, tmp_path)
    n = len(fake.chat_requests)
    again = run(make_exp(10), providers={"fake": fake.provider("azure")}, out=tmp_path / "run2",
                cache=tmp_path / "cache.sqlite", progress=False)
    assert len(fake.chat_requests) == n  # nothing paid twice
    assert again.df["cache_hit"].all()
    cols = ["case_id", "variant", "target", "repeat", "output", "prompt_tokens", "completion_tokens", "cost_usd"]
    assert first.df[cols].equals(again.df[cols])


def test_cache_key_excludes_secrets_and_separates_backends(fake, tmp_path, monkeypatch):
    p1 = fake.provider("azure")
    req = p1.prepare([{"role": "user", "content": "x"}])
    k1 = ResponseCache.key(p1.identity, req.body(), 0)
    monkeypatch.setenv("WORKBENCH_FAKE_KEY", "another-key-entirely-123")
    p2 = FakeBackend().provider("azure")
    assert ResponseCache.key(p2.identity, req.body(), 0) == k1  # a new key is the same backend
    assert ResponseCache.key(fake.provider("openai").identity, req.body(), 0) != k1
    assert ResponseCache.key(p1.identity, req.body(), 1) != k1  # repeats are distinct samples
    go(make_exp(2), fake, tmp_path)
    raw = (tmp_path / "cache.sqlite").read_bytes()
    assert b"fake-test-key" not in raw


def test_cancel_then_resume_calls_only_unfinished_cells(tmp_path):
    fake = FakeBackend(sentiment, latency=0.01)
    cancel = threading.Event()
    seen = []

    def on_result(rec):
        seen.append(rec)
        if len(seen) == 10:
            cancel.set()

    exp = make_exp(20, concurrency=2)
    first = run(exp, providers={"fake": fake.provider("azure")}, out=tmp_path / "run", cache=False,
                progress=False, on_result=on_result, cancel=cancel)
    assert first.status.startswith("stopped: cancelled") and 10 <= len(first) < 40
    done = {(r.case_id, r.variant) for r in first.records}
    fake2 = FakeBackend(sentiment)
    second = run(make_exp(20, concurrency=2), providers={"fake": fake2.provider("azure")}, out=tmp_path / "run",
                 cache=False, progress=False)
    assert len(second) == 40 and second.status == "complete"
    assert len(fake2.chat_requests) == 40 - len(first)
    assert second.info["resumed"] == len(first)
    resent = {(f"c{int(r.user_text.split()[-1]):03d}", "sys" if r.system_text else "plain")
              for r in fake2.chat_requests}
    assert not (resent & done)


def test_changed_experiment_refuses_an_old_run_folder(fake, tmp_path):
    go(make_exp(2), fake, tmp_path)
    changed = make_exp(2, variants=[Variant(name="other", user="Q: {{ text }}")])
    with pytest.raises(DataError, match="different version of experiment"):
        go(changed, fake, tmp_path)


def test_budget_refuses_a_run_that_would_exceed_it(fake, tmp_path):
    exp = make_exp(
        10,
        variants=[Variant(name="v", user="{{ text }}", params={"max_tokens": 4000})],
        targets=["fake:big"],
        budget_usd=0.01,
    )
    with pytest.raises(
        BudgetExceeded, match=r"10 uncached calls: This run could cost \$0\.\d+ .*over the budget of \$0\.0100"
    ):
        go(exp, fake, tmp_path)
    assert fake.requests == []


def test_budget_stops_a_run_whose_spend_crosses_it(tmp_path):
    # the estimate assumes max_tokens=5, but the service bills 100k output tokens per call
    fake = FakeBackend(lambda r: Reply("positive", completion_tokens=100_000))
    exp = make_exp(
        20,
        variants=[Variant(name="v", user="{{ text }}", params={"max_tokens": 5})],
        targets=["fake:big"],
        budget_usd=5.0,
        concurrency=1,
    )
    res = go(exp, fake, tmp_path)
    assert res.status.startswith("stopped: budget exceeded")
    assert 5 <= len(res) < 20  # $1 a call at gpt-4o output prices: stops right after crossing $5
    assert RunStore(tmp_path / "run").get_meta("status").startswith("stopped")


def test_authentication_failure_stops_early_and_keeps_finished_cells(fake, tmp_path):
    fake.fail(
        HTTPError(401, "401", "Access denied due to invalid subscription key"), times=1000, when=lambda r: r.index >= 6
    )
    with pytest.raises(ConfigError, match="Run stopped early.*AuthenticationError.*workbench doctor"):
        go(make_exp(50, concurrency=1), fake, tmp_path)
    kept = Results.load(tmp_path / "run")
    assert len(kept) >= 6 and len(fake.chat_requests) < 20


def test_plan_renders_and_adapts_every_request(fake):
    exp = make_exp(
        3,
        targets=["fake:reasoner"],
        variants=[Variant(name="v", system="S", user="{{ text }}", params={"temperature": 0.5, "max_tokens": 9})],
    )
    cells = plan(exp, {"fake": fake.provider("azure")})
    assert len(cells) == 3
    body = cells[0].request.body()
    assert body["model"] == "reasoner" and "temperature" not in body and body["max_completion_tokens"] == 9
    assert body["messages"][0]["role"] == "developer"


def test_exports_round_trip(fake, tmp_path):
    res = go(make_exp(4), fake, tmp_path)
    back = Results.from_jsonl(res.to_jsonl(tmp_path / "r.jsonl"))
    assert [r.model_dump() for r in back.records] == [r.model_dump() for r in res.records]
    import pandas as pd

    assert len(pd.read_parquet(res.to_parquet(tmp_path / "r.parquet"))) == 8
    assert len(pd.read_csv(res.to_csv(tmp_path / "r.csv"))) == 8
    assert len(Results.load(tmp_path / "run")) == 8


def test_unreachable_backend_stops_the_run_early_with_where_and_why(tmp_path):
    from workbench.testing import ConnectionFailure

    fake = FakeBackend(sentiment).fault_rate(ConnectionFailure(), 1.0)
    with pytest.raises(ConfigError, match=r"cannot connect: Connection error\. to https://fake-resource"):
        go(make_exp(50, concurrency=2, max_retries=0), fake, tmp_path)
    assert len(fake.chat_requests) < 10  # not 100 cells' worth of retries
    kept = Results.load(tmp_path / "run")
    assert set(kept.df["error_type"]) == {"APIConnectionError"}
    assert "fake connection refused" in kept.df["error_message"].iloc[0]


def test_a_flaky_connection_after_success_is_retried_not_fatal(tmp_path):
    from workbench.testing import ConnectionFailure

    fake = FakeBackend(sentiment)
    fake.fail(ConnectionFailure(), times=6, when=lambda r: r.index >= 4)
    res = go(make_exp(10, concurrency=1, max_retries=3), fake, tmp_path)
    # one cell used up its 4 attempts; the target had answered before, so the run went on
    assert res.n_errors == 1 and len(res) == 20 and res.status == "complete with errors"
