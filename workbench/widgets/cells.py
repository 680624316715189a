"""Results as a grid of cells (cases x variants), without widgets: status, filters, details and diffs.

A *cell* is one case x variant x target; with repeats it holds several calls. Pure functions of
:class:`~workbench.results.CellResult` records (and of :meth:`Results.flakiness` for the flaky flag), shared by
the playground's output grid, the results viewer and their static snapshots.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import DataError
from ..formatting import SUMMARY_HEADERS, count, is_rate, seconds, summary_row, tokens_per_s, usd
from ..messages import content_text
from ..records import CellResult
from ..results import Results
from .fallback import CELL_CSS, TABLE_CSS, clip, esc, html_table

FILTERED_OUTCOMES = ("prompt_filtered", "completion_filtered")
FILTERS = ("all", "failed", "ambiguous", "refused", "filtered", "flaky")
CellKey = tuple[str, str, str]  # case_id, variant, target


@dataclass(frozen=True)
class CellStatus:
    """What the grid shows for one cell (all repeats of a case x variant x target)."""

    key: CellKey
    records: tuple[CellResult, ...]
    scorer: str | None
    n: int
    n_passed: int
    n_scored: int
    errored: bool
    filtered: bool  # a content filter blocked or flagged a call
    flaky: bool
    n_ambiguous: int = 0  # scored calls whose answer named more than one allowed answer
    n_refused: int = 0  # scored calls where the model declined

    @property
    def failed(self) -> bool:
        """A call failed (error) or a scored call did not pass."""
        return self.errored or self.n_passed < self.n_scored

    @property
    def first(self) -> CellResult:
        return self.records[0]

    @property
    def kind(self) -> str:
        """``pass``, ``fail``, ``refused``, ``ambiguous``, ``flaky``, ``filtered``, ``error`` or ``done`` (no
        scorer) - for colours and marks. A cell whose failing calls all declined is ``refused``; all hedged,
        ``ambiguous``."""
        if self.errored and not self.n_scored:
            return "error"
        if self.filtered and self.n_passed == 0:
            return "filtered"
        if self.flaky:
            return "flaky"
        if self.n_scored == 0:
            return "done"
        if self.n_passed == self.n_scored:
            return "pass"
        failing = self.n_scored - self.n_passed
        if self.n_refused == failing:
            return "refused"
        if self.n_ambiguous == failing:
            return "ambiguous"
        return "fail"


KIND_COLOURS = {"pass": "#e6f4ea", "fail": "#fce8e6", "refused": "#ffe7d1", "ambiguous": "#e8eefc",
                "flaky": "#fef7e0", "filtered": "#f3e8fd", "error": "#fce8e6", "done": "#ffffff"}
KIND_BUTTON = {"pass": "success", "fail": "danger", "refused": "danger", "ambiguous": "warning", "flaky": "warning",
               "filtered": "info", "error": "danger", "done": ""}
VERDICT_TEXT = {"refused": "#b34700", "ambiguous": "#1a56c4"}
KIND_MARK = {"pass": "✓ ", "fail": "✗ ", "refused": "⊗ ", "ambiguous": "? ", "flaky": "± ", "filtered": "⊘ ",
             "error": "! "}


def group_records(records: Iterable[CellResult]) -> dict[CellKey, list[CellResult]]:
    out: dict[CellKey, list[CellResult]] = {}
    for r in records:
        out.setdefault((r.case_id, r.variant, r.target), []).append(r)
    for recs in out.values():
        recs.sort(key=lambda r: r.repeat)
    return out


def _score_of(r: CellResult, scorer: str | None):
    for s in r.scores:
        if scorer is None or s.scorer == scorer:
            return s
    return None


def _passed(r: CellResult, scorer: str | None) -> bool | None:
    s = _score_of(r, scorer)
    return None if s is None else s.passed


def flaky_keys(results: Results | None, scorer: str | None) -> set[CellKey]:
    """Cells whose repeats disagree, by :meth:`Results.flakiness` (needs repeats and a scorer)."""
    if results is None or not scorer or not len(results):
        return set()
    try:
        df = results.flakiness(scorer)
    except Exception:  # no scores, or statistics unavailable: nothing is flaky
        return set()
    rows = df[df["status"] == "flaky"]
    return {(str(r.case_id), str(r.variant), str(r.target)) for r in rows.itertuples()}


def cell_statuses(records: Iterable[CellResult], scorer: str | None = None,
                  flaky: set[CellKey] | None = None) -> dict[CellKey, CellStatus]:
    out = {}
    for key, recs in group_records(records).items():
        scores = [s for s in (_score_of(r, scorer) for r in recs) if s is not None and s.passed is not None]
        out[key] = CellStatus(
            key=key, records=tuple(recs), scorer=scorer, n=len(recs), n_passed=sum(1 for s in scores if s.passed),
            n_scored=len(scores), errored=any(r.outcome == "error" for r in recs),
            filtered=any(r.outcome in FILTERED_OUTCOMES or r.filter_flags for r in recs),
            flaky=key in (flaky or set()),
            n_ambiguous=sum(1 for s in scores if s.outcome == "ambiguous"),
            n_refused=sum(1 for s in scores if s.outcome == "refused"),
        )
    return out


def matches(status: CellStatus, show: str) -> bool:
    if show == "all":
        return True
    if show == "failed":
        return status.failed
    if show == "ambiguous":
        return status.n_ambiguous > 0
    if show == "refused":
        return status.n_refused > 0
    if show == "filtered":
        return status.filtered
    if show == "flaky":
        return status.flaky
    raise DataError(f"filter {show!r}: use one of {', '.join(FILTERS)}")


def filter_cases(statuses: Mapping[CellKey, CellStatus], show: str, target: str | None = None) -> list[str]:
    """Case ids (in first-seen order) with at least one cell matching ``show`` (on ``target`` if given)."""
    out: dict[str, None] = {}
    for key, st in statuses.items():
        if (target is None or key[2] == target) and matches(st, show):
            out.setdefault(key[0])
    return list(out)


def filter_counts(statuses: Mapping[CellKey, CellStatus], target: str | None = None) -> dict[str, int]:
    """How many cells each filter shows."""
    sts = [s for k, s in statuses.items() if target is None or k[2] == target]
    return {f: sum(1 for s in sts if matches(s, f)) for f in FILTERS}


# ----------------------------------------------------------------------------------------------- rendering


def badges(st: CellStatus) -> str:
    """Score, latency, tokens, cost and filter badges of a cell (HTML)."""
    r = st.first
    out = []
    if st.n_scored:
        mark = "✓" if st.n_passed == st.n_scored else ("✗" if st.n_passed == 0 else "±")
        first = _score_of(r, st.scorer)
        score = first.value if first is not None else None
        shown = f"{mark} {st.scorer or ''}" + (f" {st.n_passed}/{st.n_scored}" if st.n_scored > 1 else "")
        if st.n_scored == 1 and score is not None and score not in (0, 1):
            shown += f" {score:.2f}"
        title = esc(first.explanation) if first is not None and first.explanation else "score"
        out.append(f'<span class="wb-score" title="{title}">{esc(shown)}</span>')
        for what, n in (("refused", st.n_refused), ("ambiguous", st.n_ambiguous)):
            if n:
                label = what if st.n_scored == 1 else f"{what} {n}/{st.n_scored}"
                out.append(f'<b class="wb-verdict wb-{what}" style="color:{VERDICT_TEXT[what]}">{esc(label)}</b>')
    elif r.scores and r.scores[0].error:
        out.append(f'<span class="wb-score" title="{esc(r.scores[0].error)}">score error</span>')
    out.extend(call_badges(r))
    if r.outcome in FILTERED_OUTCOMES:
        out.append(f'<b style="color:#7b1fa2">{esc(r.outcome.replace("_", " "))}</b>')
    if r.filter_flags:
        out.append(f'<b style="color:#7b1fa2">flagged: {esc(", ".join(r.filter_flags))}</b>')
    if r.outcome == "length":
        out.append("cut at max tokens")
    if st.flaky:
        out.append("<b>flaky</b>")
    return '<div style="color:#555;font-size:11px;margin-top:3px">' + " · ".join(out) + "</div>"


def timing_badges(r: CellResult) -> list[str]:
    """``first 0.31s``, ``2.10s``, ``42 tok/s``: what is measured of a call (time to first token only if streamed)."""
    out = []
    if r.first_token_s is not None:
        out.append(f'<span title="time to first token">first {esc(seconds(r.first_token_s))}</span>')
    if r.latency_s is not None:
        out.append(f'<span title="total latency">{esc(seconds(r.latency_s))}</span>')
    if r.tokens_per_s is not None:
        out.append(f'<span title="output tokens per second, end to end">{esc(tokens_per_s(r.tokens_per_s))}</span>')
    return out


def timing_facts(r: CellResult) -> list[str]:
    """The same measurements in words, for a cell's details."""
    return [f"first token after {seconds(r.first_token_s)}" if r.first_token_s is not None else "",
            f"latency {seconds(r.latency_s)}" if r.latency_s is not None else "",
            f"{tokens_per_s(r.tokens_per_s)}" if r.tokens_per_s is not None else ""]


