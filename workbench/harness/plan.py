"""Plan a run: render every request of the matrix, resolve its target and provider, key it - before anything is sent.

A template variable missing from the dataset, an unknown model or a profile that cannot be built fails here,
naming the variant, case and target, so a run never starts half-way wrong. The plan is also what the cost
estimate prices (:func:`estimate`) and what the budget gate checks.

Each cell has two keys: ``cell_key``, the logical cell (experiment, case, variant, target, repeat) that the run
ledger and the Batch API's ``custom_id`` use, and ``cache_key``, the request fingerprint (backend identity,
body, repeat) that the response cache uses and the ledger records to notice a changed request.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, DataError, WorkbenchError
from ..experiment import Cell, Experiment
from ..ledger import PlannedRow, cell_key
from ..providers import PreparedRequest, Provider
from ..store import ResponseCache, canonical_json
from ..variants import Target, check_variables

log = logging.getLogger("workbench.harness")


@dataclass
class PlannedCell:
    cell: Cell
    request: PreparedRequest
    target: Target
    provider: Provider
    cell_key: str  # the logical cell (ledger identity, Batch API custom_id)
    cache_key: str  # the request fingerprint: backend identity + body + repeat (response cache key)
    seq: int = 0  # position in the plan
    request_identity: str = ""  # canonical JSON: backend, endpoint, api_version, deployment (for change messages)

    @property
    def est_tokens(self) -> int:
        """Azure's arrival-time estimate (prompt + max output tokens); only needed under a TPM quota."""
        return _estimate_prompt_tokens(self.request) + int(self.request.max_output_tokens or 0)

    def ledger_row(self) -> PlannedRow:
        c = self.cell
        return PlannedRow(self.cell_key, self.seq, c.case.id, c.variant.name, self.target.label, c.repeat,
                          self.cache_key, self.request_identity)


def resolve_providers(exp: Experiment, providers: Mapping[str, Provider] | None = None) -> dict[str, Provider]:
    """The given providers plus one per profile the experiment's targets name (SDK retries off: the harness
    retries itself)."""
    out: dict[str, Provider] = dict(providers or {})
    for v in exp.variants:
        for t in exp.targets_for(v):
            if t.profile not in out:
                out[t.profile] = Provider(t.profile, max_retries=0)  # the harness retries itself
    return out


def request_params(variant, seed: int | None = None, case: Any = None, source: str | None = None) -> dict[str, Any]:
    """The parameters sent for ``variant``: its own, the experiment's seed, its response format and its tools
    (their templates rendered for ``case`` when one is given)."""
    params = dict(variant.params)
    params.update(variant.tool_params(case, source))
    if seed is not None:
        params.setdefault("seed", seed)
    if variant.response_format:
        params["response_format"] = variant.response_format
    return params


