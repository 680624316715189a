"""What a prompt costs: before sending (estimates), after (from the returned usage), and for a whole run.

Prices are data: ``data/prices.toml`` (public list prices with the date they were taken, ``as_of``), merged with
an optional user override file of the same shape (``prices_file = "..."`` in the config, or ``WORKBENCH_PRICES``).
Every figure computed here carries the ``as_of`` date of the prices it used, so a report can show it.

Billing rules (OpenAI / Azure OpenAI pricing pages):
- input tokens at the input price, except ``cached_tokens``, which are part of the prompt and billed at the
  cached-input price (at the input price where a model has no caching discount);
- completion tokens at the output price - reasoning tokens are part of them and are billed as output;
- the Batch API bills ``(1 - batch_discount)`` of every price (``batch_discount = 0.5``: half price).
"""

from __future__ import annotations

import math
import threading
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .catalog import ModelInfo, load_catalog
from .config import resolve_model
from .errors import BudgetExceeded, DataError, PriceUnknown, UnknownModelError
from .records import Usage
from .tokens import Messages, TokenCount, count_messages

PER_TOKENS = 1_000_000  # prices are quoted per 1M tokens
_PRICE_FIELDS = ("input", "cached_input", "output")


# --------------------------------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M tokens for one model, and where the figures come from."""

    model: str
    input: float
    output: float
    cached_input: float | None = None  # None: no caching discount, cached tokens bill as input
    as_of: str = ""
    source: str = ""

    @property
    def cached(self) -> float:
        return self.input if self.cached_input is None else self.cached_input


@dataclass(frozen=True)
class PriceTable:
    """All prices, the Batch discount, and which files they were read from."""

    prices: Mapping[str, ModelPrice]
    as_of: str
    source: str
    currency: str = "USD"
    batch_discount: float = 0.5
    files: tuple[str, ...] = ()

    def get(self, model: str) -> ModelPrice | None:
        return self.prices.get(model)


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError as e:
        raise DataError(
            f"The {what} {path} does not exist. Fix the path (prices_file / WORKBENCH_PRICES) or unset it."
        ) from e
    except tomllib.TOMLDecodeError as e:
        raise DataError(f"The {what} {path} is not valid TOML: {e}.") from e


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
        raise DataError(f"{where} = {value!r}: prices are non-negative numbers in USD per 1M tokens.")
    return float(value)


def _model_prices(raw: Mapping[str, Any], path: Path, as_of: str, source: str) -> dict[str, dict[str, Any]]:
    """The ``[prices]`` table of one file, keyed by catalog model name, fields validated."""
    out: dict[str, dict[str, Any]] = {}
    catalog = load_catalog()
    for name, entry in (raw.get("prices") or {}).items():
        where = f"{path}: prices.{name!r}"
        if not isinstance(entry, Mapping):
            raise DataError(f"{where} must be a table like {{ input = 2.5, output = 10.0 }}.")
        unknown = set(entry) - set(_PRICE_FIELDS)
        if unknown:
            raise DataError(f"{where} has unknown field(s) {sorted(unknown)}; use {', '.join(_PRICE_FIELDS)}.")
        try:
            model = catalog.resolve(name).name
        except UnknownModelError as e:
            raise DataError(f"{where}: {e}") from e
        fields = {k: _number(v, f"{where}.{k}") for k, v in entry.items()}
        out[model] = {**fields, "as_of": as_of, "source": source}
    return out


def _price_file(path: Path, *, shipped: bool) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    raw = _read_toml(path, "price table" if shipped else "price override file")
    if not raw.get("as_of"):
        raise DataError(
            f'{path} has no `as_of` date. Add e.g. as_of = "2026-11" at the top, so reports can say when '
            f"these prices were current."
        )
    as_of, source = str(raw["as_of"]), str(raw.get("source") or path)
    header = {k: raw[k] for k in ("as_of", "source", "currency", "batch_discount") if k in raw}
    if "batch_discount" in header:
        d = _number(header["batch_discount"], f"{path}: batch_discount")
        if d > 1:
            raise DataError(
                f"{path}: batch_discount = {d}: it is the fraction taken off, between 0 and 1 (0.5 = half price)."
            )
    return header, _model_prices(raw, path, as_of, source)