def output_text(r: CellResult) -> str:
    if r.outcome == "error":
        return f"[{r.error_type or 'error'}] {r.error_message or ''}"
    if r.outcome == "prompt_filtered":
        return "[prompt filtered] " + (r.error_message or "")
    if not r.output and r.tool_calls and not r.steps:  # a single call whose answer is a function call
        return calls_text(r.tool_calls)
    return r.output


def calls_text(calls: Sequence[Mapping[str, Any]]) -> str:
    """Function calls as a person reads them: ``-> get_weather({"city": "Paris"})``, one a line."""
    from ..tools import show_call

    return "\n".join(f"-> {show_call(c)}" for c in calls)


def _call_html(call: Mapping[str, Any]) -> str:
    from ..tools import call_arguments, call_name

    args, problem = call_arguments(call)
    shown = str(args) if problem else json.dumps(args, ensure_ascii=False, indent=1)
    bad = f' <span style="color:#a50e0e">({esc(problem)})</span>' if problem else ""
    return (f'<div class="wb-tool-call" style="font-size:12px;margin-left:8px">call <b>{esc(call_name(call))}</b>'
            f'{bad}<pre style="margin:0 0 0 8px;font-size:11px;white-space:pre-wrap">{esc(shown)}</pre></div>')


def steps_html(r: CellResult) -> str:
    """A looping cell step by step: each answer, its calls (name, arguments as JSON) and each tool's result."""
    if not r.steps and not r.tool_calls:
        return ""
    if not r.steps:
        return ('<div style="margin-top:4px;color:#555">tool calls</div>'
                + "".join(_call_html(c) for c in r.tool_calls))
    out = [f'<div style="margin-top:6px;color:#555">{len(r.steps)} step{"s" if len(r.steps) != 1 else ""}</div>']
    for s in r.steps:
        facts = [f"{s.prompt_tokens} + {s.completion_tokens} tokens",
                 usd(s.cost_usd) if s.cost_usd is not None else "cost unknown", "cache hit" if s.cache_hit else ""]
        out.append(f'<div class="wb-step" style="border-left:3px solid #ddd;padding-left:6px;margin:4px 0">'
                   f'<div style="font-size:12px"><b>step {s.step}</b> · {esc(s.finish_reason or s.outcome)} · '
                   f'<span style="color:#555;font-size:11px">{esc(" · ".join(f for f in facts if f))}</span></div>')
        if s.output:
            out.append(f'<pre style="margin:0 0 0 8px;white-space:pre-wrap;font-size:12px">{esc(s.output)}</pre>')
        results = {t.tool_call_id: t for t in s.tool_results}
        for call in s.tool_calls:
            out.append(_call_html(call))
            t = results.get(str(call.get("id") or ""))
            if t is not None:
                colour = "#a50e0e" if t.error else "#0d652d"
                out.append(f'<div style="font-size:11px;margin-left:16px;color:{colour}">result: '
                           f'<pre style="display:inline;white-space:pre-wrap">{esc(clip(t.content, 600))}</pre></div>')
        out.append("</div>")
    return "".join(out)


