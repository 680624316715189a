"""Fine-tuning data from a run: select cells, build examples, check the format, split, estimate, write.

:func:`finetune_data` does everything but write (look at it in the notebook); :func:`export_finetune_data`
also writes ``train.jsonl``, ``validation.jsonl`` and ``finetune.json`` (what was selected, what was left out
and why, where every line came from, the token counts and cost estimates) into a folder. ``workbench
finetune-data RUN --where ... --out DIR`` is the same call.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from ..errors import DataError
from ..records import HUMAN_SCORER
from ..schema import Model
from .estimate import MIN_TRAINING_EXAMPLES, TrainingEstimate, estimate_all, estimate_training, example_tokens
from .estimate import training_price as _training_price
from .examples import Example, build_examples, split_examples
from .select import Term, matches, parse_where
from .validate import Problem, validate_examples

if TYPE_CHECKING:  # pragma: no cover
    from ..results import Results

TRAIN_FILE, VALIDATION_FILE, SUMMARY_FILE = "train.jsonl", "validation.jsonl", "finetune.json"
FINETUNE_SCHEMA_VERSION = 1


class FinetuneOptions(Model):
    """The choices of an export, validated once for Python, the CLI and the notebook (a bad one raises
    SpecError naming the field; the CLI names the flag)."""

    model_config = ConfigDict(extra="forbid")
    _spec_noun = "fine-tuning options"

    where: list[str] | None = Field(None, description="selection terms (default: human=approved)")
    answer: Literal["auto", "output", "corrected", "expected"] = "auto"
    base_model: str = "gpt-4o-mini"
    validation: float = Field(0.2, ge=0, lt=1, description="share of cases held out for validation")
    seed: int = 0
    epochs: int | None = Field(None, ge=1, le=50)
    system: str = Field("keep", min_length=1, description="keep, drop, or the text of a system message")


@dataclass
class FinetuneData:
    """The examples a selection of a run gives, checked and split, with their estimates (nothing written yet)."""

    base_model: str
    where: tuple[Term, ...]
    answer: str
    train: list[Example]
    validation: list[Example]
    estimate: TrainingEstimate
    estimates: list[TrainingEstimate]
    selected: int  # cells the selection matched
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (cell or line, why)
    warnings: list[Problem] = field(default_factory=list)
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)
    seed: int = 0
    validation_share: float = 0.2
    run_dir: str | None = None

    def __repr__(self) -> str:
        return (f"<FinetuneData {len(self.train)} train + {len(self.validation)} validation examples for "
                f"{self.base_model}: {self.estimate.describe()}>")

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": FINETUNE_SCHEMA_VERSION, "run_dir": self.run_dir, "base_model": self.base_model,
            "where": [str(t) for t in self.where], "answer": self.answer, "seed": self.seed,
            "validation_share": self.validation_share, "selected_cells": self.selected,
            "train_examples": len(self.train), "validation_examples": len(self.validation),
            "duplicates_dropped": self.duplicates,
            "left_out": [{"cell": c, "reason": r} for c, r in self.left_out],
            "warnings": [str(w) for w in self.warnings], "notes": self.notes,
            "estimate": self.estimate.as_dict(), "estimates": [e.as_dict() for e in self.estimates],
            "lines": {TRAIN_FILE: [e.source() for e in self.train],
                      VALIDATION_FILE: [e.source() for e in self.validation]},
        }

    def summary(self) -> str:
        """What a person reads before uploading: counts, what was left out, the estimate per base model."""
        lines = [f"{len(self.train)} training and {len(self.validation)} validation examples from "
                 f"{self.selected} selected cells (where {' and '.join(map(str, self.where))}; answer: {self.answer})"]
        if self.duplicates:
            lines.append(f"{self.duplicates} identical examples written once")
        if self.left_out:
            lines.append(f"{len(self.left_out)} left out: " + "; ".join(f"{c}: {r}" for c, r in self.left_out[:5])
                         + (" ..." if len(self.left_out) > 5 else ""))
        if len(self.train) < MIN_TRAINING_EXAMPLES:
            lines.append(f"fewer than {MIN_TRAINING_EXAMPLES} training examples: OpenAI and Azure OpenAI refuse "
                         f"such a file - review and approve more cells")
        lines += [str(w) for w in self.warnings[:5]] + self.notes
        lines.append("estimate: " + self.estimate.describe())
        lines += ["  " + e.describe() for e in self.estimates if e.model != self.estimate.model]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from ..formatting import count, usd

        rows = "".join(
            f"<tr><td>{html.escape(e.model)}</td><td style='text-align:right'>{count(e.file_tokens)}</td>"
            f"<td style='text-align:right'>{e.epochs}</td><td style='text-align:right'>{count(e.training_tokens)}"
            f"</td><td style='text-align:right'>{usd(e.usd) if e.usd is not None else 'unknown'}</td></tr>"
            for e in self.estimates)
        head = html.escape(self.summary()).replace("\n", "<br>")
        return (f'<div class="wb-finetune" style="font:13px system-ui,sans-serif"><p>{head}</p><table>'
                "<thead><tr><th>base model</th><th>file tokens</th><th>epochs</th><th>training tokens</th>"
                f"<th>training cost</th></tr></thead><tbody>{rows}</tbody></table></div>")

    def write(self, out: str | Path) -> dict[str, Path]:
        """``train.jsonl``, ``validation.jsonl`` (when there are validation examples) and ``finetune.json``."""
        from ..runs.layout import atomic_write
        from ..secrets import redact

        out = Path(out)
        if out.exists() and not out.is_dir():
            raise DataError(f"--out {out} is a file; give a folder for the fine-tuning files")
        files = {"train": out / TRAIN_FILE, "summary": out / SUMMARY_FILE}
        atomic_write(files["train"], "".join(redact(e.line()) + "\n" for e in self.train))
        stale = out / VALIDATION_FILE
        if self.validation:
            files["validation"] = stale
            atomic_write(stale, "".join(redact(e.line()) + "\n" for e in self.validation))
        elif stale.exists():  # an earlier export's validation file would pair with this train file
            stale.unlink()
        atomic_write(files["summary"], redact(json.dumps(self.as_dict(), indent=2, ensure_ascii=False)) + "\n")
        return files


def _load(results: Results | str | Path) -> Results:
    from ..results import Results

    if isinstance(results, Results):
        return results.reload_reviews() if results.run_dir is not None else results  # the latest reviews
    from ..runs.layout import load_run

    run_dir = Path(results)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir} is not a run folder (it should hold results.sqlite)")
    loaded = load_run(run_dir)
    if loaded is None:
        raise DataError(f"{run_dir} holds no results (results.sqlite or results.jsonl): nothing to export")
    return loaded


def _expected(results: Results, needed: bool) -> dict[str, Any]:
    if results.experiment is not None:
        try:
            return {c.id: c.expected for c in results.experiment.load_cases()}
        except Exception as e:
            if needed:
                raise DataError(f"the run's dataset cannot be read for its expected answers: {e}") from e
            return {}
    if needed:
        raise DataError("expected answers are asked for, but the run's experiment spec is not available (the run "
                        "folder has no experiment.json and no stored spec): pass Results with .experiment set")
    return {}


def finetune_data(results: Results | str | Path, *, where: Sequence[str] | str | None = None,
                  answer: str = "auto", base_model: str = "gpt-4o-mini", validation: float = 0.2, seed: int = 0,
                  epochs: int | None = None, system: str = "keep") -> FinetuneData:
    """Select cells of a run (``where``: :mod:`workbench.finetune.select`), build chat-format examples with the
    ``answer`` (``auto``: a reviewer's corrected output if any, else the output; ``output``; ``corrected``;
    ``expected``), check them against the format rules and ``base_model``'s per-example token limit (a broken
    example is left out and listed, never silently), split train/validation by case (``seed``), and estimate
    tokens and training cost for every fine-tunable base model."""
    opts = FinetuneOptions(where=[where] if isinstance(where, str) else where, answer=answer,
                           base_model=base_model, validation=validation, seed=seed, epochs=epochs, system=system)
    price = _training_price(opts.base_model)  # an unknown base model is refused before anything is read
    res = _load(results)
    terms = parse_where(opts.where, [s for s in res.scorers if s != HUMAN_SCORER])
    answer, validation, seed, epochs, system = opts.answer, opts.validation, opts.seed, opts.epochs, opts.system
    wants_expected = answer == "expected" or any(t.key == "expected" for t in terms)
    expected = _expected(res, wants_expected)
    chosen = [r for r in res.records if matches(r, terms, expected)]
    built = build_examples(chosen, answer=answer, system=system, expected=expected)
    counts = [example_tokens(e.data, price.model) for e in built.examples]
    problems = validate_examples([e.data for e in built.examples], token_counts=counts, limit=price.example_tokens)
    broken = {p.line for p in problems if p.severity == "error"}
    left_out = list(built.skipped) + [
        (_where(built.examples[p.line - 1]), f"{p.code}: {p.message}") for p in problems if p.severity == "error"]
    good = [e for i, e in enumerate(built.examples, 1) if i not in broken]
    train, valid = split_examples(good, validation, seed)
    train_data, valid_data = [e.data for e in train], [e.data for e in valid]
    return FinetuneData(
        base_model=price.model, where=terms, answer=answer, train=train, validation=valid,
        estimate=estimate_training(train_data, price.model, epochs=epochs, validation=valid_data),
        estimates=estimate_all(train_data, epochs=epochs, validation=valid_data), selected=len(chosen),
        left_out=left_out, warnings=[p for p in problems if p.severity == "warning"], duplicates=built.duplicates,
        notes=built.notes, seed=seed, validation_share=validation,
        run_dir=str(res.run_dir) if res.run_dir else None)


def _where(e: Example) -> str:
    return f"{e.case_id} / {e.variant} / {e.target} / repeat {e.repeat}"


def export_finetune_data(results: Results | str | Path, out: str | Path, *, where: Sequence[str] | str | None = None,
                         answer: str = "auto", base_model: str = "gpt-4o-mini", validation: float = 0.2,
                         seed: int = 0, epochs: int | None = None, system: str = "keep",
                         strict: bool = False) -> FinetuneData:
    """:func:`finetune_data`, written to ``out``. ``strict``: refuse (DataError, nothing written) when any selected
    cell was left out or no training example remains."""
    data = finetune_data(results, where=where, answer=answer, base_model=base_model, validation=validation,
                         seed=seed, epochs=epochs, system=system)
    if not data.train:
        raise DataError(f"no training examples: {data.selected} cells matched where "
                        f"{' and '.join(map(str, data.where))}" + (f", and all were left out ({data.left_out[0][1]}, "
                                                                     f"...)" if data.left_out else "")
                        + ". Review and approve cells first, or choose other --where terms.")
    if strict and data.left_out:
        shown = "; ".join(f"{c}: {r}" for c, r in data.left_out[:3])
        raise DataError(f"--strict: {len(data.left_out)} selected cells would be left out ({shown}); nothing written")
    data.write(out)
    return data
