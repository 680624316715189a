"""The HTML report of a run: one self-contained file, a pure function of (Results, Manifest, executed notebook).

``build_report(results, manifest, notebook) -> str``. What it guarantees:

- **Offline and self-contained**: charts are inline base64 PNGs, styles are inline, there is no script at all
  and nothing is fetched. A Content-Security-Policy (``default-src 'none'; img-src data:; style-src
  'unsafe-inline'``) makes that a rule the browser enforces, not just a habit.
- **Model output cannot run**: every value goes through jinja2 autoescaping (model text through :func:`show`);
  HTML the notebook produced is sanitized with bleach (an allow-list of tags and attributes, ``data:`` images
  only); and with no ``script-src`` in the policy even a sanitizer bug would not execute anything.
- **Each number once, written for people**: one table per question (scores, the paired comparison, latency,
  tokens and cost), numbers from :mod:`workbench.formatting` (percentages for pass rates, whole tokens, dollars
  with significant digits). A section or chart without content is left out (no cost chart for a free model,
  no flaky-cases table without repeats).
- **Every case findable**: a case index (one row per case, an anchor ``#case-<id>``, a verdict per variant,
  and a filter made of radio buttons and CSS - no script - for the cases that fail, refuse or hedge somewhere),
  then every output per variant and outcome (``#variant-<v>-<outcome>``, ``#out-<v>-<case>``), long text
  folded in ``<details>``, the evidence each scorer quoted marked in the output.
- **The notebook last and folded**: its outputs repeat the sections above, so it is one closed ``<details>``
  (open when the run has no results: then it is the content). Widgets render from their saved state.

:func:`build_index` renders ``reports/index.html`` from the manifests of every run.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

from .. import formatting as fmt
from ..formatting import summary_row, usd
from ..records import VERDICTS
from ..safe_text import visible_text
from ..scorers.registry import scorer_name
from ..secrets import redact
from .manifest import SOURCES, Manifest
from .notebook_html import NotebookRenderer, clip, sanitize_html

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..results import Results

REPORT_SCHEMA = 1
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
MAX_CASES = 300  # per variant in the outputs section (all of them are in results.jsonl)
FOLD_CHARS = 320  # longer outputs are folded: the first lines show, the rest opens on a click
EVIDENCE_CONTEXT = 60  # characters shown either side of evidence that a fold would hide
OPEN_GROUP = 25  # an outcome group with at most this many cases starts open (passes always start closed)
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
OUTCOME_ORDER = ("fail", "refused", "ambiguous", "filtered", "error", "pass", "none")
OUTCOME_LABEL = {"fail": "failed", "refused": "refused", "ambiguous": "ambiguous", "filtered": "filtered",
                 "error": "errors", "pass": "passed", "none": "not scored"}


# ============================================================================================ formatting

fmt_usd = usd  # the one money format (workbench.formatting); kept under its old name for callers


def fmt_num(v: Any, digits: int = 2) -> str:
    return fmt.number(v, digits)


def fmt_ci(mean: Any, low: Any, high: Any) -> str:
    return fmt.interval(mean, low, high)


def fmt_p(p: Any) -> str:
    return fmt.p_value(p)


def show(text: Any) -> Markup:
    """Model or user text, escaped for HTML (the one place such text enters the page)."""
    return escape("" if text is None else str(text))


def _isnan(v: Any) -> bool:
    return fmt.is_missing(v)


# ============================================================================================ tables


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *,
          headers: Mapping[str, str] | None = None, classes: Mapping[str, str] | None = None,
          css: str = "data") -> Markup:
    """An HTML table whose every cell is escaped (values may be Markup that is already safe); numbers are
    right-aligned and written by :func:`workbench.formatting.number`."""
    columns = list(columns or (rows[0].keys() if rows else []))
    headers = headers or {}
    classes = classes or {}
    out = [f'<table class="{escape(css)}"><thead><tr>']
    out += [f"<th>{escape(headers.get(c, c))}</th>" for c in columns]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for c in columns:
            v = row.get(c)
            cls = classes.get(c) or ("num" if _is_number(v) else None)
            attr = f' class="{escape(cls)}"' if cls else ""
            cell = v if isinstance(v, Markup) else escape(fmt_num(v) if not isinstance(v, str) else v)
            out.append(f"<td{attr}>{cell}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return Markup("".join(out))


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def frame_table(df: pd.DataFrame, columns: Sequence[str] | None = None, **kw: Any) -> Markup:
    if df is None or len(df) == 0:
        return Markup('<p class="muted">(none)</p>')
    return table(df.to_dict("records"), columns or list(df.columns), **kw)


def badge(text: str, kind: str) -> Markup:
    return Markup(f'<span class="badge {escape(kind)}">{escape(text)}</span>')


def status_badge(status: str) -> Markup:
    kind = "ok" if status.startswith("complete") and "error" not in status else (
        "bad" if status.startswith(("failed", "no results")) else "warn")
    return badge(status, kind)


def verdict_badge(verdict: str, text: str | None = None) -> Markup:
    kind = {"pass": "ok", "fail": "bad", "error": "bad", "refused": "refused", "ambiguous": "ambiguous",
            "filtered": "filtered"}.get(verdict, "muted")
    return badge(text or verdict, kind)


# ============================================================================================ charts


def chart_img(fig: Any, alt: str) -> Markup:
    """A matplotlib figure as an inline ``<img>`` (base64 PNG), closed afterwards."""
    import io

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    finally:
        _close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return Markup(f'<img class="chart" src="data:image/png;base64,{data}" alt="{escape(alt)}">')


def _close(fig: Any) -> None:
    try:
        fig.clear()
    except Exception:  # pragma: no cover
        pass


def _chart(make, alt: str) -> Markup | None:
    """Draw a chart, or leave it out (with the reason in the page) if its data cannot be drawn."""
    try:
        return chart_img(make(), alt)
    except Exception as e:
        return Markup(f'<p class="muted">({escape(alt)}: not drawn - {escape(redact(e))})</p>')


# ============================================================================================ anchors


def anchor(*parts: Any) -> str:
    """An HTML id from names that may hold any character (case ids, variant names): letters, digits and
    ``-_.`` kept, the rest hex-escaped, so distinct names never share an anchor."""
    def one(p: Any) -> str:
        return re.sub(r"[^A-Za-z0-9_.]", lambda m: "-" + format(ord(m.group(0)), "x") + "-", str(p))
    return "-".join(one(p) for p in parts)


# ============================================================================================ sections


def experiment_section(results: Results | None, m: Manifest) -> dict[str, Any]:
    spec = m.spec or {}
    variants = []
    for v in spec.get("variants") or []:
        variants.append({
            "variant": v.get("name", ""),
            "description": v.get("description", ""),
            "system": v.get("system", "") or "",
            "user": v.get("user", "") or "",
            "params": json.dumps(v.get("params") or {}, sort_keys=True),
            "output": "JSON schema" if v.get("response_format") else "text",
        })
    facts = [
        ("experiment", m.experiment),
        ("description", (spec.get("description") or "").strip()),
        ("dataset", _dataset_line(m)),
        ("targets", ", ".join(t if isinstance(t, str) else f"{t.get('profile')}:{t.get('model') or ''}".rstrip(":")
                              for t in spec.get("targets") or []) or ", ".join(t.target for t in m.targets)),
        ("scorers", ", ".join(scorer_name(s) for s in spec.get("scorers") or []) or
         ", ".join(results.scorers if results is not None else [])),
        ("repeats", spec.get("repeats", 1)),
        ("sample", f"{spec['sample']} cases (sample_seed {spec.get('sample_seed', 0)})" if spec.get("sample")
         else "all cases"),
        ("request seed", spec.get("seed")),
        ("budget", fmt_usd(spec["budget_usd"]) if spec.get("budget_usd") is not None else "none"),
        ("started by", _source_line(m)),
    ]
    return {"facts": [(k, v) for k, v in facts if v not in (None, "")], "variants": variants,
            "fold": FOLD_CHARS // 2}


def _source_line(m: Manifest) -> str | None:
    if not m.source:
        return None
    what = SOURCES.get(m.source, m.source)
    return f"{what} ({m.notebook.name})" if m.notebook.name and not m.notebook.name.startswith("(") else what


def _dataset_line(m: Manifest) -> str:
    d = m.dataset
    if d is None:
        return ""
    sha = f", sha256 {d.sha256[:12]}" if d.sha256 else ""
    return f"{d.name or ''}: {d.n_cases} cases{sha} ({d.source or ''})".strip()


def scores_section(results: Results) -> list[dict[str, Any]]:
    """One table per scorer: the score with its interval per variant and target, and the counts behind it -
    each outcome count links to that variant's cases with that outcome."""
    from ..viz.eval_charts import plot_scores

    out = []
    n_variants = len(results.variants) * max(1, len(results.targets))
    for scorer in results.scorers:
        try:
            s = results.summary(scorer)
        except Exception as e:
            out.append({"scorer": scorer, "error": redact(e)})
            continue
        order = {v: i for i, v in enumerate(results.variants)}
        records = sorted(s.to_dict("records"), key=lambda r: (order.get(r["variant"], len(order)), str(r["target"])))
        rate = any(fmt.is_rate(r.get("method")) for r in records)
        several_targets = len({r["target"] for r in records}) > 1
        counts = outcome_counts(results, scorer)
        rows = []
        for r in records:
            row = summary_row(r)
            key = (r["variant"], r["target"])
            rows.append({
                "variant": Markup('<a href="#{}">{}</a>').format(_variant_anchor(key, several_targets), row["variant"]),
                **({"target": row["target"]} if several_targets else {}),
                "cases": fmt.count(r.get("n_cases", r["n"])), "scored calls": row["n"],
                "score [95% CI]": Markup("<b>{}</b>").format(row["score [95% CI]"]),
                "outcomes": _outcome_links(counts.get(key, {}), key, several_targets),
                "method": r.get("method", ""),
            })
        repeats = any(r.get("n_cases", r["n"]) != r["n"] for r in records)
        columns = ["variant", *(["target"] if several_targets else []), "cases",
                   *(["scored calls"] if repeats else []), "score [95% CI]", "outcomes", "method"]
        chart = None
        if n_variants > 1:  # one bar says nothing the table does not
            chart = _chart(lambda s=s, scorer=scorer: plot_scores(s, value=scorer, by=("variant", "target")),
                           f"{scorer} per variant with 95% confidence intervals")
        out.append({"scorer": scorer, "rate": rate, "table": table(rows, columns, css="data scores"),
                    "chart": chart})
    return out


