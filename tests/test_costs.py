"""Prices, estimated and actual costs, whole-run estimates and budgets."""

from __future__ import annotations

import base64
import dataclasses
import io
import threading

import pytest
from PIL import Image

from workbench.costs import (
    Budget,
    PlannedRequest,
    PriceUnknown,
    actual_cost,
    estimate_matrix_cost,
    estimate_request_cost,
    load_prices,
    price_for,
    token_cost,
)
from workbench.errors import BudgetExceeded, DataError
from workbench.records import Usage
from workbench.tokens import count_messages

# facts §7: USD per 1M tokens (input, cached input, output), public list prices, Aug 2026
FACTS = {
    "gpt-4o": (2.50, 1.25, 10.00), "gpt-4o-mini": (0.15, 0.075, 0.60), "gpt-4.1": (2.00, 0.50, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 1.60), "gpt-4.1-nano": (0.10, 0.025, 0.40), "o1": (15.00, 7.50, 60.00),
    "o3": (2.00, 0.50, 8.00), "o3-mini": (1.10, 0.55, 4.40), "o4-mini": (1.10, 0.275, 4.40),
    "gpt-4-turbo": (10.00, None, 30.00), "gpt-4": (30.00, None, 60.00), "gpt-3.5-turbo": (0.50, None, 1.50),
    "text-embedding-3-small": (0.02, None, 0.0), "text-embedding-3-large": (0.13, None, 0.0),
    "text-embedding-ada-002": (0.10, None, 0.0),
}


@pytest.mark.parametrize("model", sorted(FACTS))
def test_shipped_prices_match_the_published_table(model):
    p = price_for(model)
    assert (p.input, p.cached_input, p.output) == FACTS[model]
    assert p.as_of == "2026-08"


def test_price_table_keeps_its_date_source_and_batch_discount():
    table = load_prices()
    assert table.as_of == "2026-08" and "August 2026" in table.source and table.batch_discount == 0.5


def test_actual_cost_bills_cached_input_and_reasoning_as_output():
    usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=400, reasoning_tokens=300)
    c = actual_cost(usage, "o4-mini")
    assert c.input_usd == pytest.approx(600 * 1.10 / 1e6)
    assert c.cached_input_usd == pytest.approx(400 * 0.275 / 1e6)
    assert c.output_usd == pytest.approx(500 * 4.40 / 1e6)  # the 300 reasoning tokens are inside the 500
    assert c.usd == pytest.approx(0.00297)
    assert (c.input_tokens, c.cached_tokens, c.output_tokens, c.reasoning_tokens) == (600, 400, 500, 300)
    assert c.as_of == "2026-08"
    assert c.as_dict()["parts"] == {"input": 0.00066, "cached_input": 0.00011, "output": 0.0022}


def test_models_without_a_caching_discount_bill_cached_tokens_as_input():
    c = actual_cost(Usage(prompt_tokens=1000, completion_tokens=0, cached_tokens=1000), "gpt-4")
    assert c.usd == pytest.approx(1000 * 30.0 / 1e6)


def test_batch_is_half_price():
    usage = Usage(prompt_tokens=10_000, completion_tokens=2_000, cached_tokens=1_000)
    assert actual_cost(usage, "gpt-4o", batch=True).usd == pytest.approx(actual_cost(usage, "gpt-4o").usd / 2)
    assert actual_cost(usage, "gpt-4o", batch=True).batch


def test_deployments_and_local_model():
    assert token_cost("prod-chat", 1_000_000, 0, deployments={"prod-chat": "gpt-4o-mini"}).usd == pytest.approx(0.15)
    assert token_cost("local", 10_000, 10_000).usd == 0.0


def test_a_model_without_a_price_is_an_error_not_free():
    table = load_prices()
    without = dataclasses.replace(table, prices={k: v for k, v in table.prices.items() if k != "gpt-4o"})
    with pytest.raises(PriceUnknown, match="No price for 'gpt-4o'.*prices_file"):
        token_cost("gpt-4o", 10, 10, prices=without)
    no_local = dataclasses.replace(
        table, prices={k: v for k, v in table.prices.items() if k != "smollm2-135m-instruct"}
    )
    assert token_cost("local", 10, 10, prices=no_local).usd == 0.0