class Planner:
    """The matrix of an experiment, each cell rendered and keyed on demand (``planner.cell(seq)``).

    Building one checks the template variables against the dataset and resolves every target's provider;
    iterating renders every request, so a bad template, image or model fails before anything is sent. The
    harness iterates once to check and key the whole plan, then renders each cell again when it is about to be
    sent instead of holding every rendered request in memory: memory stays flat in the run's size.
    """

    def __init__(self, exp: Experiment, providers: Mapping[str, Provider] | None = None):
        self.exp = exp
        ds = exp.load_cases()
        problems = check_variables(exp.variants, ds.cases, ds.source)
        if problems:
            more = " (and possibly more)" if len(problems) >= 10 else ""
            raise DataError("Template variables are missing from the dataset" + more + ":\n  - "
                            + "\n  - ".join(problems))
        self.providers = resolve_providers(exp, providers)
        for provider in self.providers.values():
            provider.register_key()  # so a prompt holding the key is refused below, not sent
        self.source = ds.source
        check_tools(exp, ds.cases, ds.source)
        # the matrix by arithmetic, in the order of Experiment.cells() (case-major): one entry per case, one per
        # (variant, target, repeat) - not one object per cell, so a 200k-cell plan costs no more memory than 2k
        self.cases = list(ds.cases)
        self.per_case = [(v, t, r) for v in exp.variants for t in exp.targets_for(v) for r in range(exp.repeats)]
        self._checked: set[tuple[str, str | None]] = set()
        self._seen_warnings: set[str] = set()
        self._identity: dict[tuple[str, str], str] = {}

    def __len__(self) -> int:
        return len(self.cases) * len(self.per_case)

    def __iter__(self) -> Iterator[PlannedCell]:
        return (self.cell(i) for i in range(len(self)))

    def targets(self) -> dict[str, Provider]:
        """Target label -> provider, for every target of the plan."""
        return {t.label: self.providers[t.profile] for _v, t, _r in self.per_case}

    def matrix_cell(self, seq: int) -> Cell:
        """Cell ``seq`` of the matrix (the same as ``list(experiment.cells())[seq]``)."""
        variant, target, repeat = self.per_case[seq % len(self.per_case)]
        return Cell(self.cases[seq // len(self.per_case)], variant, target, repeat)

    def cell(self, seq: int) -> PlannedCell:
        """Render and key cell ``seq`` of the plan."""
        cell = self.matrix_cell(seq)
        exp = self.exp
        provider = self.providers[cell.target.profile]
        check = (cell.target.profile, cell.target.model)
        if check not in self._checked:
            try:
                provider.model_info(cell.target.model)
            except WorkbenchError as e:
                raise ConfigError(f"Target {cell.target.label!r} (variant {cell.variant.name!r}): {e}") from None
            self._checked.add(check)
        messages = cell.variant.render(cell.case, base_dir=exp.base_dir, source=self.source)
        params = request_params(cell.variant, exp.seed, cell.case, self.source)
        req = checked_prepare(provider, cell, messages, params, self.source)
        for w in req.warnings:  # say each adaptation once per run, not once per cell
            if w not in self._seen_warnings:
                self._seen_warnings.add(w)
                log.warning("%s: %s", cell.variant.name, w)
        cache_key = ResponseCache.key(provider.identity, req.body(), cell.repeat)
        key = cell_key(exp.name, cell.case.id, cell.variant.name, cell.target.label, cell.repeat)
        return PlannedCell(cell, req, cell.target, provider, key, cache_key, seq,
                           self._request_identity(cell.target.profile, provider, req.deployment))

    def _request_identity(self, profile: str, provider: Provider, deployment: str) -> str:
        key = (profile, deployment)
        if key not in self._identity:
            self._identity[key] = canonical_json({**provider.identity, "deployment": deployment})
        return self._identity[key]


def check_tools(exp: Experiment, cases: list, source: str | None) -> None:
    """Before anything is sent: every ``tool_functions`` entry imports, and every case's expected tool calls
    name a tool of each variant that offers tools (a typo would otherwise fail every cell, silently)."""
    from ..tools import EXPECTED_TOOL_CALLS, did_you_mean, expected_calls, resolve_function, tool_names

    for v in exp.variants:
        for name, ref in v.tool_functions.items():
            resolve_function(ref, f"Variant {v.name!r}, tool_functions.{name}")
        if not v.tools:
            continue
        names = tool_names(v.tools)
        for case in cases:
            if case.vars.get(EXPECTED_TOOL_CALLS) in (None, "") or case.vars.get(EXPECTED_TOOL_CALLS) != \
                    case.vars.get(EXPECTED_TOOL_CALLS):  # (NaN: an empty cell of a table)
                continue
            for call in expected_calls(case.vars[EXPECTED_TOOL_CALLS], case.where(source)):
                if call["name"] not in names:
                    raise DataError(f"{case.where(source)}: {EXPECTED_TOOL_CALLS} names {call['name']!r}, which "
                                    f"variant {v.name!r} does not offer (its tools: {', '.join(names)})"
                                    f"{did_you_mean(call['name'], names) or '.'}")


def plan(exp: Experiment, providers: Mapping[str, Provider] | None = None) -> list[PlannedCell]:
    """Render every request of the matrix and resolve its target, or fail before anything is sent."""
    return list(Planner(exp, providers))


def checked_prepare(provider: Provider, cell: Cell, messages: list[dict[str, Any]], params: dict[str, Any],
                    source: str | None) -> PreparedRequest:
    """``provider.prepare``, whose refusal of a request (a parameter, an image for a model without vision)
    is told with the variant, the target and the case's row, and before the first request of the run is sent."""
    try:
        return provider.prepare(messages, cell.target.model, warn=False, **params)
    except DataError as e:
        images = cell.variant.image_refs(cell.case) if cell.variant.images else []
        shown = f" (images: {', '.join(_short(r) for r in images)})" if images else ""
        raise DataError(f"Variant {cell.variant.name!r} on target {cell.target.label!r}, "
                        f"{cell.case.where(source)}{shown}: {e}") from None


def _short(ref: str) -> str:
    return ref if not ref.startswith("data:") else ref[:ref.find(",") if "," in ref else 30] + ",..."


def _estimate_prompt_tokens(req: PreparedRequest) -> int:
    try:
        from ..tokens import count_messages

        return int(count_messages(req.messages, req.model.name, tools=req.params.get("tools")).total)
    except Exception:  # an estimate is only for pacing: fall back to ~4 characters a token
        return sum(len(json.dumps(m.get("content", ""))) for m in req.messages) // 4 + 3 * len(req.messages) + 3


def estimate_cost(planned: list[PlannedCell]) -> float | None:
    """Upper-bound dollars for the planned cells (prompts exact, outputs at max tokens); None if a price is
    unknown."""
    try:
        return estimate_planned(planned).usd
    except WorkbenchError as e:
        log.warning("cannot estimate the cost: %s", e)
        return None


def estimate_planned(planned: list[PlannedCell], repeats: int = 1, *, batch: bool = False):
    """A :class:`workbench.costs.MatrixEstimate` with one row per planned call (labelled case/variant/target),
    each made ``repeats`` times (``batch``: at Batch API prices)."""
    from ..costs import PlannedRequest, estimate_matrix_cost

    return estimate_matrix_cost(
        (PlannedRequest(p.request.messages, p.request.model.name, p.request.max_output_tokens,
                        tools=p.request.params.get("tools"),
                        labels={"case": p.cell.case.id, "variant": p.cell.variant.name, "target": p.target.label,
                                "model": p.request.model.name})
         for p in planned),
        repeats=repeats,
        batch=batch,
    )


def estimate(experiment: Experiment, providers: Mapping[str, Provider] | None = None):
    """Price a whole experiment before it runs (cases x variants x targets x repeats, images included).

    Returns a :class:`workbench.costs.MatrixEstimate`: ``.usd`` (worst case, outputs at max tokens),
    ``.summary(by=("variant", "model"))``, ``.to_frame()``.
    """
    # repeats send the same request: price the first and multiply
    first = [p for p in plan(experiment, providers) if p.cell.repeat == 0]
    return estimate_planned(first, repeats=experiment.repeats)