def outcome_counts(results: Results, scorer: str) -> dict[tuple[str, str], dict[str, int]]:
    """Per (variant, target): how many scored calls had each verdict (pass, fail, ambiguous, refused, ...)."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for r in results.records:
        s = next((x for x in r.scores if x.scorer == scorer), None)
        verdict = s.outcome if s is not None else ("error" if r.outcome == "error" else "none")
        slot = out.setdefault((r.variant, r.target), {})
        slot[verdict] = slot.get(verdict, 0) + 1
    return out


def _variant_anchor(key: tuple[str, str], several_targets: bool) -> str:
    return anchor("variant", key[0], key[1]) if several_targets else anchor("variant", key[0])


def _outcome_links(counts: Mapping[str, int], key: tuple[str, str], several_targets: bool) -> Markup:
    base = _variant_anchor(key, several_targets)
    parts = [Markup('<a class="oc {}" href="#{}">{} {}</a>').format(v, f"{base}-{v}", counts[v], OUTCOME_LABEL[v])
             for v in OUTCOME_ORDER if counts.get(v)]
    return Markup(" · ").join(parts)


def comparisons(results: Results, scorer: str | None = None) -> list[dict[str, Any]]:
    """Each variant against the first (the baseline), per target, on the same cases (paired)."""
    variants = [v for v in results.variants if v in set(results.df["variant"])] if len(results.df) else []
    rows: list[dict[str, Any]] = []
    if len(variants) < 2:
        return rows
    base = variants[0]
    for sc in ([scorer] if scorer else results.scorers):
        for target in results.targets:
            for other in variants[1:]:
                try:
                    c = results.compare(base, other, scorer=sc, target=target)
                except Exception as e:
                    rows.append({"scorer": sc, "target": target, "a": base, "b": other,
                                 "summary": f"not compared: {redact(e)}"})
                    continue
                rate = c.method.startswith("mcnemar")
                diff = (f"{c.diff * 100:+.0f} points [{c.ci_low * 100:+.0f}, {c.ci_high * 100:+.0f}]" if rate else
                        f"{c.diff:+.2f} [{c.ci_low:+.2f}, {c.ci_high:+.2f}]")
                rows.append({"scorer": sc, "target": target, "a": base, "b": other, "pairs": c.n_pairs,
                             "unpaired": c.n_unpaired, "mean a": c.mean_a, "mean b": c.mean_b,
                             "b − a [95% CI]": diff, "p": fmt_p(c.p_value), "method": c.method,
                             "summary": c.summary, "_significant": c.significant,
                             "better": f"{c.b_better} / {c.a_better}"})
    return rows


def comparison_table(rows: list[dict[str, Any]], several_scorers: bool, several_targets: bool) -> Markup | None:
    if not rows:
        return None
    columns = [*(["scorer"] if several_scorers else []), *(["target"] if several_targets else []), "b",
               "b − a [95% CI]", "p", "pairs", "better", "method"]
    return table(rows, columns, headers={"b": "variant (vs the baseline)", "better": "better / worse cases",
                                         "pairs": "paired cases"})


def latency_section(results: Results) -> dict[str, Any] | None:
    """Per variant and target: the median and 95th-percentile latency of the calls actually sent, and the
    output speed (completion tokens per second). Cache hits are left out (they answered at once); when every
    call came from the cache, the latencies recorded when they were first made are shown."""
    import numpy as np

    sent = [r for r in results.records if r.outcome != "error" and r.latency_s]
    fresh = [r for r in sent if not r.cache_hit]
    use, note = (fresh, None) if fresh else (sent, "Every answer came from the cache: these are the latencies "
                                                   "recorded when the calls were first made.")
    if not use:
        return None
    order = {v: i for i, v in enumerate(results.variants)}
    groups: dict[tuple[str, str], list] = {}
    for r in sorted(use, key=lambda r: (order.get(r.variant, len(order)), r.target)):
        groups.setdefault((r.variant, r.target), []).append(r)
    several_targets = len({k[1] for k in groups}) > 1
    rows = []
    for (variant, target), recs in groups.items():
        lat = np.array([r.latency_s for r in recs], dtype=float)
        speed = [r.completion_tokens / r.latency_s for r in recs if r.completion_tokens and r.latency_s]
        rows.append({"variant": variant, **({"target": target} if several_targets else {}),
                     "calls": fmt.count(len(recs)), "p50": fmt.seconds(np.percentile(lat, 50)),
                     "p95": fmt.seconds(np.percentile(lat, 95)), "slowest": fmt.seconds(lat.max()),
                     "output tokens/s": fmt.count(np.median(speed)) if speed else fmt.MISSING})
    columns = ["variant", *(["target"] if several_targets else []), "calls", "p50", "p95", "slowest",
               "output tokens/s"]
    return {"table": table(rows, columns), "note": note, "cached": len(sent) - len(fresh)}


def cost_section(results: Results, m: Manifest) -> dict[str, Any]:
    import pandas as pd

    from ..viz.cost_charts import cost_chart, tokens_chart
    from ..viz.eval_charts import plot_cost_quality

    df = results.df
    g = df.groupby(["variant", "target"], sort=False)
    per = pd.DataFrame({
        "calls": g.size(),
        "cache hits": g["cache_hit"].sum(),
        "prompt tokens": g["prompt_tokens"].sum(),
        "completion tokens": g["completion_tokens"].sum(),
        "tokens / call": (g["prompt_tokens"].mean() + g["completion_tokens"].mean()),
        "cost_usd": g["cost_usd"].sum(min_count=1),
    }).reset_index()
    several_targets = per["target"].nunique() > 1
    rows = [{"variant": r["variant"], "target": r["target"], "calls": fmt.count(r["calls"]),
             "cache hits": fmt.count(r["cache hits"]), "prompt tokens": fmt.count(r["prompt tokens"]),
             "completion tokens": fmt.count(r["completion tokens"]), "tokens / call": fmt.count(r["tokens / call"]),
             "cost": fmt_usd(r["cost_usd"])} for r in per.to_dict("records")]
    as_of = m.totals.prices_as_of
    tok = per.rename(columns={"prompt tokens": "input_tokens", "completion tokens": "output_tokens"})
    charts = []
    if len(per) > 1 and (tok["input_tokens"] + tok["output_tokens"]).sum() > 0:
        charts.append(_chart(lambda: tokens_chart(tok, group="variant", series="target", title="Tokens (all calls)"),
                             "prompt and completion tokens per variant"))
    costs = per["cost_usd"].fillna(0)
    if (costs > 0).any():  # a free (local) run has no cost to chart
        charts.append(_chart(lambda: cost_chart(per, group="variant", series="target", usd="cost_usd",
                                                title="Cost at list prices", as_of=as_of), "cost per variant"))
        if results.scorers and costs.nunique() > 1:  # cost against quality needs costs that differ
            charts.append(_chart(lambda: plot_cost_quality(results.cost_quality()), "cost against quality"))
    columns = ["variant", *(["target"] if several_targets else []), "calls", "cache hits", "prompt tokens",
               "completion tokens", "tokens / call", "cost"]
    free = bool(len(per)) and not (costs > 0).any() and per["cost_usd"].notna().all()
    return {"table": table(rows, columns), "charts": [c for c in charts if c is not None], "as_of": as_of,
            "totals": m.totals, "free": free}


def flaky_section(results: Results) -> dict[str, Any] | None:
    """Cases that pass on some repeats and fail on others: only with repeats, and only what there is."""
    from ..viz.eval_charts import plot_flakiness

    repeats = int(results.df["repeat"].max()) + 1 if len(results.df) else 1
    if not results.scorers or repeats < 2:
        return None
    scorer = results.scorers[0]
    f = results.flakiness(scorer)
    flaky = f[f["status"] == "flaky"]
    counts = f.groupby(["variant", "status"], sort=False).size().unstack(fill_value=0).reset_index()
    names = {"stable_pass": "pass every repeat", "stable_fail": "fail every repeat", "flaky": "flaky",
             "error": "no scored repeat"}
    counts = counts[["variant", *[c for c in names if c in counts.columns]]].rename(columns=names)
    rows = [{k: (fmt.count(v) if k != "variant" else v) for k, v in r.items()} for r in counts.to_dict("records")]
    flaky_rows = [{"case": Markup('<a href="#{}">{}</a>').format(anchor("case", r["case_id"]), r["case_id"]),
                   "variant": r["variant"], "target": r["target"], "passed": f"{int(r['n_passed'])} of {int(r['n'])}",
                   "pass rate": fmt.percent(r["pass_rate"])} for r in flaky.head(50).to_dict("records")]
    return {"repeats": repeats, "scorer": scorer, "n_flaky": int(len(flaky)), "n_pairs": int(len(f)),
            "table": table(flaky_rows) if flaky_rows else None, "counts": table(rows),
            "chart": _chart(lambda: plot_flakiness(f, by="variant"), "stable and flaky cases per variant")
            if len(flaky) else None}


# ============================================================================================ cases


def cases_section(results: Results, max_cases: int = MAX_CASES) -> dict[str, Any]:
    """The case index (one row per case, a verdict per variant) and every output per variant and outcome."""
    df = results.df
    if not len(df):
        return {"index": None, "groups": []}
    scorer = results.scorers[0] if results.scorers else None
    expected = _expected(results)
    inputs = _inputs(results)
    variants = [v for v in results.variants if v in set(df["variant"])]
    targets = list(dict.fromkeys(r.target for r in results.records))
    several_targets = len(targets) > 1
    by_key: dict[tuple[str, str, str], list] = {}
    for r in results.records:
        by_key.setdefault((r.case_id, r.variant, r.target), []).append(r)
    for recs in by_key.values():
        recs.sort(key=lambda r: r.repeat)
    case_ids = list(dict.fromkeys(r.case_id for r in sorted(results.records, key=lambda r: r.case_id)))
    case_ids = _case_order(results, case_ids)
    columns = [(v, t) for v in variants for t in targets if any((c, v, t) in by_key for c in case_ids)]
    index_rows, groups = [], {col: {o: [] for o in OUTCOME_ORDER} for col in columns}
    for cid in case_ids:
        cells, classes = [], set()
        for col in columns:
            recs = by_key.get((cid, *col))
            if not recs:
                cells.append(Markup('<td class="muted">–</td>'))
                continue
            cell = _cell(recs, scorer)
            classes.add(f"has-{cell['outcome']}")
            out_id = anchor("out", col[0], col[1], cid) if several_targets else anchor("out", col[0], cid)
            answer = Markup(' <span class="answer">{}</span>').format(show(clip(cell["answer"], 40))) \
                if cell["answer"] else Markup("")
            cells.append(Markup('<td class="v {}"><a href="#{}">{}</a>{}</td>').format(
                cell["outcome"], out_id, verdict_badge(cell["outcome"], cell["label"]), answer))
            groups[col][cell["outcome"]].append({**cell, "case": cid, "id": out_id,
                                                 "case_anchor": anchor("case", cid)})
        outcomes = {c.removeprefix("has-") for c in classes}
        if len(outcomes) > 1:
            classes.add("disagree")
        if outcomes - {"pass", "none"}:
            classes.add("not-pass")
        index_rows.append({"id": anchor("case", cid), "case": cid, "classes": " ".join(sorted(classes)),
                           "input": _fold(inputs.get(cid, ""), 160),
                           "expected": show(clip(fmt_expected(expected.get(cid, "")), 60)),
                           "cells": cells})
    headers = [f"{v} @ {t}" if several_targets else v for v, t in columns]
    sections = []
    for col in columns:
        key_anchor = anchor("variant", *col) if several_targets else anchor("variant", col[0])
        parts = []
        for outcome in OUTCOME_ORDER:
            cases = groups[col][outcome]
            if not cases:
                continue
            shown = cases[:max_cases]
            parts.append({"outcome": outcome, "label": OUTCOME_LABEL[outcome], "n": len(cases),
                          "id": f"{key_anchor}-{outcome}", "cases": shown, "more": len(cases) - len(shown),
                          "open": outcome != "pass" and len(cases) <= OPEN_GROUP})
        sections.append({"variant": col[0], "target": col[1], "title": f"{col[0]} @ {col[1]}" if several_targets
                         else col[0], "id": key_anchor, "groups": parts})
    filters = [("all", "all cases", len(index_rows))]
    for cls, label in (("not-pass", "not passing somewhere"), ("has-refused", "refused"),
                       ("has-ambiguous", "ambiguous"), ("has-error", "errors"), ("disagree", "variants disagree")):
        n = sum(1 for r in index_rows if cls in r["classes"].split())
        if n:
            filters.append((cls, label, n))
    return {"index": index_rows, "headers": headers, "has_expected": bool(expected), "sections": sections,
            "filters": filters, "scorer": scorer, "n_cases": len(case_ids)}


def _cell(recs: list, scorer: str | None) -> dict[str, Any]:
    """One case x variant x target (its repeats): outcome, label, answer, the first output and its evidence."""
    first = recs[0]
    scores = [next((s for s in r.scores if s.scorer == scorer), None) for r in recs] if scorer else []
    verdicts = [s.outcome for s in scores if s is not None]
    if not scorer:
        outcome = "error" if first.outcome == "error" else "none"
    elif not verdicts:
        outcome = "error" if any(r.outcome == "error" for r in recs) else "none"
    elif all(v == "pass" for v in verdicts):
        outcome = "pass"
    else:
        failing = [v for v in verdicts if v != "pass"]
        outcome = failing[0] if len(set(failing)) == 1 else "fail"
    label = outcome
    if len(recs) > 1 and verdicts:  # repeats: "refused ×2" when they agree, "1/2 pass" when they do not
        label = f"{verdicts[0]} ×{len(verdicts)}" if len(set(verdicts)) == 1 else \
            f"{sum(v == 'pass' for v in verdicts)}/{len(verdicts)} pass"
    s0 = scores[0] if scores else None
    text = first.output if first.outcome != "error" else \
        f"[error] {first.error_type or ''}: {first.error_message or ''}"
    span = s0.span if s0 is not None and first.outcome != "error" else None
    return {"outcome": outcome, "label": label, "badge": verdict_badge(outcome, label),
            "answer": (s0.answer if s0 is not None else None) or "",
            "explanation": show(s0.explanation) if s0 is not None and s0.explanation else None,
            "evidence": s0.evidence if s0 is not None else None,
            "output": _tool_calls_html(first) + _output_html(text, span),
            "repeats": len(recs), "call": first.outcome,
            "meta": " · ".join(x for x in (
                fmt.seconds(first.latency_s) if first.latency_s else "",
                f"{fmt.count(first.prompt_tokens)} → {fmt.count(first.completion_tokens)} tokens",
                "cached" if first.cache_hit else "", first.outcome if first.outcome not in ("ok", "error") else "")
                if x)}


def _tool_calls_html(rec: Any) -> Markup:
    """A cell's function calls, readably: per step its calls (name, arguments as JSON) and what each tool gave
    back; a single call's answer as its calls. Empty for a cell without tools."""
    from ..tools import show_call

    steps = list(rec.steps or [])
    if not steps and not rec.tool_calls:
        return Markup("")
    lines = []
    if not steps:
        lines = [Markup('<div class="tool-call">→ {}</div>').format(show_call(c)) for c in rec.tool_calls]
    for st in steps:
        results = {t.tool_call_id: t for t in st.tool_results}
        for c in st.tool_calls:
            t = results.get(str(c.get("id") or ""))
            shown = Markup(" ⇒ <code>{}</code>").format(clip(t.content, 200)) if t is not None else ""
            lines.append(Markup('<div class="tool-call">step {}: → {}{}</div>').format(st.step, show_call(c), shown))
    if steps:
        lines.append(Markup('<div class="tool-call">{} steps; final answer:</div>').format(len(steps)))
    return Markup("").join(lines)


