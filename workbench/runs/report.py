"""The HTML report of a run: one self-contained file, a pure function of (Results, Manifest, executed notebook).

``build_report(results, manifest, notebook) -> str``. What it guarantees:

- **Offline and self-contained**: charts are inline base64 PNGs, styles are inline, there is no script at all
  and nothing is fetched. A Content-Security-Policy (``default-src 'none'; img-src data:; style-src
  'unsafe-inline'``) makes that a rule the browser enforces, not just a habit.
- **Model output cannot run**: every value goes through jinja2 autoescaping; HTML the notebook produced is
  sanitized with bleach (an allow-list of tags and attributes, ``data:`` images only); and with no
  ``script-src`` in the policy even a sanitizer bug would not execute anything.
- **Widgets render from their saved state**: papermill stores the widget state in the notebook; boxes,
  HTML, labels, progress bars, buttons and output areas become static HTML (``<progress>``, not JavaScript).
- **Code hidden by default**: each cell's code sits in a closed ``<details>``.

Sections: the experiment, scores per variant with confidence intervals, paired comparisons, tokens and cost
(with the date of the prices), flaky cases, a sample of outputs, errors, provenance, and the notebook.
:func:`build_index` renders ``reports/index.html`` from the manifests of every run.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

from ..formatting import summary_row, usd
from ..safe_text import visible_text
from ..scorers.registry import scorer_name
from ..secrets import redact
from .manifest import Manifest
from .notebook_html import NotebookRenderer, clip, sanitize_html

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from ..results import Results

REPORT_SCHEMA = 1
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
SAMPLE_CASES = 12
TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


# ============================================================================================ formatting


def _isnan(v: Any) -> bool:
    try:
        return v is None or (isinstance(v, float) and math.isnan(v))
    except TypeError:
        return False


def fmt_num(v: Any, digits: int = 2) -> str:
    if _isnan(v):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.0f}" if v.is_integer() and abs(v) >= 1000 else f"{v:.{digits}f}"
    return str(v)


fmt_usd = usd  # the one money format (workbench.formatting)


def fmt_ci(mean: Any, low: Any, high: Any) -> str:
    if _isnan(mean):
        return "–"
    if _isnan(low) or _isnan(high):
        return f"{mean:.2f}"
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def fmt_p(p: Any) -> str:
    if _isnan(p):
        return "–"
    return "<0.001" if p < 0.001 else (f"{p:.2g}" if p < 0.1 else f"{p:.2f}")


# ============================================================================================ tables


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *,
          headers: Mapping[str, str] | None = None, classes: Mapping[str, str] | None = None,
          css: str = "data") -> Markup:
    """An HTML table whose every cell is escaped (values may be Markup that is already safe)."""
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
            cls = classes.get(c)
            attr = f' class="{escape(cls)}"' if cls else ""
            cell = v if isinstance(v, Markup) else escape(fmt_num(v) if not isinstance(v, str) else v)
            out.append(f"<td{attr}>{cell}</td>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return Markup("".join(out))


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


# ============================================================================================ sections


def experiment_section(results: Results | None, m: Manifest) -> dict[str, Any]:
    spec = m.spec or {}
    variants = []
    for v in spec.get("variants") or []:
        variants.append({
            "variant": v.get("name", ""),
            "description": v.get("description", ""),
            "system": clip(v.get("system", ""), 300),
            "user": clip(v.get("user", ""), 300),
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
        ("sample", spec.get("sample") or "all cases"),
        ("seed", spec.get("seed")),
        ("budget", fmt_usd(spec["budget_usd"]) if spec.get("budget_usd") is not None else "none"),
    ]
    return {"facts": [(k, v) for k, v in facts if v not in (None, "")], "variants": variants}


def _dataset_line(m: Manifest) -> str:
    d = m.dataset
    if d is None:
        return ""
    sha = f", sha256 {d.sha256[:12]}" if d.sha256 else ""
    return f"{d.name or ''}: {d.n_cases} cases{sha} ({d.source or ''})".strip()


def scores_section(results: Results) -> list[dict[str, Any]]:
    from ..viz.eval_charts import plot_scores

    out = []
    for scorer in results.scorers:
        try:
            s = results.summary(scorer)
        except Exception as e:
            out.append({"scorer": scorer, "error": redact(e)})
            continue
        rows = [{**summary_row(r), "method": r.get("method", "")} for r in s.to_dict("records")]
        out.append({"scorer": scorer, "table": table(rows),
                    "chart": _chart(lambda s=s, scorer=scorer: plot_scores(s, value=scorer, by=("variant", "target")),
                                    f"mean {scorer} per variant with 95% confidence intervals")})
    return out


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
                rows.append({"scorer": sc, "target": target, "a": base, "b": other, "pairs": c.n_pairs,
                             "mean a": c.mean_a, "mean b": c.mean_b,
                             "b − a [95% CI]": fmt_ci(c.diff, c.ci_low, c.ci_high),
                             "p": fmt_p(c.p_value), "method": c.method, "summary": c.summary,
                             "_significant": c.significant})
    return rows


def cost_section(results: Results, m: Manifest) -> dict[str, Any]:
    import pandas as pd

    from ..viz.cost_charts import cost_chart, tokens_chart
    from ..viz.eval_charts import plot_cost_quality

    df = results.df
    g = df.groupby(["variant", "target"], sort=False)
    per = pd.DataFrame({
        "calls": g.size(),
        "cache hits": g["cache_hit"].sum().astype(int),
        "prompt tokens": g["prompt_tokens"].sum().astype(int),
        "completion tokens": g["completion_tokens"].sum().astype(int),
        "tokens / call": (g["prompt_tokens"].mean() + g["completion_tokens"].mean()),
        "cost_usd": g["cost_usd"].sum(min_count=1),
    }).reset_index()
    rows = [{**r, "cost": fmt_usd(r["cost_usd"])} for r in per.to_dict("records")]
    as_of = m.totals.prices_as_of
    tok = per.rename(columns={"prompt tokens": "input_tokens", "completion tokens": "output_tokens"})
    charts = [_chart(lambda: tokens_chart(tok, group="variant", series="target", title="Tokens (all calls)"),
                     "prompt and completion tokens per variant")]
    if (per["cost_usd"].fillna(0) > 0).any():  # a free (local) run has no cost to chart
        charts.append(_chart(lambda: cost_chart(per, group="variant", series="target", usd="cost_usd",
                                                title="Cost at list prices", as_of=as_of), "cost per variant"))
        if results.scorers:
            charts.append(_chart(lambda: plot_cost_quality(results.cost_quality()), "cost against quality"))
    return {"table": table(rows, ["variant", "target", "calls", "cache hits", "prompt tokens", "completion tokens",
                                  "tokens / call", "cost"]),
            "charts": [c for c in charts if c is not None], "as_of": as_of, "totals": m.totals}


def flaky_section(results: Results) -> dict[str, Any]:
    from ..viz.eval_charts import plot_flakiness

    repeats = int(results.df["repeat"].max()) + 1 if len(results.df) else 1
    if not results.scorers:
        return {"repeats": repeats, "note": "No scorers: nothing to call flaky."}
    if repeats < 2:
        return {"repeats": repeats, "note": "Each case ran once (repeats = 1), so flakiness cannot be measured: "
                                            "run with repeats ≥ 2 to see cases that pass only some of the time."}
    scorer = results.scorers[0]
    f = results.flakiness(scorer)
    flaky = f[f["status"] == "flaky"]
    counts = f.groupby(["variant", "status"], sort=False).size().unstack(fill_value=0).reset_index()
    return {"repeats": repeats, "scorer": scorer, "n_flaky": int(len(flaky)),
            "table": frame_table(flaky.head(50), ["case_id", "variant", "target", "n", "n_passed", "pass_rate"]),
            "counts": frame_table(counts),
            "chart": _chart(lambda: plot_flakiness(f, by="variant"), "stable and flaky cases per variant")}


def sample_outputs(results: Results, n: int = SAMPLE_CASES) -> dict[str, Any]:
    """A reproducible sample of cases: the input, the expected answer, and every variant's output (escaped)."""
    import random

    df = results.df
    if not len(df):
        return {"rows": [], "columns": []}
    first = df[(df["repeat"] == 0) & (df["target"] == df["target"].iloc[0])]
    cases = list(dict.fromkeys(first["case_id"]))
    picked = sorted(random.Random(0).sample(cases, min(n, len(cases))), key=cases.index)
    variants = [v for v in results.variants if v in set(first["variant"])]
    expected = _expected(results)
    scorer = results.scorers[0] if results.scorers else None
    rows = []
    for case in picked:
        part = first[first["case_id"] == case].set_index("variant")
        row: dict[str, Any] = {"case": case, "input": clip(_input_text(part.iloc[0]), 240)}
        if expected:
            row["expected"] = clip(expected.get(case, ""), 120)
        for v in variants:
            if v not in part.index:
                row[v] = ""
                continue
            r = part.loc[v]
            text = r["output"] if r["outcome"] != "error" else \
                f"[error] {r.get('error_type') or ''}: {r.get('error_message') or ''}"
            mark = ""
            if scorer and f"passed.{scorer}" in part.columns:
                p = r[f"passed.{scorer}"]
                mark = "" if _isnan(p) or p is None else ("pass" if bool(p) else "fail")
            row[v] = Markup('<div class="out {cls}">{badge}<pre>{text}</pre></div>').format(
                cls=mark, badge=badge(mark, "ok" if mark == "pass" else "bad") if mark else "", text=clip(text))
        rows.append(row)
    columns = ["case", "input"] + (["expected"] if expected else []) + variants
    return {"rows": rows, "columns": columns, "n": len(picked), "of": len(cases), "scorer": scorer}