def grid_html(records: Sequence[CellResult], cases: Sequence[Any] | None = None, variants: Sequence[str] | None = None,
              scorer: str | None = None, *, limit: int = 400, flaky: set[CellKey] | None = None,
              pending: str = "…") -> str:
    """Outputs side by side: one row per case (and target), one column per variant, badges under each output.

    ``cases`` are :class:`~workbench.datasets.Case` objects (their inputs and expected answer are shown) or ids;
    cells not finished yet show ``pending``.
    """
    statuses = cell_statuses(records, scorer, flaky)
    variants = list(variants or dict.fromkeys(r.variant for r in records))
    targets = list(dict.fromkeys(r.target for r in records)) or [""]
    case_rows = list(cases) if cases is not None else list(dict.fromkeys(r.case_id for r in records))
    head = "".join(f'<th style="{CELL_CSS};background:#f4f4f4">{esc(v)}</th>' for v in variants)
    rows = []
    for case in case_rows:
        cid = getattr(case, "id", case)
        label = esc(cid)
        if hasattr(case, "vars"):
            from .editing import case_label

            label += f'<div style="color:#555">{esc(case_label(case))}</div>'
            if case.expected not in (None, ""):
                label += f'<div style="color:#555">expected: <b>{esc(case.expected)}</b></div>'
        for target in targets:
            cells = []
            for v in variants:
                st = statuses.get((str(cid), v, target)) if target else next(
                    (s for k, s in statuses.items() if k[0] == str(cid) and k[1] == v), None)
                if st is None:
                    cells.append(f'<td style="{CELL_CSS};color:#999">{esc(pending)}</td>')
                    continue
                bg = KIND_COLOURS[st.kind]
                cells.append(f'<td class="wb-cell wb-{st.kind}" style="{CELL_CSS};background:{bg};max-width:420px;'
                             f'white-space:pre-wrap">{cell_body_html(st, limit)}</td>')
            tlabel = f'<div style="color:#888">{esc(target)}</div>' if len(targets) > 1 else ""
            rows.append(f'<tr><td style="{CELL_CSS};max-width:260px">{label}{tlabel}</td>{"".join(cells)}</tr>')
    return (f'<table class="wb-grid" style="{TABLE_CSS}"><thead><tr><th style="{CELL_CSS};background:#f4f4f4">case'
            f'</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>')


