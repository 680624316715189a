"""A variant's card in the playground: its fields, its few-shot turns, its estimate, and its answer as it streams.

Thin: the card holds widgets and hands :class:`~workbench.widgets.editing.VariantFields` to the playground; what
an estimate or an answer says is computed elsewhere and only shown here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import ipywidgets as widgets

from .editing import RESPONSE_FORMATS, TURN_ROLES, VariantEstimate, VariantFields
from .fallback import esc

# Cards share the width in equal columns of at least this much, wrapping to a new row when there is no room: four
# fit side by side in a notebook on a 1280 px laptop screen (with the file browser open), more wrap.
CARD_MIN = "200px"
CARDS_COLUMNS = f"repeat(auto-fit, minmax({CARD_MIN}, 1fr))"
FULL = dict(width="auto", margin="2px 0")  # a card's full-width parts: ipywidgets' side margins would overflow it

CARD_CSS = """
.wb-cards{width:100%;box-sizing:border-box}
.wb-variant{box-sizing:border-box;overflow:hidden;min-width:0}
.wb-variant .widget-text,.wb-variant .widget-textarea,.wb-variant .widget-dropdown,
.wb-variant .widget-bounded-float-text,.wb-variant .widget-bounded-int-text{min-width:0}
.wb-variant textarea{font:12px/1.35 ui-monospace,monospace;resize:vertical}
.wb-variant .widget-hbox{min-width:0}
.wb-card-output .widget-html-content,.wb-chat-thread .widget-html-content{font:12px/1.35 system-ui,sans-serif;
  white-space:normal;word-break:break-word}
.wb-answer{white-space:pre-wrap;background:#f8f8f8;border-radius:3px;padding:4px;margin-top:2px;max-height:16em;
  overflow-y:auto}