_prices_cache: dict[tuple, PriceTable] = {}
_prices_lock = threading.Lock()


def _override_path(override: str | Path | None) -> Path | None:
    if override is not None:
        return Path(override).expanduser()
    from .config import load_config

    return load_config().prices_file


def load_prices(override: str | Path | None = None) -> PriceTable:
    """The shipped price table merged with the user's override file (``override``, else the configured one).

    Override entries replace the shipped figures field by field and carry the override file's own ``as_of``
    and ``source``; its ``batch_discount`` and ``currency``, if set, apply to the whole table.
    """
    shipped = Path(str(resources.files("workbench").joinpath("data/prices.toml")))
    user = _override_path(override)
    key = (str(user), user.stat().st_mtime_ns if user and user.exists() else None)
    with _prices_lock:
        if key in _prices_cache:
            return _prices_cache[key]
    header, prices = _price_file(shipped, shipped=True)
    files = [str(shipped)]
    if user is not None:
        user_header, user_prices = _price_file(user, shipped=False)
        for model, fields in user_prices.items():
            prices[model] = {**prices.get(model, {}), **fields}
        header = {**header, **{k: v for k, v in user_header.items() if k in ("currency", "batch_discount")}}
        header["as_of"] = f"{header['as_of']} (overrides: {user_header['as_of']})" if user_prices else header["as_of"]
        files.append(str(user))
    table = PriceTable(
        prices={m: _model_price(m, f, user) for m, f in prices.items()},
        as_of=str(header["as_of"]),
        source=str(header.get("source", "")),
        currency=str(header.get("currency", "USD")),
        batch_discount=float(header.get("batch_discount", 0.0)),
        files=tuple(files),
    )
    with _prices_lock:
        _prices_cache[key] = table
    return table


def _model_price(model: str, fields: Mapping[str, Any], user: Path | None) -> ModelPrice:
    missing = [k for k in ("input", "output") if k not in fields]
    if missing:
        raise DataError(f"{user}: prices.{model!r} adds a new model without {' and '.join(missing)}; give both.")
    return ModelPrice(
        model, fields["input"], fields["output"], fields.get("cached_input"), fields["as_of"], fields["source"]
    )


def price_for(
    model: str | ModelInfo, deployments: Mapping[str, str] | None = None, prices: PriceTable | None = None
) -> ModelPrice:
    """The price of ``model`` (a catalog name, alias or mapped deployment). Local models cost 0.

    Raises :class:`PriceUnknown` when the table has no entry: an unpriced model is never counted as free.
    """
    info = resolve_model(model, deployments)
    table = prices or load_prices()
    price = table.get(info.name)
    if price is not None:
        return price
    if info.local:
        return ModelPrice(info.name, 0.0, 0.0, None, table.as_of, "runs on your machine")
    raise PriceUnknown(
        f"No price for {info.name!r} in {', '.join(table.files)}. Add it to a price override file "
        "(prices_file in workbench.toml, or WORKBENCH_PRICES): "
        f'[prices] "{info.name}" = {{ input = ..., output = ... }}'
    )


@dataclass(frozen=True)
class TrainingPrice:
    """Fine-tuning figures for one base model (``[fine_tuning.models]`` of the price table)."""

    model: str
    training: float | None  # USD per 1M training tokens (file tokens x epochs); None: no public price
    example_tokens: int | None  # most tokens one training example may have
    as_of: str = ""
    source: str = ""