def cell_body_html(st: CellStatus, limit: int = 400) -> str:
    """A finished cell: its output (clipped) and its badges."""
    return esc(clip(output_text(st.first), limit)) + badges(st)


LIVE_STATES = {"waiting": "waiting…", "streaming": "", "not run": "not run"}


def live_cell_html(state: str, text: str = "", limit: int = 400) -> str:
    """A cell without a result yet: ``waiting`` (not started), ``streaming`` (its text so far, with a cursor),
    or ``not run`` (the run ended without it: cancelled or stopped)."""
    if state == "streaming":
        shown = esc(clip(text, limit)) if text else ""
        return f'<span class="wb-live">{shown}</span><span class="wb-cursor" aria-label="streaming">▍</span>'
    return f'<span class="wb-{state.replace(" ", "-")}" style="color:#999">{esc(LIVE_STATES[state])}</span>'


def _content_text(content: Any) -> str:
    return content_text(content, image_placeholder=True)


def messages_html(messages: Sequence[Mapping[str, Any]]) -> str:
    """The rendered chat messages as sent, one block per message."""
    out = []
    for m in messages:
        role = m.get("role", "?")
        if m.get("tool_call_id"):
            role = f"{role} (answers {m['tool_call_id']})"
        out.append(f'<div style="margin:2px 0"><b>{esc(role)}</b><pre style="margin:0 0 0 8px;white-space:pre-wrap;'
                   f'font-size:12px">{esc(_content_text(m.get("content")))}</pre>'
                   f'{tool_calls_html(m.get("tool_calls") or [])}</div>')
    return "".join(out)


def tool_calls_html(calls: Sequence[Mapping[str, Any]]) -> str:
    """Tool calls as ``name(arguments)`` lines with their ids (empty without any)."""
    if not calls:
        return ""
    lines = []
    for c in calls:
        fn = c.get("function") or {}
        lines.append(f'<div class="wb-tool-call" style="font:12px ui-monospace,monospace;margin-left:8px">'
                     f'→ {esc(fn.get("name", "?"))}({esc(clip(fn.get("arguments", ""), 400))})'
                     f' <span style="color:#888">{esc(c.get("id", ""))}</span></div>')
    return "".join(lines)


def output_diff_html(a: str, b: str, a_name: str = "a", b_name: str = "b") -> str:
    """A word-level diff of two outputs (difflib): removed words struck in red, added words in green."""
    wa, wb = (a or "").split(" "), (b or "").split(" ")
    sm = difflib.SequenceMatcher(a=wa, b=wb, autojunk=False)
    out = []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            out.append(esc(" ".join(wa[i1:i2])))
            continue
        if op in ("delete", "replace"):
            out.append(f'<del style="background:#fce8e6;color:#a50e0e">{esc(" ".join(wa[i1:i2]))}</del>')
        if op in ("insert", "replace"):
            out.append(f'<ins style="background:#e6f4ea;color:#0d652d;text-decoration:none">'
                       f'{esc(" ".join(wb[j1:j2]))}</ins>')
    ratio = sm.ratio()
    head = (f'<div style="font-size:11px;color:#555">diff {esc(a_name)} → {esc(b_name)} · similarity {ratio:.0%}'
            f' (<del style="color:#a50e0e">only in {esc(a_name)}</del>, '
            f'<ins style="color:#0d652d;text-decoration:none">only in {esc(b_name)}</ins>)</div>')
    return f'{head}<pre style="white-space:pre-wrap;font-size:12px;margin:2px 0">{" ".join(out)}</pre>'