def _output_html(text: str, span: Sequence[int] | None) -> Markup:
    """The output as escaped text with the scorer's evidence marked; long outputs folded after the first lines."""
    text = text or ""
    marked = _marked(text, span)
    if len(text) <= FOLD_CHARS:
        return Markup('<pre class="output">{}</pre>').format(marked)
    head = text[:FOLD_CHARS].rsplit(" ", 1)[0]
    return Markup('<details class="fold"><summary><pre class="output">{}</pre><span class="more">show all '
                  '{} characters</span></summary><pre class="output">{}</pre></details>').format(
        _folded(text, head, span), fmt.count(len(text)), marked)


def _folded(text: str, head: str, span: Sequence[int] | None) -> Markup:
    """The first lines of a long output - and, when the scorer's evidence lies further on, the words around it:
    a folded "ambiguous" must still show what made it ambiguous."""
    if not span or not (0 <= span[0] < span[1] <= len(text)):
        return Markup("{}…").format(show(head))
    if span[1] <= len(head):
        return Markup("{}…").format(_marked(head, span))
    a, b = max(len(head), span[0] - EVIDENCE_CONTEXT), min(len(text), span[1] + EVIDENCE_CONTEXT)
    if a > len(head):  # start on a word
        space = text.find(" ", a, span[0])
        a = space + 1 if space != -1 else a
    tail = "…" if b < len(text) else ""
    return Markup("{}… {}{}").format(show(head), _marked(text[a:b], (span[0] - a, span[1] - a)), tail)