def _training_file(path: Path, *, shipped: bool) -> dict[str, TrainingPrice]:
    raw = _read_toml(path, "price table" if shipped else "price override file").get("fine_tuning") or {}
    as_of, source = str(raw.get("as_of") or ""), str(raw.get("source") or path)
    if raw.get("models") and not as_of:
        raise DataError(f'{path}: [fine_tuning] has no `as_of` date; add e.g. as_of = "2026-11" to it.')
    catalog, out = load_catalog(), {}
    for name, entry in (raw.get("models") or {}).items():
        where = f"{path}: fine_tuning.models.{name!r}"
        unknown = set(entry) - {"training", "example_tokens"} if isinstance(entry, Mapping) else {"?"}
        if unknown:
            raise DataError(f"{where} must be a table like {{ training = 3.0, example_tokens = 65536 }}.")
        try:
            model = catalog.resolve(name).name
        except UnknownModelError as e:
            raise DataError(f"{where}: {e}") from e
        limit = entry.get("example_tokens")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise DataError(f"{where}.example_tokens = {limit!r}: a whole number of tokens.")
        training = _number(entry["training"], f"{where}.training") if "training" in entry else None
        out[model] = TrainingPrice(model, training, limit, as_of, source)
    return out


def load_training_prices(override: str | Path | None = None) -> dict[str, TrainingPrice]:
    """Fine-tuning training prices and per-example token limits by base model: the shipped table merged with the
    override file's ``[fine_tuning.models]`` (field by field), as :func:`load_prices` merges prices."""
    shipped = _training_file(Path(str(resources.files("workbench").joinpath("data/prices.toml"))), shipped=True)
    user = _override_path(override)
    if user is None:
        return shipped
    for model, mine in _training_file(user, shipped=False).items():
        base = shipped.get(model)
        shipped[model] = TrainingPrice(
            model, mine.training if mine.training is not None else (base.training if base else None),
            mine.example_tokens if mine.example_tokens is not None else (base.example_tokens if base else None),
            mine.as_of, mine.source)
    return shipped


# ---------------------------------------------------------------------------------------------------- costs


@dataclass(frozen=True)
class Cost:
    """What one call cost (or would cost), in USD, with its parts and the date of the prices used."""

    model: str
    usd: float
    input_usd: float  # uncached input tokens
    cached_input_usd: float
    output_usd: float  # completion tokens, reasoning included
    input_tokens: int  # uncached
    cached_tokens: int
    output_tokens: int
    reasoning_tokens: int = 0
    batch: bool = False
    as_of: str = ""
    currency: str = "USD"

    @property
    def parts(self) -> dict[str, float]:
        return {"input": self.input_usd, "cached_input": self.cached_input_usd, "output": self.output_usd}

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "usd": _round_usd(self.usd),
            "parts": {k: _round_usd(v) for k, v in self.parts.items()},
            # input_tokens is what the caller gave (cached included), as the API's prompt_tokens counts it
            "input_tokens": self.input_tokens + self.cached_tokens,
            "uncached_input_tokens": self.input_tokens,
            "cached_tokens": self.cached_tokens,
            "output_tokens": self.output_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "batch": self.batch,
            "as_of": self.as_of,
            "currency": self.currency,
        }


def _round_usd(usd: float) -> float:
    """Drop float noise (0.004743750000000001) from figures meant for people and JSON; 1e-10 USD is far below a cent."""
    return round(usd, 10)


def _rates(price: ModelPrice, batch: bool, table: PriceTable) -> tuple[float, float, float]:
    """USD per token for input, cached input and output."""
    factor = (1.0 - table.batch_discount if batch else 1.0) / PER_TOKENS
    return price.input * factor, price.cached * factor, price.output * factor


def token_cost(
    model: str | ModelInfo,
    input_tokens: int,
    output_tokens: int,
    *,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
    batch: bool = False,
    deployments: Mapping[str, str] | None = None,
    prices: PriceTable | None = None,
) -> Cost:
    """Cost of ``input_tokens`` (of which ``cached_tokens`` hit the prompt cache) and ``output_tokens``.

    ``reasoning_tokens`` are informational: they are already part of ``output_tokens``, as in the API's usage.
    """
    for name, n in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
        ("cached_tokens", cached_tokens),
        ("reasoning_tokens", reasoning_tokens),
    ):
        if n < 0:
            raise DataError(f"{name} = {n}: token counts cannot be negative.")
    if cached_tokens > input_tokens:
        raise DataError(
            f"cached_tokens ({cached_tokens}) is part of input_tokens ({input_tokens}), so it cannot be larger."
        )
    if reasoning_tokens > output_tokens:
        raise DataError(
            f"reasoning_tokens ({reasoning_tokens}) is part of output_tokens ({output_tokens}), so it cannot be larger."
        )
    info = resolve_model(model, deployments)
    table = prices or load_prices()
    price = price_for(info, prices=table)
    r_in, r_cached, r_out = _rates(price, batch, table)
    uncached = input_tokens - cached_tokens
    parts = (uncached * r_in, cached_tokens * r_cached, output_tokens * r_out)
    return Cost(
        info.name,
        sum(parts),
        *parts,
        uncached,
        cached_tokens,
        output_tokens,
        reasoning_tokens,
        batch,
        price.as_of,
        table.currency,
    )