def test_bad_token_counts_are_refused():
    with pytest.raises(DataError, match="cached_tokens .* cannot be larger"):
        token_cost("gpt-4o", 10, 10, cached_tokens=11)
    with pytest.raises(DataError, match="negative"):
        token_cost("gpt-4o", -1, 10)


# ----------------------------------------------------------------------------------------------- overrides


def write(path, text):
    path.write_text(text, "utf-8")
    return path


def test_user_override_file_from_environment(tmp_path, monkeypatch):
    override = write(
        tmp_path / "my-prices.toml",
        'as_of = "2026-11"\nsource = "our Azure EA contract"\n'
        '[prices]\n"gpt-4o" = { input = 2.0 }\n"gpt-3.5-turbo" = { input = 0.4, output = 1.2 }\n',
    )
    monkeypatch.setenv("WORKBENCH_PRICES", str(override))
    table = load_prices()
    assert str(override) in table.files
    p = price_for("gpt-4o")
    assert (p.input, p.cached_input, p.output) == (2.0, 1.25, 10.0)  # overridden field by field
    assert p.as_of == "2026-11" and p.source == "our Azure EA contract"
    assert price_for("gpt-35-turbo").input == 0.4  # an alias in the override maps to the catalog name
    assert price_for("gpt-4o-mini").as_of == "2026-08"  # untouched models keep the shipped date
    assert actual_cost(Usage(prompt_tokens=1_000_000), "gpt-4o").usd == pytest.approx(2.0)
    assert actual_cost(Usage(prompt_tokens=1), "gpt-4o").as_of == "2026-11"
    assert "2026-11" in table.as_of and "2026-08" in table.as_of


def test_override_file_from_project_config(tmp_path, monkeypatch):
    write(tmp_path / "prices.toml", 'as_of = "2026-12"\nbatch_discount = 0.4\n[prices]\n"o3" = { output = 6.0 }\n')
    write(tmp_path / "workbench.toml", 'prices_file = "prices.toml"\n')
    monkeypatch.chdir(tmp_path)
    assert price_for("o3").output == 6.0
    assert load_prices().batch_discount == 0.4
    assert token_cost("o3", 0, 1_000_000, batch=True).usd == pytest.approx(6.0 * 0.6)


@pytest.mark.parametrize(
    "text,message",
    [
        ('[prices]\n"gpt-4o" = { input = 1.0 }\n', "no `as_of` date"),
        ('as_of = "x"\n[prices]\n"gpt-4o" = { inptu = 1.0 }\n', "unknown field"),
        ('as_of = "x"\n[prices]\n"gpt-4o" = { input = -1 }\n', "non-negative"),
        ('as_of = "x"\n[prices]\n"gpt4o" = { input = 1.0 }\n', "Did you mean: gpt-4o"),
        ('as_of = "x"\nbatch_discount = 50\n', "between 0 and 1"),
        ('as_of = "x"\n[prices\n', "not valid TOML"),
    ],
)
def test_bad_override_files_are_explained(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        load_prices(write(tmp_path / "p.toml", text))


def test_missing_override_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_prices(tmp_path / "nope.toml")


# ----------------------------------------------------------------------------------------------- estimates


def data_url(w: int, h: int) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (w, h)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_request_estimate_counts_input_exactly_and_budgets_output():
    messages = [{"role": "system", "content": "Answer in one word."}, {"role": "user", "content": "Capital of France?"}]
    e = estimate_request_cost(messages, "gpt-4o", 100, expected_output_tokens=3)
    n = count_messages(messages, "gpt-4o").total
    assert e.input_tokens == n
    assert e.usd_max == pytest.approx((n * 2.5 + 100 * 10.0) / 1e6)
    assert e.usd_expected == pytest.approx((n * 2.5 + 3 * 10.0) / 1e6)
    assert e.usd == e.usd_max and e.as_of == "2026-08" and e.fits_context
    # without max_output_tokens the model's own limit is the worst case
    assert estimate_request_cost(messages, "gpt-4o").max_output_tokens == 16_384


def test_request_estimate_includes_images_and_flags_context_overflow():
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": data_url(2048, 4096)}},
            ],
        }
    ]
    e = estimate_request_cost(messages, "gpt-4o-mini", 10)
    assert e.tokens.images == 36835 and e.input_tokens > 36835
    assert e.input_usd == pytest.approx(e.input_tokens * 0.15 / 1e6)
    assert not estimate_request_cost([{"role": "user", "content": "x " * 9000}], "gpt-4", 1000).fits_context


