"""Plan a run: render every request of the matrix, resolve its target and provider, key it - before anything is sent.

A template variable missing from the dataset, an unknown model or a profile that cannot be built fails here,
naming the variant, case and target, so a run never starts half-way wrong. The plan is also what the cost
estimate prices (:func:`estimate`) and what the budget gate checks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, DataError, WorkbenchError
from ..experiment import Cell, Experiment
from ..providers import PreparedRequest, Provider
from ..store import ResponseCache, content_hash
from ..variants import Target, check_variables

log = logging.getLogger("workbench.harness")


@dataclass
class PlannedCell:
    cell: Cell
    request: PreparedRequest
    target: Target
    provider: Provider
    cell_key: str
    cache_key: str

    @property
    def est_tokens(self) -> int:
        """Azure's arrival-time estimate (prompt + max output tokens); only needed under a TPM quota."""
        return _estimate_prompt_tokens(self.request) + int(self.request.max_output_tokens or 0)



def resolve_providers(exp: Experiment, providers: Mapping[str, Provider] | None = None) -> dict[str, Provider]:
    """The given providers plus one per profile the experiment's targets name (SDK retries off: the harness
    retries itself)."""
    out: dict[str, Provider] = dict(providers or {})
    for v in exp.variants:
        for t in exp.targets_for(v):
            if t.profile not in out:
                out[t.profile] = Provider(t.profile, max_retries=0)  # the harness retries itself
    return out


def request_params(variant, seed: int | None = None) -> dict[str, Any]:
    """The parameters sent for ``variant``: its own, the experiment's seed, and its response format."""
    params = dict(variant.params)
    if seed is not None:
        params.setdefault("seed", seed)
    if variant.response_format:
        params["response_format"] = variant.response_format
    return params


def plan(exp: Experiment, providers: Mapping[str, Provider] | None = None) -> list[PlannedCell]:
    """Render every request of the matrix and resolve its target, or fail before anything is sent."""
    ds = exp.load_cases()
    problems = check_variables(exp.variants, ds.cases, ds.source)
    if problems:
        more = " (and possibly more)" if len(problems) >= 10 else ""
        raise DataError("Template variables are missing from the dataset" + more + ":\n  - " + "\n  - ".join(problems))
    provs = resolve_providers(exp, providers)
    planned: list[PlannedCell] = []
    seen_warnings: set[str] = set()
    base_dir = exp.base_dir
    for cell in exp.cells():
        provider = provs[cell.target.profile]
        try:
            provider.model_info(cell.target.model)
        except WorkbenchError as e:
            raise ConfigError(f"Target {cell.target.label!r} (variant {cell.variant.name!r}): {e}") from None
        messages = cell.variant.render(cell.case, base_dir=base_dir)
        req = provider.prepare(messages, cell.target.model, warn=False, **request_params(cell.variant, exp.seed))
        for w in req.warnings:  # say each adaptation once per run, not once per cell
            if w not in seen_warnings:
                seen_warnings.add(w)
                log.warning("%s: %s", cell.variant.name, w)
        body = req.body()
        cache_key = ResponseCache.key(provider.identity, body, cell.repeat)
        cell_key = content_hash(exp.name, cell.key, cache_key)[:32]
        planned.append(PlannedCell(cell, req, cell.target, provider, cell_key, cache_key))
    return planned


def _estimate_prompt_tokens(req: PreparedRequest) -> int:
    try:
        from ..tokens import count_messages

        return int(count_messages(req.messages, req.model.name).total)
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


def estimate_planned(planned: list[PlannedCell], repeats: int = 1):
    """A :class:`workbench.costs.MatrixEstimate` with one row per planned call (labelled case/variant/target),
    each made ``repeats`` times."""
    from ..costs import PlannedRequest, estimate_matrix_cost

    return estimate_matrix_cost(
        (PlannedRequest(p.request.messages, p.request.model.name, p.request.max_output_tokens,
                        labels={"case": p.cell.case.id, "variant": p.cell.variant.name, "target": p.target.label,
                                "model": p.request.model.name})
         for p in planned),
        repeats=repeats,
    )


def estimate(experiment: Experiment, providers: Mapping[str, Provider] | None = None):
    """Price a whole experiment before it runs (cases x variants x targets x repeats, images included).

    Returns a :class:`workbench.costs.MatrixEstimate`: ``.usd`` (worst case, outputs at max tokens),
    ``.summary(by=("variant", "model"))``, ``.to_frame()``.
    """
    # repeats send the same request: price the first and multiply
    first = [p for p in plan(experiment, providers) if p.cell.repeat == 0]
    return estimate_planned(first, repeats=experiment.repeats)