def _input_text(row: Any) -> str:
    try:
        messages = json.loads(row["messages"]) if isinstance(row["messages"], str) else row["messages"]
    except (ValueError, TypeError):
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
    except Exception:  # the dataset moved since the run: the sample shows outputs alone
        return {}


def errors_section(results: Results) -> Markup | None:
    if not results.n_errors:
        return None
    err = results.errors().head(30)
    return frame_table(err, ["case_id", "variant", "target", "repeat", "error_type", "error_message"])


def provenance(m: Manifest) -> dict[str, Any]:
    git = m.git
    commit = (git.commit or "")[:12] + (" (uncommitted changes)" if git.dirty else "") if git.commit else "not in git"
    facts = [
        ("run id", m.run_id), ("status", m.status),
        ("notebook", f"{m.notebook.name} (sha256 {(m.notebook.sha256 or '')[:12]})"),
        ("kernel", m.notebook.kernel), ("started", m.started_at), ("finished", m.finished_at),
        ("duration", f"{m.duration_s:.1f} s" if m.duration_s is not None else None),
        ("git", f"{commit}" + (f" on {git.branch}" if git.branch else "")),
        ("experiment fingerprint", m.fingerprint), ("spec sha256", m.spec_sha256),
        ("dataset sha256", m.dataset.sha256 if m.dataset else None),
        ("python", f"{m.python} on {m.platform}"), ("environment lock", m.environment_lock),
        ("cache hits", f"{m.totals.cache_hits} of {m.totals.calls} calls"),
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
                "calls": t.calls} for t in m.targets]
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