def test_matrix_estimate_is_cases_x_variants_x_targets_x_repeats():
    cases = ["good film", "bad film", "meh"]
    variants = {"terse": "Label: {}", "polite": "Please classify the sentiment of this review: {}"}
    targets = ["gpt-4o", "gpt-4o-mini", "local"]
    plan = [
        {
            "messages": [{"role": "user", "content": tpl.format(case)}],
            "model": target,
            "max_output_tokens": 20,
            "expected_output_tokens": 2,
            "case": case,
            "variant": name,
            "target": target,
        }
        for case in cases
        for name, tpl in variants.items()
        for target in targets
    ]
    m = estimate_matrix_cost(plan, repeats=3)
    assert m.requests == 3 * 2 * 3 * 3
    singles = [estimate_request_cost(p["messages"], p["model"], 20, expected_output_tokens=2) for p in plan]
    assert m.usd == pytest.approx(3 * sum(s.usd_max for s in singles))
    assert m.usd_expected == pytest.approx(3 * sum(s.usd_expected for s in singles))
    assert m.input_tokens == 3 * sum(s.input_tokens for s in singles)
    df = m.to_frame()
    assert len(df) == 18 and {"case", "variant", "target", "usd_max", "total_usd_max"} <= set(df.columns)
    by = m.summary(by=("variant", "model"))
    assert len(by) == 6 and by["total_usd_max"].sum() == pytest.approx(m.usd)
    assert "2026-08" in str(m)


def test_matrix_estimate_accepts_planned_requests_and_names_failing_cells():
    ok = PlannedRequest([{"role": "user", "content": "hi"}], "gpt-4o", 5, labels={"case": "c1"})
    assert estimate_matrix_cost([ok]).requests == 1
    bad = {
        "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(8, 8)}}]}],
        "model": "gpt-4",
        "case": "c7",
        "variant": "v2",
    }
    with pytest.raises(DataError, match="case=c7, variant=v2: .*gpt-4 does not accept images"):
        estimate_matrix_cost([ok, bad])
    with pytest.raises(DataError, match="needs 'messages' and 'model'"):
        estimate_matrix_cost([{"model": "gpt-4o"}])


# ----------------------------------------------------------------------------------------------- budget


def test_budget_refuses_a_plan_that_could_exceed_it():
    plan = estimate_matrix_cost([PlannedRequest([{"role": "user", "content": "hi"}], "gpt-4o", 1000)], repeats=10)
    assert plan.usd == pytest.approx(10 * (8 * 2.5 + 1000 * 10.0) / 1e6)
    Budget(1.0).check_estimate(plan)  # fits
    with pytest.raises(BudgetExceeded, match=r"could cost \$0\.1002 \(10 calls.*budget of \$0\.0500.*Lower max_tokens"):
        Budget(0.05).check_estimate(plan)


def test_budget_expected_basis_and_spent_so_far():
    e = estimate_request_cost([{"role": "user", "content": "hi"}], "gpt-4o", 1000, expected_output_tokens=10)
    b = Budget(0.001, basis="expected")
    b.check_estimate(e)  # ~$0.00012 expected, although up to ~$0.01
    b.add(0.0009)
    with pytest.raises(BudgetExceeded, match="already spent"):
        b.check_estimate(e)


def test_budget_tracks_actual_spend_across_threads():
    b = Budget(1.0)
    cost = actual_cost(Usage(prompt_tokens=100, completion_tokens=10), "gpt-4o")  # $0.00035

    def spend():
        for _ in range(500):
            b.add(cost)

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.calls == 4000 and b.spent == pytest.approx(4000 * cost.usd)
    assert b.exceeded  # $1.40 > $1.00
    with pytest.raises(BudgetExceeded, match=r"Actual spend \$1\.4000 after 4000 calls passed the budget of \$1\.0000"):
        b.check()
    fresh = Budget(1.0)
    fresh.add(1.0)
    assert not fresh.exceeded and fresh.remaining == 0.0  # reaching the limit is not crossing it