def unified_diff(a: str, b: str, a_name: str = "a", b_name: str = "b") -> str:
    """A line-level unified diff (plain text), for logs and tests."""
    return "".join(difflib.unified_diff((a or "").splitlines(True), (b or "").splitlines(True), a_name, b_name))


def highlight(text: str, span: Sequence[int] | None) -> str:
    """``text`` escaped, with ``span`` (the evidence a scorer quoted) marked."""
    if not span or not (0 <= span[0] < span[1] <= len(text)):
        return esc(text)
    a, b = span[0], span[1]
    return f"{esc(text[:a])}<mark>{esc(text[a:b])}</mark>{esc(text[b:])}"


def cell_detail_html(st: CellStatus) -> str:
    """Everything about one cell: messages as sent, each repeat's full output, scores and call facts."""
    r = st.first
    case_id, variant, target = st.key
    parts = [f'<div style="font:13px system-ui,sans-serif"><b>{esc(case_id)}</b> × <b>{esc(variant)}</b> on '
             f'{esc(target)} ({esc(r.model)})',
             '<div style="margin-top:4px;color:#555">messages as sent</div>', messages_html(r.messages)]
    params = {k: v for k, v in r.params.items() if k != "response_format"}
    if params:
        parts.append(f'<div style="color:#555;font-size:11px">params: {esc(json.dumps(params, sort_keys=True))}</div>')
    for rec in st.records:
        label = f"output (repeat {rec.repeat})" if st.n > 1 else "output"
        shown = _score_of(rec, st.scorer)
        span = shown.span if shown is not None and rec.outcome != "error" else None
        parts.append(f'<div style="margin-top:6px;color:#555">{label} · {esc(rec.outcome)}'
                     f'{" · finish " + esc(rec.finish_reason) if rec.finish_reason else ""}</div>'
                     f'<pre class="wb-full-output" style="white-space:pre-wrap;font-size:12px;margin:0;'
                     f'background:#f8f8f8;padding:4px">{highlight(output_text(rec), span)}</pre>')
        if rec.parse_error:
            parts.append(f'<div style="color:#a50e0e;font-size:11px">JSON: {esc(rec.parse_error)}</div>')
        parts.append(steps_html(rec))
        for s in rec.scores:
            verdict = s.outcome if s.passed is not None or s.error else "n/a"
            expl = f" - {esc(s.explanation)}" if s.explanation else ""
            err = f' <span style="color:#a50e0e">{esc(s.error)}</span>' if s.error else ""
            val = "" if s.value is None else f" {s.value:.3g}"
            seen = (f'<div style="color:#555;font-size:11px;margin-left:8px">evidence: '
                    f'<mark>{esc(clip(s.evidence, 300))}</mark></div>') if s.evidence else ""
            parts.append(f'<div style="font-size:12px">{esc(s.scorer)}: <b>{esc(verdict)}</b>{val}{expl}{err}'
                         f'{seen}</div>')
        facts = [*timing_facts(rec),
                 f"{rec.prompt_tokens} prompt + {rec.completion_tokens} completion tokens",
                 usd(rec.cost_usd) if rec.cost_usd is not None else "cost unknown",
                 "cache hit" if rec.cache_hit else "", f"retries {rec.retries}" if rec.retries else "",
                 f"filter: {', '.join(rec.filter_flags)}" if rec.filter_flags else ""]
        parts.append('<div style="color:#555;font-size:11px">' + " · ".join(esc(f) for f in facts if f) + "</div>")
        if rec.content_filter:
            parts.append(f'<details><summary style="font-size:11px">content filter results</summary><pre '
                         f'style="font-size:11px">{esc(json.dumps(rec.content_filter, indent=1))}</pre></details>')
    parts.append("</div>")
    return "".join(parts)