def _parameters_table(m: Manifest) -> Markup:
    values = m.effective_parameters if m.effective_parameters is not None else m.parameters
    if not values:
        return Markup('<p class="muted">(the notebook has no parameters)</p>')
    rows = [{"parameter": k, "value": json.dumps(v, default=str),
             "set by": "-p / --sweep" if k in m.parameters else "notebook default"} for k, v in values.items()]
    return table(rows, ["parameter", "value", "set by"])


# ============================================================================================ pages


def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters.update(usd=fmt_usd, num=fmt_num, ci=fmt_ci)
    return env


def build_report(results: Results | None, manifest: Manifest, notebook: Mapping[str, Any] | None = None, *,
                 sample_cases: int = SAMPLE_CASES) -> str:
    """The report of one run as a single self-contained HTML page (see the module docstring)."""
    m = manifest
    ctx: dict[str, Any] = {
        "m": m, "csp": CSP, "title": f"{m.experiment} · {m.run_id}", "status": status_badge(m.status),
        "failure": m.failure.describe() if m.failure else None,
        "experiment": experiment_section(results, m) if m.spec or results is not None else None,
        "has_results": results is not None and len(results) > 0,
        "scores": [], "comparisons": [], "cost": None, "flaky": None, "sample": None, "errors": None,
        "provenance": provenance(m),
        "notebook": NotebookRenderer(notebook).render() if notebook else None,
        "results_status": m.results_status,
    }
    if ctx["has_results"]:
        assert results is not None
        ctx["scores"] = scores_section(results) if results.scorers else []
        rows = comparisons(results)
        ctx["comparisons"] = rows
        ctx["comparison_table"] = table(
            rows, ["scorer", "target", "a", "b", "pairs", "mean a", "mean b", "b − a [95% CI]", "p", "summary"],
            headers={"a": "baseline", "b": "variant"}) if rows else None
        ctx["cost"] = cost_section(results, m)
        ctx["flaky"] = flaky_section(results)
        sample = sample_outputs(results, sample_cases)
        ctx["sample"] = {**sample, "table": table(sample["rows"], sample["columns"], css="data outputs")
                         if sample["rows"] else None}
        ctx["errors"] = errors_section(results)
    # every part is redacted where it is built; this last pass catches anything a future section forgets, and
    # shows bidi controls and invisible characters (a reversed "fail" must not read as "pass" next to a badge)
    return visible_text(redact(_env().get_template("report.html.j2").render(**ctx)))


def build_index(runs: Iterable[tuple[str, Manifest]]) -> str:
    """``reports/index.html``: every run (newest first) with its key metrics and links. ``runs`` holds
    (run folder relative to reports/, manifest) pairs."""
    rows = []
    experiments: dict[str, int] = {}
    for rel, m in runs:
        experiments[m.experiment] = experiments.get(m.experiment, 0) + 1
        metrics = m.headline()
        scorer = metrics[0].scorer if metrics else None
        rows.append({
            "rel": rel, "m": m, "status": status_badge(m.status),
            "metrics": [(f"{x.variant}" + (f" @ {x.target}" if len({y.target for y in metrics}) > 1 else ""),
                         fmt_ci(x.mean, x.ci_low, x.ci_high)) for x in metrics],
            "scorer": scorer,
            "params": ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in sorted(m.parameters.items())
                                if v is not None and k not in ("run_dir", "reports_dir")),
            "commit": ((m.git.commit or "")[:8] + ("*" if m.git.dirty else "")) if m.git.commit else "",
            "files": m.files,
        })
    return visible_text(redact(_env().get_template("index.html.j2").render(rows=rows, csp=CSP,
                                                                            experiments=experiments)))


__all__ = ["build_report", "build_index", "sanitize_html", "NotebookRenderer", "comparisons", "sample_outputs",
           "fmt_usd", "fmt_ci", "table", "CSP"]