.wb-chat-user{background:#e8f0fe;border-radius:3px;padding:3px 5px;margin:4px 0 2px;white-space:pre-wrap}
.wb-chat-reply{white-space:pre-wrap;padding:3px 5px;border-left:3px solid #ccc;margin:0 0 2px}
.wb-chat-reply.wb-done{border-left-color:#34a853}.wb-chat-reply.wb-error{border-left-color:#d93025}
.wb-chat-reply.wb-stopped{border-left-color:#f9ab00}
.wb-meta{color:#666;font-size:11px}
"""


def _area(value: str, placeholder: str, rows: int, cls: str) -> widgets.Textarea:
    w = widgets.Textarea(value=value, placeholder=placeholder, rows=rows, continuous_update=True,
                         layout=widgets.Layout(**FULL))
    w.add_class(cls)
    return w


class TurnsEditor(widgets.VBox):
    """The few-shot turns between the system message and the user template: a role and a text each."""

    def __init__(self, turns: Sequence[tuple[str, str]], on_change: Callable[[], None]):
        self._on_change = on_change
        self.add_button = widgets.Button(description="turn", icon="plus", tooltip="add a few-shot turn",
                                         layout=widgets.Layout(**FULL))
        self.add_button.add_class("wb-add-turn")
        self.add_button.on_click(lambda _: self.add_turn())
        self.rows: list[tuple[widgets.Dropdown, widgets.Textarea, widgets.Box]] = []
        super().__init__(layout=widgets.Layout(width="auto"))
        self.add_class("wb-turns")
        self.set_value(turns, notify=False)

    def value(self) -> list[tuple[str, str]]:
        return [(role.value, text.value) for role, text, _ in self.rows]

    def set_value(self, turns: Sequence[tuple[str, str]], notify: bool = True) -> None:
        for _, _, box in self.rows:
            box.close()
        self.rows = []
        for role, content in turns:
            self._row(role, content)
        self._layout()
        if notify:
            self._on_change()

    def add_turn(self, role: str | None = None, content: str = "") -> None:
        """A new turn; its role alternates with the previous one (user, assistant, user...)."""
        if role is None:
            role = "assistant" if self.rows and self.rows[-1][0].value == "user" else "user"
        self._row(role, content)
        self._layout()
        self._on_change()

    def remove_turn(self, index: int) -> None:
        _, _, box = self.rows.pop(index)
        box.close()
        self._layout()
        self._on_change()

    def _row(self, role: str, content: str) -> None:
        pick = widgets.Dropdown(options=list(TURN_ROLES), value=role if role in TURN_ROLES else "user",
                                layout=widgets.Layout(width="auto", flex="1 1 auto", min_width="0"))
        pick.add_class("wb-turn-role")
        text = _area(content, "few-shot text (jinja2 template)", 2, "wb-turn-text")
        remove = widgets.Button(icon="times", tooltip="remove this turn", layout=widgets.Layout(width="32px"))
        box = widgets.VBox([widgets.HBox([pick, remove], layout=widgets.Layout(width="auto")), text],
                           layout=widgets.Layout(width="auto", margin="0 0 4px 0"))
        box.add_class("wb-turn")
        remove.on_click(lambda _, b=box: self.remove_turn([r[2] for r in self.rows].index(b)))
        pick.observe(lambda _: self._on_change(), names="value")
        text.observe(lambda _: self._on_change(), names="value")
        self.rows.append((pick, text, box))

    def _layout(self) -> None:
        self.children = [box for _, _, box in self.rows] + [self.add_button]


class VariantEditor(widgets.VBox):
    """One variant's card: name, target, temperature, max tokens, response format, system template, few-shot turns,
    user template, the live estimate and warnings, then its answer (streamed) or its side of a chat.
    Changes are reported to ``on_change(editor)``."""

    def __init__(self, fields: VariantFields, targets: Sequence[str], *, default_temperature: float = 0.0,
                 on_change: Callable[[VariantEditor], None] | None = None,
                 on_duplicate: Callable[[VariantEditor], None] | None = None,
                 on_remove: Callable[[VariantEditor], None] | None = None):
        self._base = fields.base
        self._on_change = on_change
        self._quiet = False
        options = list(targets)
        if fields.target and fields.target not in options:
            options.insert(0, fields.target)
        narrow = {"description_width": "initial"}
        self.name = widgets.Text(value=fields.name, placeholder="variant name",
                                 layout=widgets.Layout(flex="1 1 auto", width="auto", min_width="0"))
        self.name.add_class("wb-variant-name")
        self.duplicate_button = widgets.Button(icon="copy", tooltip="duplicate this variant",
                                               layout=widgets.Layout(width="32px", flex="0 0 auto"))
        self.remove_button = widgets.Button(icon="trash", tooltip="remove this variant",
                                            layout=widgets.Layout(width="32px", flex="0 0 auto"))
        self.target = widgets.Dropdown(options=options or [fields.target], value=fields.target or (options or [""])[0],
                                       description="target", style=narrow, layout=widgets.Layout(**FULL))
        self.temperature = widgets.BoundedFloatText(
            value=fields.temperature if fields.temperature is not None else default_temperature, min=0.0, max=2.0,
            step=0.1, description="temp", style=narrow,
            layout=widgets.Layout(width="auto", flex="1 1 0", min_width="0"))
        self.temperature.add_class("wb-temperature")
        self.max_tokens = widgets.BoundedIntText(value=fields.max_tokens or 0, min=0, max=1_000_000,
                                                 description="max", tooltip="max tokens (0: the model's own limit)",
                                                 style=narrow,
                                                 layout=widgets.Layout(width="auto", flex="1 1 0", min_width="0"))
        self.response_format = widgets.Dropdown(options=list(RESPONSE_FORMATS), value=fields.response_format,
                                                description="format", style=narrow, layout=widgets.Layout(**FULL))
        self.schema = _area(fields.schema, '{"type": "object", "properties": {...}}', 5, "wb-schema")
        self.system = _area(fields.system, "system prompt (jinja2 template, optional)", 3, "wb-system")
        turns = fields.turns if fields.turns is not None else [(t.role, t.content) for t in
                                                               (fields.base.turns if fields.base else [])]
        self.turns = TurnsEditor(turns, lambda: self._changed({}))
        self.turns_toggle = widgets.ToggleButton(value=bool(turns), icon="comments", tooltip="few-shot turns",
                                                 layout=widgets.Layout(**FULL))
        self.turns_toggle.add_class("wb-turns-toggle")
        self.user = _area(fields.user, "user message template, e.g. Review: {{ text }}", 3, "wb-user")
        self.info = widgets.HTML(layout=widgets.Layout(min_height="20px"))
        self.info.add_class("wb-token-count")
        self.warnings = widgets.HTML()
        self.warnings.add_class("wb-warnings")
        self.output = widgets.HTML()
        self.output.add_class("wb-card-output")
        self.thread = widgets.HTML()
        self.thread.add_class("wb-chat-thread")
        self.estimate: VariantEstimate | None = None
        self._warning_list: list[str] = []
        self._name_clash = False
        self._chat = False
        super().__init__(layout=widgets.Layout(min_width="0", border="1px solid #ccc", padding="6px", margin="0"))
        self.add_class("wb-variant")
        self.duplicate_button.on_click(lambda _: on_duplicate and on_duplicate(self))
        self.remove_button.on_click(lambda _: on_remove and on_remove(self))
        for w in (self.name, self.target, self.temperature, self.max_tokens, self.response_format, self.schema,
                  self.system, self.user):
            w.observe(self._changed, names="value")
        self.response_format.observe(lambda _: self._layout_children(), names="value")
        self.turns_toggle.observe(lambda _: self._layout_children(), names="value")
        self._layout_children()

    # -- layout ------------------------------------------------------------------------------------------
    def _layout_children(self) -> None:
        if not hasattr(self, "_parts"):  # built once; format, turns and chat only show or hide parts
            self._parts = (widgets.HBox([self.name, self.duplicate_button, self.remove_button],
                                        layout=widgets.Layout(width="auto")),
                           widgets.HBox([self.temperature, self.max_tokens], layout=widgets.Layout(width="auto")),
                           widgets.HTML("<small>system</small>"),
                           widgets.HTML("<small>user</small>"))
        head, numbers, system_label, user_label = self._parts
        self.turns_toggle.description = f"few-shot turns ({len(self.turns.rows)})"
        fmt = [self.response_format] + ([self.schema] if self.response_format.value == "json_schema" else [])
        turns = [self.turns] if self.turns_toggle.value else []
        answer = [self.thread] if self._chat else [self.output]
        self.children = [head, self.target, numbers, *fmt, system_label, self.system, self.turns_toggle, *turns,
                         user_label, self.user, self.info, self.warnings, *answer]

    def show_chat(self, on: bool) -> None:
        """Show this variant's side of the chat instead of its last run's answer."""
        if on != self._chat:
            self._chat = on
            self._layout_children()

    # -- values ------------------------------------------------------------------------------------------
    def _changed(self, change: dict) -> None:
        if hasattr(self, "_parts"):
            self.turns_toggle.description = f"few-shot turns ({len(self.turns.rows)})"
        if self._on_change is not None and not self._quiet:
            self._on_change(self)

    def fields(self) -> VariantFields:
        """What the card shows, every field of it (a temperature shown is a temperature sent and saved)."""
        return VariantFields(
            name=self.name.value, system=self.system.value, user=self.user.value, target=self.target.value or "",
            temperature=None if self.temperature.disabled else self.temperature.value,
            max_tokens=self.max_tokens.value or None, response_format=self.response_format.value,
            schema=self.schema.value, base=self._base, turns=self.turns.value())

    def set_fields(self, fields: VariantFields) -> None:
        """Show ``fields`` (e.g. an earlier version from the prompt history), as one change."""
        self._quiet = True
        try:
            self._base = fields.base
            self.name.value = fields.name
            if fields.target and fields.target not in self.target.options:
                self.target.options = [fields.target, *self.target.options]
            if fields.target:
                self.target.value = fields.target
            if fields.temperature is not None:
                self.temperature.value = fields.temperature
            self.max_tokens.value = fields.max_tokens or 0
            self.response_format.value = fields.response_format
            self.schema.value = fields.schema
            self.system.value = fields.system
            self.user.value = fields.user
            turns = fields.turns if fields.turns is not None else []
            self.turns.set_value(turns, notify=False)
            self.turns_toggle.value = bool(turns) or self.turns_toggle.value
        finally:
            self._quiet = False
        self._layout_children()
        self._changed({})

    def set_targets(self, targets: Sequence[str]) -> None:
        value = self.target.value
        options = list(targets)
        if value and value not in options:
            options.insert(0, value)
        with self.hold_trait_notifications():
            self.target.options = options
            self.target.value = value if value in options else options[0]

    def set_model(self, reasoning: bool) -> None:
        """A reasoning model takes no temperature: the field is greyed out and nothing is sent or saved for it."""
        self.temperature.disabled = reasoning
        self.temperature.tooltip = "this model takes no temperature" if reasoning else ""

    # -- display -----------------------------------------------------------------------------------------
    def show(self, estimate: VariantEstimate | None, warnings: Sequence[str]) -> None:
        """Display an estimate and the warnings about this variant's templates and parameters."""
        self.estimate = estimate
        self._warning_list = list(warnings)
        self.info.value = (f'<div style="font:12px/1.3 system-ui,sans-serif;color:#333;padding:2px 0">'
                           f'{esc(estimate.text())}</div>' if estimate else "")
        self._render_warnings()

    def show_output(self, html: str) -> None:
        if self.output.value != html:
            self.output.value = html

    def show_thread(self, html: str) -> None:
        if self.thread.value != html:
            self.thread.value = html

    def flag_name_clash(self, clash: bool) -> None:
        if clash != self._name_clash:
            self._name_clash = clash
            self._render_warnings()

    def _render_warnings(self) -> None:
        items = list(getattr(self, "_warning_list", []))
        if self._name_clash:
            items.append(f"the name {self.name.value.strip()!r} is used by another variant; rename one.")
        self.warnings.value = "".join(f'<div style="font:11px/1.3 system-ui,sans-serif;color:#b06000">⚠ {esc(w)}'
                                      f'</div>' for w in items)