def actual_cost(
    usage: Usage,
    model: str | ModelInfo,
    batch: bool = False,
    *,
    deployments: Mapping[str, str] | None = None,
    prices: PriceTable | None = None,
) -> Cost:
    """What a completed call cost, from the usage the service returned."""
    return token_cost(
        model,
        usage.prompt_tokens,
        usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        batch=batch,
        deployments=deployments,
        prices=prices,
    )


# ------------------------------------------------------------------------------------------------ estimates


@dataclass(frozen=True)
class CostEstimate:
    """A request priced before it is sent.

    Input tokens are exact (:func:`workbench.tokens.count_messages`). Output is unknown in advance, so it is
    budgeted twice: at ``max_output_tokens`` (the most the call can cost: ``usd_max``, what budgets check) and,
    if given, at ``expected_output_tokens`` (``usd_expected``).
    """

    model: str
    input_tokens: int
    max_output_tokens: int
    input_usd: float
    max_output_usd: float
    expected_output_tokens: int | None = None
    expected_output_usd: float | None = None
    cached_tokens: int = 0
    batch: bool = False
    context_window: int = 0
    as_of: str = ""
    tokens: TokenCount | None = None
    labels: Mapping[str, Any] = field(default_factory=dict)

    @property
    def usd_max(self) -> float:
        return self.input_usd + self.max_output_usd

    @property
    def usd_expected(self) -> float | None:
        return None if self.expected_output_usd is None else self.input_usd + self.expected_output_usd

    @property
    def usd(self) -> float:
        """The worst case: what a budget must allow for."""
        return self.usd_max

    @property
    def context_used(self) -> float:
        """Share of the context window taken by the input plus the largest possible output."""
        return (self.input_tokens + self.max_output_tokens) / self.context_window if self.context_window else 0.0

    @property
    def fits_context(self) -> bool:
        return self.context_used <= 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **dict(self.labels),
            "model": self.model,
            "input_tokens": self.input_tokens,
            "max_output_tokens": self.max_output_tokens,
            "expected_output_tokens": self.expected_output_tokens,
            "cached_tokens": self.cached_tokens,
            "input_usd": self.input_usd,
            "usd_max": self.usd_max,
            "usd_expected": self.usd_expected,
            "batch": self.batch,
            "context_window": self.context_window,
            "context_used": self.context_used,
            "as_of": self.as_of,
        }


def estimate_request_cost(
    messages: Messages,
    model: str | ModelInfo,
    max_output_tokens: int | None = None,
    *,
    expected_output_tokens: int | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    cached_tokens: int = 0,
    batch: bool = False,
    detail_default: str = "auto",
    deployments: Mapping[str, str] | None = None,
    prices: PriceTable | None = None,
    labels: Mapping[str, Any] | None = None,
) -> CostEstimate:
    """Price a chat request before sending it.

    ``max_output_tokens`` defaults to the model's own output limit (the true worst case). ``cached_tokens``
    lets a caller who expects prompt-cache hits price them at the cached rate.
    """
    info = resolve_model(model, deployments)
    counted = count_messages(messages, info, tools=tools, detail_default=detail_default)
    max_out = info.max_output_tokens if max_output_tokens is None else int(max_output_tokens)
    table = prices or load_prices()
    cached = min(cached_tokens, counted.total)
    base = token_cost(info, counted.total, 0, cached_tokens=cached, batch=batch, prices=table)
    worst = token_cost(info, 0, max_out, batch=batch, prices=table)
    expected = None
    if expected_output_tokens is not None:
        expected = token_cost(info, 0, int(expected_output_tokens), batch=batch, prices=table).usd
    return CostEstimate(
        model=info.name,
        input_tokens=counted.total,
        max_output_tokens=max_out,
        input_usd=base.usd,
        max_output_usd=worst.usd,
        expected_output_tokens=expected_output_tokens,
        expected_output_usd=expected,
        cached_tokens=cached,
        batch=batch,
        context_window=info.context_window,
        as_of=base.as_of,
        tokens=counted,
        labels=dict(labels or {}),
    )


