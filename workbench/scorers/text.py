"""Text scorers: exact, contains, regex, and label (classification by whole-word label extraction)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import DataError, ScoreFailed
from ..records import Score
from ._util import (
    _as_text,
    _clip,
    _expected_field,
    _field_value,
    _is_template,
    _loads,
    _py,
    _template,
)
from .base import AnswerScorer, ScoreInput, register_scorer


@dataclass(kw_only=True, eq=False)
class _TextScorer(AnswerScorer):
    """Shared options of exact / contains / regex."""

    ignore_case: bool = False
    strip: bool = True  # ignore leading/trailing whitespace (models add newlines)
    normalize_whitespace: bool = False  # collapse runs of whitespace to one space (implies strip)
    field: str | None = None  # compare this field of the output JSON (dotted path: a.b.0) instead of the text

    def _norm(self, text: str) -> str:
        text = self._ws(text)
        return text.casefold() if self.ignore_case else text

    def _ws(self, text: str) -> str:
        if self.normalize_whitespace:
            return " ".join(text.split())
        return text.strip() if self.strip else text

    def _pick(self, inp: ScoreInput) -> tuple[Any, Any]:
        """What to compare: (output or its JSON field, expected or its matching field)."""
        if not self.field:
            return inp.output, inp.expected
        return _field_value(inp, self.field), _expected_field(inp.expected, self.field)

    def _equal(self, got: Any, want: Any) -> bool:
        got, want = _py(got), _py(want)
        if isinstance(want, (Mapping, list)) and isinstance(got, str):
            try:
                got = _loads(got)
            except ValueError:
                return False
        if not isinstance(got, str) and not isinstance(want, str):
            return bool(got == want)  # structures and numbers compare as values (12 == 12.0)
        return self._norm(_as_text(got)) == self._norm(_as_text(want))


@register_scorer("exact")
@dataclass(kw_only=True, eq=False)
class ExactScorer(_TextScorer):
    """The output (or a JSON ``field`` of it) equals the expected value - or one of them, if a list.

    Text is compared after the normalisation options; a dict/list expected value is compared as JSON
    structure (key order and formatting do not matter). A list ``expected`` always means "any of these"; to
    expect a JSON array, wrap it: ``[[1, 2, 3]]``.
    """

    def _score(self, inp: ScoreInput) -> Score:
        got, expected = self._pick(inp)
        alternatives = self._expected(inp, expected)
        evidence = _clip(self._ws(_as_text(got)), 200)
        for want in alternatives:
            if self._equal(got, want):
                return self._verdict(True, answer=got, explanation=f"equals {_clip(want)!r}", evidence=evidence)
        return self._verdict(False, answer=got, evidence=evidence,
                             explanation=f"{_clip(got)!r} does not equal "
                                         + " or ".join(repr(_clip(w)) for w in alternatives))


@register_scorer("contains")
@dataclass(kw_only=True, eq=False)
class ContainsScorer(_TextScorer):
    """The expected text appears in the output (any of them if ``expected`` is a list; all with ``match_all``)."""

    match_all: bool = False

    def _score(self, inp: ScoreInput) -> Score:
        got, expected = self._pick(inp)
        haystack = self._norm(_as_text(got))
        alternatives = self._expected(inp, expected)
        found = [w for w in alternatives if self._norm(_as_text(w)) in haystack]
        missing = [w for w in alternatives if w not in found]
        ok = not missing if self.match_all else bool(found)
        if ok:
            return self._verdict(
                True, answer=found[0], explanation=f"contains {', '.join(repr(_clip(w)) for w in found)}",
                evidence=_as_text(found[0]),
            )
        what = missing if self.match_all else alternatives
        return self._verdict(False, explanation=f"does not contain {', '.join(repr(_clip(w)) for w in what)}")


@register_scorer("regex")
@dataclass(kw_only=True, eq=False)
class RegexScorer(_TextScorer):
    """The output matches a regular expression (Python ``re`` syntax; ``re.search`` unless ``fullmatch``).

    - ``pattern`` may be a jinja2 template using the case: ``\\b{{ expected }}\\b``, ``{{ vars.city }}``.
      Values are inserted regex-escaped, so they match literally; with a list ``expected`` any alternative
      may match.
    - ``group`` (number or name): the captured text is the answer, compared with ``expected`` using the
      text options - e.g. ``pattern: "ANSWER:\\s*(\\w+)"``, ``group: 1``.
    - ``ignore_case`` sets ``re.IGNORECASE``; ``strip``/``normalize_whitespace`` apply to the output.
    """

    primary: ClassVar[str | None] = "pattern"
    pattern: str = ""
    group: int | str | None = None
    fullmatch: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.pattern:
            raise DataError(f"scorer {self.name!r}: regex needs a `pattern`")
        self._compiled = None
        self._tmpl = None
        if _is_template(self.pattern):
            self._tmpl = _template(self.pattern, f"scorer {self.name!r} pattern")
        else:
            self._compiled = self._compile(self.pattern)

    def _compile(self, pattern: str) -> re.Pattern[str]:
        try:
            return re.compile(pattern, re.IGNORECASE if self.ignore_case else 0)
        except re.error as e:
            raise DataError(f"scorer {self.name!r}: invalid regex {pattern!r}: {e}") from None

    def _patterns(self, inp: ScoreInput, expected: Any) -> list[re.Pattern[str]]:
        if self._tmpl is None:
            return [self._compiled]
        esc = lambda v: re.escape(self._ws(_as_text(v)))  # noqa: E731
        variables = {k: esc(v) for k, v in inp.vars.items()}
        uses_expected = "expected" in self.pattern
        alternatives = self._expected(inp, expected) if uses_expected else [None]
        return [
            self._compile(self._tmpl.render(expected=esc(alt), vars=variables, case_id=inp.case_id))
            for alt in alternatives
        ]

    def _score(self, inp: ScoreInput) -> Score:
        got, expected = self._pick(inp)
        text = self._ws(_as_text(got))
        for pattern in self._patterns(inp, expected):
            m = pattern.fullmatch(text) if self.fullmatch else pattern.search(text)
            if m is None:
                continue
            if self.group is None:
                return self._verdict(True, answer=m.group(0), explanation=f"matches /{_clip(pattern.pattern)}/",
                                     evidence=m.group(0))
            captured = m.group(self.group)
            alternatives = self._expected(inp, expected)
            ok = captured is not None and any(self._equal(captured, w) for w in alternatives)
            return self._verdict(
                ok,
                answer=captured,
                explanation=f"captured {captured!r}, expected " + " or ".join(repr(_clip(w)) for w in alternatives),
                evidence=m.group(0),
            )
        return self._verdict(False, explanation=f"no match for /{_clip(self.pattern)}/")


@register_scorer("label")
@dataclass(kw_only=True, eq=False)
class LabelScorer(AnswerScorer):
    """Classification: find which of the allowed ``labels`` the output chose, and compare with ``expected``.

    Extraction, case-insensitive, whole words only ("positive" is not found in "non-positively"):

    - ``field`` set: the label is read from that field of the output JSON;
    - else, if the output is a JSON object, a top-level string value that is exactly one label is used
      (``{"reasoning": "...", "sentiment": "positive"}``);
    - else ``mode: first`` (default): the label the text mentions; on the same position the longer label wins
      ("very positive" over "positive"). ``mode: whole``: the whole output, stripped of quotes and trailing
      punctuation, must be a label.

    Verdicts: ``pass`` / ``fail`` on the label found; ``fail`` when none is found; ``refused`` when the model
    declines (``on_refusal``, see :class:`~workbench.scorers.base.AnswerScorer`); ``ambiguous`` when the text
    names more than one label ("Positive or Negative: positive") - a hedge is not an answer, so it fails by
    default. ``on_ambiguous: first`` takes the first label mentioned instead (and still marks the score
    ``metadata["ambiguous"]``).

    ``answer`` is the label as spelled in ``labels``; ``evidence`` the text it was read from, with its
    ``span`` in the output; ``metadata["labels_found"]`` lists every label mentioned.
    """

    primary: ClassVar[str | None] = "labels"
    labels: Sequence[str] = ()
    mode: str = "first"  # first | whole
    field: str | None = None
    on_ambiguous: str = "fail"  # fail | first

    def __post_init__(self) -> None:
        super().__post_init__()
        if (
            isinstance(self.labels, str)
            or not self.labels
            or not all(isinstance(x, str) and x.strip() for x in self.labels)
        ):
            raise DataError(
                f"scorer {self.name!r}: label needs `labels`, a list of the allowed labels (got {self.labels!r})"
            )
        if self.mode not in ("first", "whole"):
            raise DataError(f"scorer {self.name!r}: mode must be 'first' or 'whole', got {self.mode!r}")
        if self.on_ambiguous not in ("fail", "first"):
            raise DataError(f"scorer {self.name!r}: on_ambiguous must be 'fail' or 'first', got {self.on_ambiguous!r}")
        self._canonical = {x.strip().casefold(): x for x in self.labels}
        alternation = "|".join(re.escape(x.strip()) for x in sorted(self.labels, key=len, reverse=True))
        self._finder = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)

    def extract(self, inp: ScoreInput) -> tuple[str | None, list[str]]:
        """(the chosen label or None, every distinct label mentioned) - public for widgets and debugging."""
        found = self._find(inp)
        return found.label, found.labels

    def _find(self, inp: ScoreInput) -> _Found:
        if self.field:
            return self._from_text(_as_text(_field_value(inp, self.field)), None)
        data = inp.parsed
        if data is None:
            try:
                data = _loads(inp.output)
            except ValueError:
                data = None
        if isinstance(data, Mapping):
            exact = {
                (k, self._canonical[v.strip().casefold()])
                for k, v in data.items()
                if isinstance(v, str) and v.strip().casefold() in self._canonical
            }
            if len({label for _, label in exact}) == 1:
                key, label = sorted(exact)[0]
                return _Found(label, [label], f'"{key}": "{label}"', None)
        if isinstance(data, str):
            return self._from_text(data, None)
        return self._from_text(inp.output, inp.output)

    def _from_text(self, text: str, output: str | None) -> _Found:
        """Labels in ``text``; spans are offsets in the output when ``text`` is the output itself."""
        matches: list[re.Match[str]] = []
        labels: list[str] = []
        for m in self._finder.finditer(text):
            label = self._canonical[m.group(0).casefold()]
            matches.append(m)
            if label not in labels:
                labels.append(label)
        if self.mode == "whole":
            whole = " ".join(text.strip().strip("\"'`*.!?:; \t\n").split()).casefold()
            label = self._canonical.get(whole)
            return _Found(label, labels, _clip(text.strip(), 200) if label else None, None)
        if not matches:
            return _Found(None, [], None, None)
        first = matches[0]
        if len(labels) > 1:  # the evidence of a hedge: from the first label named to the last
            last = matches[-1]
            evidence = text[first.start():last.end()]
            span = (first.start(), last.end()) if output is not None and len(evidence) <= 300 else None
            return _Found(labels[0], labels, _clip(evidence, 300), span)
        return _Found(labels[0], labels, first.group(0), first.span() if output is not None else None)

    def _score(self, inp: ScoreInput) -> Score:
        alternatives = self._expected(inp)
        found = self._find(inp)
        meta: dict[str, Any] = {"labels_found": found.labels}
        if len(found.labels) > 1 and self.mode == "first":
            meta["ambiguous"] = True
            if self.on_ambiguous == "fail":
                raise ScoreFailed(
                    f"ambiguous: the output names {' and '.join(repr(x) for x in found.labels)}, so it does not "
                    f"choose one (counted as a fail; on_ambiguous: first takes the first)",
                    answer=None, verdict="ambiguous", evidence=found.evidence, span=found.span, **meta)
        label = found.label
        if label is None:
            how = "as the whole output" if self.mode == "whole" else "in the output"
            raise ScoreFailed(f"no label among {list(self.labels)} found {how}: {_clip(inp.output)!r}", **meta)
        ok = any(label.casefold() == _as_text(w).strip().casefold() for w in alternatives)
        want = " or ".join(repr(_as_text(w)) for w in alternatives)
        return self._verdict(ok, answer=label, explanation=f"label {label!r}, expected {want}",
                             evidence=found.evidence, span=found.span, **meta)


@dataclass(frozen=True)
class _Found:
    """What the label scorer read: the chosen label, every label named, and the text it came from."""

    label: str | None
    labels: list[str]
    evidence: str | None
    span: tuple[int, int] | None