def summary_html(results: Results, scorer: str | None) -> str:
    """:meth:`Results.summary` as a table: score per variant and target with its 95% interval, and how many
    answers were ambiguous, refused or errors (formatted as the report formats them)."""
    if not scorer:
        return '<div style="color:#888;font-size:12px">No scores: add scorers to the experiment.</div>'
    try:
        table = results.summary(scorer)
    except Exception as e:  # display must not raise
        return f'<div style="color:#b00;font-size:12px">summary unavailable: {esc(e)}</div>'
    rows = [summary_row(r) for r in table.to_dict("records")]
    cols = [c for c in SUMMARY_HEADERS if c != "target" or len({r["target"] for r in rows}) > 1]
    rate = any(is_rate(m) for m in table.get("method", []))
    what = "pass rate" if rate else "mean score"
    return (f'<div style="font:12px system-ui,sans-serif;margin-top:6px"><b>{esc(scorer)}</b>: {what} with its 95% '
            f'confidence interval; ambiguous and refused answers count as fails</div>'
            + html_table(cols, [[r[c] for c in cols] for r in rows]))


# ------------------------------------------------------------------------------------------ cards and chats


def answer_html(label: str, body_html: str, meta: str = "") -> str:
    """A card's answer box: which cell it is, the text (or live text), and its measurements."""
    head = f'<div class="wb-meta">{esc(label)}</div>' if label else ""
    tail = f'<div class="wb-meta">{meta}</div>' if meta else ""
    return f'{head}<div class="wb-answer">{body_html}</div>{tail}'


def call_badges(r: CellResult) -> list[str]:
    """Badges of one finished call: time to first token, latency, tokens/s, tokens, cost, cached."""
    parts = timing_badges(r)
    if r.prompt_tokens or r.completion_tokens:
        parts.append(f"{r.prompt_tokens}→{r.completion_tokens} tok")
    if r.cost_usd is not None:
        parts.append(usd(r.cost_usd))
    if r.cache_hit:
        parts.append("cached")
    return parts


def record_meta(r: CellResult) -> str:
    """The call's badges as one line, for a card."""
    return " · ".join(call_badges(r))


def thread_html(conversation: Any, variant: str) -> str:
    """One variant's side of a :class:`~workbench.conversation.Conversation`: the user messages and its replies,
    the last one streaming while it comes, each with its time to first token, latency and rate."""
    out = []
    for user, answer in [conversation.opening[variant]] if variant in conversation.opening else []:
        out.append(f'<div class="wb-chat-user">{esc(user)}</div><div class="wb-chat-reply wb-done">{esc(answer)}'
                   f'</div>')
    for ex in conversation.exchanges:
        out.append(f'<div class="wb-chat-user">{esc(ex.user)}</div>')
        reply = ex.replies.get(variant)
        if reply is None:
            continue
        body = esc(reply.text)
        if reply.state == "waiting":
            body = '<span style="color:#999">waiting…</span>'
        elif reply.state == "streaming":
            body += '<span class="wb-cursor">▍</span>'
        elif reply.state == "error":
            body += f'<span style="color:#a50e0e">[error] {esc(reply.error)}</span>'
        meta = ""
        c = reply.completion
        if c is not None:
            bits = [f"first {seconds(c.first_token_s)}" if c.first_token_s is not None else "", seconds(c.latency_s),
                    tokens_per_s(c.tokens_per_s) if c.tokens_per_s else "",
                    f"{c.usage.completion_tokens} tok", "stopped" if reply.state == "stopped" else ""]
            meta = f'<div class="wb-meta">{esc(" · ".join(b for b in bits if b))}</div>'
        out.append(f'<div class="wb-chat-reply wb-{reply.state}">{body}</div>{meta}')
    if not out:
        return '<div class="wb-meta">Chat: type a message below; every variant answers it.</div>'
    return "".join(out)


def latency_html(results: Results) -> str:
    """:meth:`Results.latency` as a table: latency and time to first token (p50/p95), tokens per second."""
    try:
        table = results.latency()
    except Exception as e:  # display must not raise
        return f'<div style="color:#b00;font-size:12px">latency unavailable: {esc(e)}</div>'
    if not len(table):
        return ""
    rows = [[r["variant"], r["target"], count(r["n"]), count(r["cached"]), seconds(r["latency_p50"]),
             seconds(r["latency_p95"]), seconds(r["first_token_p50"]), seconds(r["first_token_p95"]),
             tokens_per_s(r["tokens_per_s"])]
            for _, r in table.iterrows()]
    head = ["variant", "target", "calls", "cached", "latency p50", "p95", "first token p50", "p95", "tokens/s"]
    return ('<div style="font:12px system-ui,sans-serif;margin-top:6px"><b>Latency</b> (answered calls; first token '
            'only for streamed calls; tokens/s: output tokens over the whole call)</div>' + html_table(head, rows))