@dataclass(frozen=True)
class PlannedRequest:
    """One call a run will make: what :func:`estimate_matrix_cost` prices. ``labels`` name its cell."""

    messages: Messages
    model: str
    max_output_tokens: int | None = None
    expected_output_tokens: int | None = None
    tools: Sequence[Mapping[str, Any]] | None = None
    labels: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MatrixEstimate:
    """The priced plan of a whole run: one estimate per distinct request, each made ``repeats`` times."""

    rows: tuple[CostEstimate, ...]
    repeats: int = 1

    @property
    def requests(self) -> int:
        return len(self.rows) * self.repeats

    @property
    def usd(self) -> float:
        """Worst case (every call uses its max_output_tokens): what a budget must allow for."""
        return math.fsum(r.usd_max for r in self.rows) * self.repeats

    @property
    def usd_max(self) -> float:
        return self.usd

    @property
    def usd_expected(self) -> float:
        """Expected cost: the expected output where one was given, else the worst case."""
        return math.fsum(r.usd_expected if r.usd_expected is not None else r.usd_max for r in self.rows) * self.repeats

    @property
    def input_tokens(self) -> int:
        return sum(r.input_tokens for r in self.rows) * self.repeats

    @property
    def as_of(self) -> str:
        return ", ".join(sorted({r.as_of for r in self.rows}))

    def to_frame(self):
        """One row per planned request (labels, tokens, USD for one call and for all repeats)."""
        import pandas as pd

        df = pd.DataFrame([r.as_dict() for r in self.rows])
        if not df.empty:
            df["repeats"] = self.repeats
            df["total_usd_max"] = df["usd_max"] * self.repeats
            df["total_usd_expected"] = df["usd_expected"].fillna(df["usd_max"]) * self.repeats
        return df

    def summary(self, by: Sequence[str] = ("model",)):
        """Totals grouped by label columns (e.g. ``("variant", "model")``)."""
        df = self.to_frame()
        cols = ["input_tokens", "max_output_tokens", "total_usd_max", "total_usd_expected"]
        if df.empty:
            return df
        out = df.groupby(list(by), sort=False)[cols].sum()
        out[["input_tokens", "max_output_tokens"]] *= self.repeats
        return out.reset_index()

    def __str__(self) -> str:
        from .formatting import usd

        return (
            f"{self.requests} requests: up to {usd(self.usd)} (expected {usd(self.usd_expected)}); "
            f"prices as of {self.as_of}"
        )


def estimate_matrix_cost(
    requests: Iterable[PlannedRequest | Mapping[str, Any]],
    repeats: int = 1,
    *,
    batch: bool = False,
    detail_default: str = "auto",
    deployments: Mapping[str, str] | None = None,
    prices: PriceTable | None = None,
) -> MatrixEstimate:
    """Price every planned call of a run (cases x variants x targets, images included) before it starts.

    ``requests`` are :class:`PlannedRequest` objects or dicts with the same keys; any other keys of a dict
    (``case``, ``variant``, ``target``...) become labels. Each distinct request is counted once.
    """
    if repeats < 1:
        raise DataError(f"repeats = {repeats}: a run makes each call at least once.")
    table = prices or load_prices()
    rows = []
    for i, req in enumerate(requests):
        req = _planned(req, i)
        try:
            rows.append(
                estimate_request_cost(
                    req.messages,
                    req.model,
                    req.max_output_tokens,
                    expected_output_tokens=req.expected_output_tokens,
                    tools=req.tools,
                    batch=batch,
                    detail_default=detail_default,
                    deployments=deployments,
                    prices=table,
                    labels=req.labels,
                )
            )
        except (DataError, PriceUnknown) as e:
            where = ", ".join(f"{k}={v}" for k, v in req.labels.items()) or f"request {i}"
            raise type(e)(f"{where}: {e}") from e
    return MatrixEstimate(tuple(rows), repeats)