def _marked(text: str, span: Sequence[int] | None) -> Markup:
    if not span or not (0 <= span[0] < span[1] <= len(text)):
        return show(text)
    a, b = span[0], span[1]
    return Markup("{}<mark>{}</mark>{}").format(show(text[:a]), show(text[a:b]), show(text[b:]))


def fmt_expected(value: Any) -> str:
    """An expected answer as text: alternatives joined with "or", structures as JSON."""
    if isinstance(value, (list, tuple)):
        return " or ".join(fmt_expected(v) for v in value)
    if isinstance(value, (dict,)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "" if value is None else str(value)


def _fold(text: str, n: int) -> Markup:
    if len(text) <= n:
        return show(text)
    return Markup('<details class="fold"><summary>{}…</summary>{}</details>').format(
        show(text[:n].rsplit(" ", 1)[0]), show(text))


def _case_order(results: Results, ids: list[str]) -> list[str]:
    if results.experiment is None:
        return ids
    try:
        order = [c.id for c in results.experiment.load_cases()]
    except Exception:  # the dataset moved since the run: keep the records' order
        return ids
    known = set(ids)
    return [c for c in order if c in known] + [c for c in ids if c not in set(order)]


def _inputs(results: Results) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in results.records:
        if r.case_id not in out:
            out[r.case_id] = _input_text(r.messages)
    return out


def _input_text(messages: Any) -> str:
    if isinstance(messages, str):
        try:
            messages = json.loads(messages)
        except ValueError:
            return ""
    for msg in reversed(messages or []):
        if msg.get("role") == "user":
            c = msg.get("content")
            if isinstance(c, list):
                return " ".join(p.get("text", "[image]") for p in c if isinstance(p, dict))
            return str(c or "")
    return ""


def _expected(results: Results) -> dict[str, Any]:
    if results.experiment is None:
        return {}
    try:
        return {c.id: c.expected for c in results.experiment.load_cases() if c.expected is not None}
    except Exception:  # the dataset moved since the run: the cases show outputs alone
        return {}


def sample_outputs(results: Results, n: int = 12) -> dict[str, Any]:
    """The first ``n`` cases' outputs per variant as a table (kept for callers of the old report API)."""
    cases = cases_section(results)
    rows = []
    for r in (cases["index"] or [])[:n]:
        row = {"case": r["case"], "input": r["input"]}
        for h, cell in zip(cases["headers"], r["cells"]):
            row[h] = cell
        rows.append(row)
    return {"rows": rows, "columns": ["case", "input", *cases.get("headers", [])], "n": len(rows),
            "of": cases.get("n_cases", 0), "scorer": cases.get("scorer")}


def provenance(m: Manifest) -> dict[str, Any]:
    git = m.git
    commit = (git.commit or "")[:12] + (" (uncommitted changes)" if git.dirty else "") if git.commit else "not in git"
    facts = [
        ("run id", m.run_id), ("status", m.status), ("started by", _source_line(m)),
        ("notebook", f"{m.notebook.name} (sha256 {(m.notebook.sha256 or '')[:12]})" if m.notebook.sha256
         else m.notebook.name),
        ("kernel", m.notebook.kernel), ("started", _when(m.started_at)), ("finished", _when(m.finished_at)),
        ("duration", fmt.seconds(m.duration_s) if m.duration_s is not None else None),
        ("git", f"{commit}" + (f" on {git.branch}" if git.branch else "")),
        ("experiment fingerprint", m.fingerprint), ("spec sha256", m.spec_sha256),
        ("dataset sha256", m.dataset.sha256 if m.dataset else None),
        ("python", f"{m.python} on {m.platform}"), ("environment lock", m.environment_lock),
        ("cache hits", f"{fmt.count(m.totals.cache_hits)} of {fmt.count(m.totals.calls)} calls"),
        ("prices as of", m.totals.prices_as_of),
        ("sweep", f"point {m.sweep['index'] + 1} of {m.sweep['size']} (sweep {m.sweep['id']}): "
                  f"{json.dumps(m.sweep.get('point'), default=str)}" if m.sweep else None),
        *batch_facts(m),
    ]
    if m.rerun:
        verdict = {True: "identical results table", False: "DIFFERENT results",
                   None: "nothing to compare"}[m.rerun.identical]
        facts.append(("re-run of", f"{m.rerun.of_run}: {verdict}"))
    targets = [{"target": t.target, "profile": t.profile, "backend": t.backend or "", "deployment": t.deployment or "",
                "model": t.model or "", "system fingerprints": ", ".join(t.system_fingerprints) or "(none reported)",
                "identity": json.dumps({k: v for k, v in t.identity.items() if k != "backend"}, sort_keys=True),
                "calls": fmt.count(t.calls)} for t in m.targets]
    packages = [{"package": k, "version": v or "(not installed)"} for k, v in m.packages.items()]
    return {"facts": [(k, v) for k, v in facts if v not in (None, "")],
            "parameters": _parameters_table(m),
            "targets": table(targets) if targets else None, "packages": table(packages),
            "files": sorted(m.files.items())}


def batch_facts(m: Manifest) -> list[tuple[str, str | None]]:
    """How the calls were sent; for a batch run, its batch ids and what it saved against online prices."""
    b = m.batch
    if m.mode != "batch" or not b:
        return [("mode", m.mode)] if m.mode != "online" else []
    saving = (f"{fmt_usd(b['batch_cost_usd'])} for {b.get('batch_cells', 0)} batch calls; online prices: "
              f"{fmt_usd(b['online_cost_usd'])} (saved {fmt_usd(b['saving_usd'])})"
              if b.get("online_cost_usd") is not None else None)
    return [("mode", "batch (the provider's Batch API)"), ("batch ids", ", ".join(b.get("batch_ids") or [])),
            ("batch cost", saving)]


def _when(iso: str | None) -> str | None:
    """``2026-12-01T21:47:33.652+00:00`` -> ``2026-12-01 21:47:33 UTC``."""
    if not iso:
        return None
    text = iso[:19].replace("T", " ")
    return text + (" UTC" if iso.endswith(("+00:00", "Z")) else "")


def _parameters_table(m: Manifest) -> Markup | None:
    values = m.effective_parameters if m.effective_parameters is not None else m.parameters
    if not values:
        return None
    rows = [{"parameter": k, "value": json.dumps(v, default=str),
             "set by": "-p / --sweep" if k in m.parameters else "notebook default"} for k, v in values.items()]
    return table(rows, ["parameter", "value", "set by"])


def summary_box(results: Results | None, m: Manifest, comparisons_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The run at a glance: the best variant per scorer, the paired verdicts, calls, spend and time."""
    facts = []
    if results is not None and len(results):
        for scorer in results.scorers[:3]:
            best = max((x for x in m.metrics if x.scorer == scorer and x.mean is not None), key=lambda x: x.mean,
                       default=None)
            if best is not None:
                facts.append(f"best on {scorer}: {best.variant}"
                             + (f" @ {best.target}" if len(results.targets) > 1 else "")
                             + f" {fmt.interval(best.mean, best.ci_low, best.ci_high, rate=fmt.is_rate(best.method))}")
    t = m.totals
    spend = "free (no priced model)" if t.cost_usd == 0 else f"spent {fmt_usd(t.spent_usd)}" + (
        f" ({fmt_usd(t.cost_usd)} at list prices)" if t.cost_usd != t.spent_usd else "")
    line = f"{fmt.count(t.calls)} calls · {fmt.count(t.prompt_tokens + t.completion_tokens)} tokens · {spend}"
    if m.duration_s:
        line += f" · {fmt.seconds(m.duration_s)}"
    verdicts = [r for r in comparisons_rows if r.get("pairs") is not None][:6]
    return {"facts": facts, "line": line, "verdicts": verdicts, "errors": t.errors, "filtered": t.filtered}


# ============================================================================================ pages


def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(usd=fmt_usd, num=fmt_num, ci=fmt_ci, count=fmt.count, fold=_fold, anchor=anchor)
    return env


def build_report(results: Results | None, manifest: Manifest, notebook: Mapping[str, Any] | None = None, *,
                 sample_cases: int | None = None, max_cases: int = MAX_CASES) -> str:
    """The report of one run as a single self-contained HTML page (see the module docstring).

    ``max_cases``: outputs listed per variant (``sample_cases`` is its old name)."""
    m = manifest
    has_results = results is not None and len(results) > 0
    ctx: dict[str, Any] = {
        "m": m, "csp": CSP, "title": f"{m.experiment} · {m.run_id}", "status": status_badge(m.status),
        "failure": m.failure.describe() if m.failure else None,
        "experiment": experiment_section(results, m) if m.spec or results is not None else None,
        "has_results": has_results,
        "scores": [], "comparisons": [], "comparison_table": None, "latency": None, "cost": None, "flaky": None,
        "cases": None, "review": None, "summary": None, "provenance": provenance(m),
        "notebook": NotebookRenderer(notebook).render() if notebook else None,
        "results_status": m.results_status,
    }
    if has_results:
        assert results is not None
        ctx["scores"] = scores_section(results) if results.scorers else []
        rows = comparisons(results)
        ctx["comparisons"] = rows
        ctx["comparison_table"] = comparison_table(rows, len(results.scorers) > 1, len(results.targets) > 1)
        ctx["unpaired"] = sum(r.get("unpaired") or 0 for r in rows)
        ctx["latency"] = latency_section(results)
        ctx["cost"] = cost_section(results, m)
        ctx["flaky"] = flaky_section(results)
        ctx["cases"] = cases_section(results, sample_cases or max_cases)
        ctx["summary"] = summary_box(results, m, rows)
        ctx["review"] = _review(results)
    # every part is redacted where it is built; this last pass catches anything a future section forgets, and
    # shows bidi controls and invisible characters (a reversed "fail" must not read as "pass" next to a badge)
    return visible_text(redact(_env().get_template("report.html.j2").render(**ctx)))


def _review(results: Results) -> dict[str, Any] | None:
    """The human-review section (:mod:`workbench.runs.review_section`), None without reviews."""
    from .review_section import review_section

    section = review_section(results)
    if section is not None:
        section["agreement"] = table(section["agreement"]) if section["agreement"] else None
        section["disagreements"] = table(section["disagreements"]) if section["disagreements"] else None
    return section


def build_index(runs: Iterable[tuple[str, Manifest]]) -> str:
    """``reports/index.html``: every run (newest first) with its key metrics and links. ``runs`` holds
    (run folder relative to reports/, manifest) pairs."""
    rows = []
    experiments: dict[str, int] = {}
    for rel, m in runs:
        experiments[m.experiment] = experiments.get(m.experiment, 0) + 1
        metrics = m.headline()
        scorer = metrics[0].scorer if metrics else None
        several = len({y.target for y in metrics}) > 1
        rows.append({
            "rel": rel, "m": m, "status": status_badge(m.status),
            "metrics": [(f"{x.variant}" + (f" @ {x.target}" if several else ""),
                         fmt.interval(x.mean, x.ci_low, x.ci_high, rate=fmt.is_rate(x.method)),
                         x.n_ambiguous, x.n_refused) for x in metrics],
            "scorer": scorer, "source": m.source or "", "source_title": SOURCES.get(m.source or "", ""),
            "params": ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in sorted(m.parameters.items())
                                if v is not None and k not in ("run_dir", "reports_dir")),
            "commit": ((m.git.commit or "")[:8] + ("*" if m.git.dirty else "")) if m.git.commit else "",
            "files": m.files, "cases": m.dataset.n_cases if m.dataset else None,
        })
    return visible_text(redact(_env().get_template("index.html.j2").render(rows=rows, csp=CSP,
                                                                            experiments=experiments)))


__all__ = ["build_report", "build_index", "sanitize_html", "NotebookRenderer", "comparisons", "cases_section",
           "sample_outputs", "fmt_usd", "fmt_ci", "table", "anchor", "show", "CSP", "VERDICTS"]