def _planned(req: PlannedRequest | Mapping[str, Any], i: int) -> PlannedRequest:
    if isinstance(req, PlannedRequest):
        return req
    known = {"messages", "model", "max_output_tokens", "expected_output_tokens", "tools", "labels"}
    if "messages" not in req or "model" not in req:
        raise DataError(f"planned request {i} needs 'messages' and 'model' (got keys {sorted(req)}).")
    labels = {**{k: v for k, v in req.items() if k not in known}, **dict(req.get("labels") or {})}
    return PlannedRequest(**{k: v for k, v in req.items() if k in known - {"labels"}}, labels=labels)


# --------------------------------------------------------------------------------------------------- budget


class Budget:
    """A spending limit for a run: refuses a plan that could exceed it, and tracks actual spend (thread-safe).

    The harness calls :meth:`check_estimate` before starting, :meth:`add` after every call, and stops
    scheduling new calls once :attr:`exceeded` is true (or calls :meth:`check`, which raises).
    """

    def __init__(self, limit_usd: float, basis: str = "max"):
        if limit_usd < 0:
            raise DataError(f"budget = {limit_usd}: a budget is a non-negative amount of USD.")
        if basis not in ("max", "expected"):
            raise DataError(f"basis = {basis!r}: use 'max' (every call at max_tokens) or 'expected'.")
        self.limit_usd = float(limit_usd)
        self.basis = basis
        self._spent = 0.0
        self._calls = 0
        self._lock = threading.Lock()

    @property
    def spent(self) -> float:
        with self._lock:
            return self._spent

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    @property
    def remaining(self) -> float:
        return self.limit_usd - self.spent

    @property
    def exceeded(self) -> bool:
        return self.spent > self.limit_usd

    def check_estimate(self, estimate: CostEstimate | MatrixEstimate) -> None:
        """Raise :class:`BudgetExceeded` if what has been spent plus ``estimate`` could pass the limit."""
        figure = estimate.usd_max if self.basis == "max" else estimate.usd_expected
        if figure is None:
            figure = estimate.usd_max
        spent = self.spent
        if spent + figure > self.limit_usd:
            calls = getattr(estimate, "requests", 1)
            what = "with every call using its max_output_tokens" if self.basis == "max" else "at the expected output"
            already = f" on top of ${spent:,.4f} already spent" if spent else ""
            raise BudgetExceeded(
                f"This run could cost ${figure:,.4f} ({calls} calls, {what}){already}, over the budget of "
                f"${self.limit_usd:,.4f} (prices as of {estimate.as_of}). Lower max_tokens, repeats or the sample "
                f"size, pick a cheaper model, or raise the budget."
            )

    def add(self, cost: Cost | float) -> float:
        """Record the actual cost of one call; returns the running total."""
        usd = cost.usd if isinstance(cost, Cost) else float(cost)
        with self._lock:
            self._spent += usd
            self._calls += 1
            return self._spent

    def check(self) -> None:
        """Raise :class:`BudgetExceeded` once actual spend has passed the limit."""
        spent = self.spent
        if spent > self.limit_usd:
            raise BudgetExceeded(
                f"Actual spend ${spent:,.4f} after {self.calls} calls passed the budget of ${self.limit_usd:,.4f}; "
                f"the run was stopped. Raise the budget to continue, or resume with fewer cases."
            )

    def __repr__(self) -> str:
        return f"Budget(limit_usd={self.limit_usd}, spent={self.spent:.6f}, basis={self.basis!r})"
