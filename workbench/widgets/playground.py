"""The variant playground: prompt variants side by side, live token/cost estimates, runs that never block.

::

    from workbench.widgets import Playground
    pg = Playground(load_example())          # or Playground(variants=[...], dataset="cases.csv")
    pg                                       # edit, Run, Cancel; pg.results afterwards
    pg.save("my-experiment.yaml")            # the batch run executes exactly these variants

Thin over the core: editors hold :class:`~workbench.widgets.editing.VariantFields`; estimates come from
:func:`~workbench.widgets.editing.estimate_variant` (tokens and costs from :mod:`workbench.costs`); Run builds an
experiment with :func:`~workbench.widgets.editing.experiment_for_run` and hands it to :func:`workbench.harness.start`
(a background thread; ``on_result`` fills the output grid as each call finishes).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from traitlets import Bool, Int, TraitError, Unicode, observe, validate

from ..datasets import Dataset, load_dataset
from ..errors import NotFoundError, WorkbenchError
from ..experiment import Experiment, load_experiment
from ..formatting import usd
from ..records import CellResult
from ..results import Results
from ..scorers.registry import scorer_name
from ..variants import Target, Variant
from .cells import grid_html, summary_html
from .editing import (
    ALL_TARGETS,
    RESPONSE_FORMATS,
    CaseSource,
    VariantEstimate,
    VariantFields,
    copy_fields,
    default_template,
    estimate_variant,
    experiment_for_run,
    experiment_for_save,
    new_run_dir,
    target_options,
    unique_name,
    variables_of,
)
from .fallback import StaticFallback, clip, esc, hide_snapshots_widget, html_table

_CARD_WIDTH = "370px"


def _area(value: str, placeholder: str, rows: int, cls: str) -> widgets.Textarea:
    w = widgets.Textarea(value=value, placeholder=placeholder, rows=rows, continuous_update=True,
                         layout=widgets.Layout(width="100%"))
    w.add_class(cls)
    return w


class VariantEditor(widgets.VBox):
    """One variant's card: name, target, temperature, max tokens, response format, system and user templates,
    the live estimate and warnings. Changes are reported to ``on_change(editor)``."""

    def __init__(self, fields: VariantFields, targets: Sequence[str], *, default_temperature: float = 0.0,
                 on_change: Callable[[VariantEditor], None] | None = None,
                 on_duplicate: Callable[[VariantEditor], None] | None = None,
                 on_remove: Callable[[VariantEditor], None] | None = None):
        self._base = fields.base
        self._on_change = on_change
        self._temp_set = fields.temperature is not None  # unset: the profile's default applies
        options = list(targets)
        if fields.target and fields.target not in options:
            options.insert(0, fields.target)
        self.name = widgets.Text(value=fields.name, placeholder="variant name", layout=widgets.Layout(flex="1"))
        self.name.add_class("wb-variant-name")
        self.duplicate_button = widgets.Button(icon="copy", tooltip="duplicate this variant",
                                               layout=widgets.Layout(width="36px"))
        self.remove_button = widgets.Button(icon="trash", tooltip="remove this variant",
                                            layout=widgets.Layout(width="36px"))
        self.target = widgets.Dropdown(options=options or [fields.target], value=fields.target or (options or [""])[0],
                                       description="target", layout=widgets.Layout(width="100%"))
        self.temperature = widgets.BoundedFloatText(
            value=fields.temperature if fields.temperature is not None else default_temperature, min=0.0, max=2.0,
            step=0.1, description="temp", layout=widgets.Layout(width="50%"))
        self.max_tokens = widgets.BoundedIntText(value=fields.max_tokens or 0, min=0, max=1_000_000,
                                                 description="max tok", tooltip="0: the model's own limit",
                                                 layout=widgets.Layout(width="50%"))
        self.response_format = widgets.Dropdown(options=list(RESPONSE_FORMATS), value=fields.response_format,
                                                description="format", layout=widgets.Layout(width="100%"))
        self.schema = _area(fields.schema, '{"type": "object", "properties": {...}}', 5, "wb-schema")
        self.system = _area(fields.system, "system prompt (jinja2 template, optional)", 4, "wb-system")
        self.user = _area(fields.user, "user message template, e.g. Review: {{ text }}", 4, "wb-user")
        self.info = widgets.HTML(layout=widgets.Layout(min_height="20px"))
        self.info.add_class("wb-token-count")
        self.warnings = widgets.HTML()
        self.warnings.add_class("wb-warnings")
        self.estimate: VariantEstimate | None = None
        self._warning_list: list[str] = []
        self._name_clash = False
        super().__init__(layout=widgets.Layout(width=_CARD_WIDTH, min_width=_CARD_WIDTH, border="1px solid #ccc",
                                               padding="6px", margin="0 8px 0 0"))
        self.add_class("wb-variant")
        self._layout_children()
        self.duplicate_button.on_click(lambda _: on_duplicate and on_duplicate(self))
        self.remove_button.on_click(lambda _: on_remove and on_remove(self))
        for w in (self.name, self.target, self.max_tokens, self.response_format, self.schema, self.system, self.user):
            w.observe(self._changed, names="value")
        self.temperature.observe(self._temperature_changed, names="value")
        self.response_format.observe(lambda _: self._layout_children(), names="value")

    def _layout_children(self) -> None:
        if not hasattr(self, "_parts"):  # built once; a format change only shows or hides the schema box
            self._parts = (widgets.HBox([self.name, self.duplicate_button, self.remove_button]),
                           widgets.HBox([self.temperature, self.max_tokens]),
                           widgets.HTML("<small>system</small>"), widgets.HTML("<small>user</small>"))
        head, numbers, system_label, user_label = self._parts
        fmt = [self.response_format] + ([self.schema] if self.response_format.value == "json_schema" else [])
        self.children = [head, self.target, numbers, *fmt, system_label, self.system, user_label, self.user,
                         self.info, self.warnings]

    def _temperature_changed(self, change: dict) -> None:
        self._temp_set = True
        self._changed(change)

    def _changed(self, change: dict) -> None:
        if self._on_change is not None:
            self._on_change(self)

    def fields(self) -> VariantFields:
        return VariantFields(
            name=self.name.value, system=self.system.value, user=self.user.value, target=self.target.value or "",
            temperature=self.temperature.value if self._temp_set else None, max_tokens=self.max_tokens.value or None,
            response_format=self.response_format.value, schema=self.schema.value, base=self._base)

    def set_targets(self, targets: Sequence[str]) -> None:
        value = self.target.value
        options = list(targets)
        if value and value not in options:
            options.insert(0, value)
        with self.hold_trait_notifications():
            self.target.options = options
            self.target.value = value if value in options else options[0]

    def show(self, estimate: VariantEstimate | None, warnings: Sequence[str]) -> None:
        """Display an estimate and the warnings about this variant's templates and parameters."""
        self.estimate = estimate
        self._warning_list = list(warnings)
        self.info.value = (f'<div style="font:12px/1.3 system-ui,sans-serif;color:#333;padding:2px 0">'
                           f'{esc(estimate.text())}</div>' if estimate else "")
        self._render_warnings()

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


class Playground(StaticFallback, widgets.VBox):
    """Prompt variants side by side on one ad-hoc input or the first ``k`` cases of a dataset.

    ``experiment``: an :class:`Experiment` (or a YAML path) to start from - its variants, dataset, scorers and
    targets. Or give ``variants``, ``dataset`` and ``scorers``. ``providers`` maps profile names to providers
    (e.g. ``{"fake": FakeBackend().provider("openai")}``); others come from the configuration. ``out``: the
    folder under which each run gets its own subfolder (default: the workbench home).
    """

    running = Bool(False, help="a run is going on")
    status = Unicode("", help="the status line (plain text)")
    mode = Unicode("input", help="'input' (one ad-hoc input) or 'dataset' (the first k cases)")
    k = Int(3, help="how many dataset cases a run uses in 'dataset' mode")

    def __init__(self, experiment: Experiment | str | Path | None = None, *, variants: Sequence[Variant] | None = None,
                 dataset: Any = None, scorers: Sequence[Any] | None = None, providers: Mapping[str, Any] | None = None,
                 k: int = 3, mode: str | None = None, cache: bool = True, out: str | Path | None = None,
                 profiles: Mapping[str, Any] | None = None, target: str = "local"):
        self.providers: dict[str, Any] = dict(providers or {})
        self._profiles = dict(profiles) if profiles is not None else None
        self._provider_cache: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._estimate_cache: dict[tuple, VariantEstimate] = {}
        self._handle = None
        self._watcher: threading.Thread | None = None
        self._finished_callbacks: list[Callable[[Results | None], None]] = []
        self._input_values: dict[str, str] = {}
        self._input_fields: dict[str, widgets.Textarea] = {}
        self.records: list[CellResult] = []
        self.results: Results | None = None
        self.error: BaseException | None = None
        self.last_experiment: Experiment | None = None
        self._out_root = Path(out) if out is not None else None
        self._run_cases: list[Any] = []
        self._run_variants: list[str] = []
        self._run_scorer: str | None = None
        self._default_target = target
        self._targets: list[str] = []

        # controls
        self.add_button = widgets.Button(description="Add variant", icon="plus")
        self.path = widgets.Text(value="", placeholder="experiment.yaml", description="spec",
                                 layout=widgets.Layout(width="340px"))
        self.save_button = widgets.Button(description="Save", icon="save",
                                          tooltip="save the variants as an experiment spec")
        self.load_button = widgets.Button(description="Load", icon="folder-open", tooltip="load an experiment spec")
        self.cards = widgets.HBox(layout=widgets.Layout(overflow="auto", width="100%", padding="4px 0"))
        self.mode_toggle = widgets.ToggleButtons(options=[("one input", "input"), ("first k cases", "dataset")],
                                                 value="input", style={"button_width": "110px"})
        self.k_slider = widgets.IntSlider(value=k, min=1, max=max(1, k), description="k", continuous_update=False)
        self.inputs = widgets.VBox()
        self.expected = widgets.Text(placeholder="expected answer (optional, for the scorers)", description="expected",
                                     layout=widgets.Layout(width="60%"))
        self.run_button = widgets.Button(description="Run", icon="play", button_style="primary")
        self.run_button.add_class("wb-run")
        self.cancel_button = widgets.Button(description="Cancel", icon="stop", disabled=True)
        self.cancel_button.add_class("wb-cancel")
        self.cache_box = widgets.Checkbox(value=cache, description="use cache", indent=False,
                                          layout=widgets.Layout(width="100px"))
        self.repeats = widgets.BoundedIntText(value=1, min=1, max=50, description="repeats",
                                              layout=widgets.Layout(width="150px"))
        self.status_line = widgets.HTML()
        self.status_line.add_class("wb-status")
        self.grid = widgets.HTML()
        self.grid.add_class("wb-outputs")
        self.summary = widgets.HTML()
        self.summary.add_class("wb-summary")
        self.editors: list[VariantEditor] = []
        self._hide = hide_snapshots_widget()
        self._toolbar = widgets.HBox([self.add_button, self.path, self.save_button, self.load_button])
        self._source_box = widgets.HBox()
        self._runbar = widgets.HBox([self.run_button, self.cancel_button, self.cache_box, self.repeats])
        super().__init__()
        self.add_class("wb-playground")

        self.add_button.on_click(lambda _: self.add_variant())
        self.save_button.on_click(lambda _: self._save_clicked())
        self.load_button.on_click(lambda _: self._load_clicked())
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.mode_toggle.observe(lambda c: setattr(self, "mode", c["new"]), names="value")
        self.k_slider.observe(lambda c: setattr(self, "k", c["new"]), names="value")
        self.expected.observe(lambda _: self._refresh_estimates(), names="value")

        placeholder = experiment is None and dataset is None
        if isinstance(experiment, (str, Path)):
            experiment = load_experiment(experiment)
        if experiment is None:
            if isinstance(dataset, (str, Path)):
                dataset = load_dataset(dataset)
            experiment = default_template(variants, dataset, scorers, target=target)
        else:
            changes = {k_: v for k_, v in (("variants", variants), ("scorers", scorers)) if v is not None}
            if changes:
                experiment = experiment.replace(**changes)
        self.set_experiment(experiment, k=k, mode=mode, placeholder=placeholder)

    # ------------------------------------------------------------------------------------------- state
    def set_experiment(self, experiment: Experiment, *, k: int | None = None, mode: str | None = None,
                       placeholder: bool = False) -> None:
        """Show ``experiment``'s variants (replacing the editors); its dataset, scorers and targets apply.

        ``placeholder``: its dataset is only an empty row for the ad-hoc input, not data to run on."""
        self.template = experiment
        try:
            ds = experiment.load_cases()
        except WorkbenchError as e:
            ds = None
            self._set_status(f"dataset not loaded: {e}", error=True)
        self.dataset: Dataset | None = None if placeholder else ds
        first = ds.cases[0] if ds is not None and len(ds) else None
        self._input_values = {k_: "" if v is None else str(v) for k_, v in (first.vars.items() if first else [])
                              if k_ not in ("id", "case_id", "expected")}
        self.expected.value = "" if first is None or first.expected is None else str(first.expected)
        n = len(self.dataset) if self.dataset is not None else 1
        self.k_slider.max = max(1, n)
        if k is not None:
            self.k_slider.value = max(1, min(k, n))
        self.k = self.k_slider.value
        self.mode_toggle.disabled = self.dataset is None
        new_mode = "input" if self.dataset is None else (mode or self.mode)
        self.mode_toggle.value = new_mode
        self.mode = new_mode
        self._default_target = experiment.targets[0].label
        self._targets = self._target_options()
        temp = self._default_temperature()
        for old in self.editors:
            old.close()
        with self.hold_trait_notifications():
            self.editors = []
            for v in experiment.variants:
                self.editors.append(self._make_editor(VariantFields.from_variant(v, self._default_target), temp))
        self._records_reset()
        self._layout()
        self._refresh_inputs(reset=True)
        self._refresh_estimates()

    def _target_options(self) -> list[str]:
        profiles: dict[str, Any] = {}
        try:
            from ..config import load_config

            profiles.update(load_config().profiles)
        except WorkbenchError:
            from ..config import builtin_profiles

            profiles.update(builtin_profiles())
        if self._profiles is not None:
            profiles.update(self._profiles)
        for name, prov in self.providers.items():
            if getattr(prov, "profile", None) is not None:
                profiles[name] = prov.profile
        extra = [t.label for t in self.template.targets] + [v.target.label for v in self.template.variants if v.target]
        opts = target_options(profiles, extra)
        if len(self.template.targets) > 1:
            opts.insert(0, ALL_TARGETS)
        return opts

    def _default_temperature(self) -> float:
        try:
            return float(self._provider(self.template.targets[0].profile).profile.defaults.get("temperature", 1.0))
        except Exception:
            return 1.0

    def _make_editor(self, fields: VariantFields, temperature: float) -> VariantEditor:
        return VariantEditor(fields, self._targets, default_temperature=temperature, on_change=self._editor_changed,
                             on_duplicate=self.duplicate_variant, on_remove=self.remove_variant)

    def _layout(self) -> None:
        self.cards.children = list(self.editors)
        self._source_box.children = [self.mode_toggle, self.k_slider] if self.dataset is not None else []
        input_box = [self.inputs, self.expected] if self.mode == "input" else []
        self.children = [self._hide, self._toolbar, self.cards, self._source_box, *input_box, self._runbar,
                         self.status_line, self.grid, self.summary]

    # -------------------------------------------------------------------------------------------- editing
    def add_variant(self, variant: Variant | None = None) -> VariantEditor:
        """Add an editor (a fresh variant, or ``variant``) at the right."""
        taken = [e.name.value for e in self.editors]
        if variant is None:
            user = self.editors[-1].user.value if self.editors else "{{ input }}"
            variant = Variant(name=unique_name("variant", taken), user=user)
        elif variant.name in taken:
            variant = variant.with_(name=unique_name(variant.name, taken))
        editor = self._make_editor(VariantFields.from_variant(variant, self._default_target),
                                   self._default_temperature())
        self.editors.append(editor)
        self._after_structure_change()
        return editor

    def duplicate_variant(self, editor: VariantEditor) -> VariantEditor:
        """A copy of ``editor``'s variant, named ``<name>-2``, right after it."""
        fields = copy_fields(editor.fields(), [e.name.value for e in self.editors])
        new = self._make_editor(fields, self._default_temperature())
        new._temp_set = editor._temp_set
        self.editors.insert(self.editors.index(editor) + 1, new)
        self._after_structure_change()
        return new

    def remove_variant(self, editor: VariantEditor | str) -> None:
        if isinstance(editor, str):
            editor = self.editor(editor)
        if len(self.editors) <= 1:
            self._set_status("An experiment needs at least one variant: add another before removing this one.",
                             error=True)
            return
        self.editors.remove(editor)
        editor.close()
        self._after_structure_change()

    def rename_variant(self, old: str, new: str) -> None:
        self.editor(old).name.value = new

    def editor(self, name: str) -> VariantEditor:
        for e in self.editors:
            if e.name.value == name:
                return e
        raise NotFoundError(f"No variant named {name!r}; variants: {', '.join(e.name.value for e in self.editors)}")

    def _after_structure_change(self) -> None:
        self._layout()
        self._refresh_inputs()
        self._refresh_estimates()

    def variants(self) -> list[Variant]:
        """The variants as edited (raises :class:`DataError` naming the field that is wrong)."""
        return [e.fields().to_variant(self._default_target) for e in self.editors]

    def _editor_changed(self, editor: VariantEditor) -> None:
        self._refresh_inputs()
        self._estimate(editor)
        self._check_names()
        self.refresh_static(debounce=1.0)

    # --------------------------------------------------------------------------------------------- inputs
    def _refresh_inputs(self, reset: bool = False) -> None:
        """One text field per template variable (the ad-hoc input); fields are kept while their variable is used.

        ``reset``: drop every field (a new experiment: its first case fills them)."""
        names = variables_of(e.fields() for e in self.editors)
        if not reset and list(self._input_fields) == names:
            return
        for name, w in self._input_fields.items():
            if not reset:
                self._input_values[name] = w.value
        fields = {}
        for name in names:
            w = None if reset else self._input_fields.get(name)
            if w is None:
                w = widgets.Textarea(value=self._input_values.get(name, ""), description=name, rows=2,
                                     layout=widgets.Layout(width="60%"), continuous_update=True)
                w.add_class(f"wb-input-{name}")
                w.observe(self._input_changed, names="value")
            fields[name] = w
        for name, old in self._input_fields.items():
            if fields.get(name) is not old:
                old.close()
        self._input_fields = fields
        self.inputs.children = list(fields.values())

    def _input_changed(self, change: dict) -> None:
        if self.mode == "input":
            self._refresh_estimates()

    def set_input(self, **values: str) -> None:
        """Fill the ad-hoc input fields (``pg.set_input(text="I loved it")``)."""
        for name, value in values.items():
            self._input_values[name] = value
            if name in self._input_fields:
                self._input_fields[name].value = value

    def input_values(self) -> dict[str, str]:
        values = dict(self._input_values)
        values.update({n: w.value for n, w in self._input_fields.items()})
        return {n: values.get(n, "") for n in self._input_fields} or values

    def _source(self) -> CaseSource:
        return CaseSource(self.mode, self.input_values(), self.expected.value, self.dataset, self.k)

    # ------------------------------------------------------------------------------------------ estimates
    def _provider(self, profile: str) -> Any:
        if profile in self.providers:
            return self.providers[profile]
        if profile not in self._provider_cache:
            from ..providers import Provider

            self._provider_cache[profile] = Provider(profile, max_retries=0)
        return self._provider_cache[profile]

    def _refresh_estimates(self) -> None:
        for e in self.editors:
            self._estimate(e)
        self._check_names()

    def _estimate(self, editor: VariantEditor) -> VariantEstimate | None:
        """Recount one editor's tokens and cost (memoized on the variant, target and cases: typing is cheap)."""
        try:
            variant = editor.fields().to_variant(self._default_target)
        except WorkbenchError as e:
            editor.show(None, [str(e)])
            return None
        label = editor.target.value or self._default_target
        target = Target.parse(self.template.targets[0].label if label == ALL_TARGETS else label)
        source = self._source()
        try:
            rows = source.rows()
        except WorkbenchError as e:
            editor.show(None, [str(e)])
            return None
        columns = source.columns()
        key = (variant.model_dump_json(), target.label, repr(rows), tuple(columns or ()))
        est = self._estimate_cache.get(key)
        if est is None:
            try:
                provider = self._provider(target.profile)
            except Exception as e:
                est = VariantEstimate(variant.name, target.label, error=f"profile {target.profile!r}: {e}")
            else:
                est = estimate_variant(variant, target, rows, provider, columns=columns, seed=self.template.seed,
                                       base_dir=self.template.base_dir)
            if len(self._estimate_cache) > 512:
                self._estimate_cache.clear()
            self._estimate_cache[key] = est
        editor.show(est, est.warnings(columns))
        return est

    @property
    def estimates(self) -> dict[str, VariantEstimate]:
        """The latest estimate of each variant, by name."""
        return {e.name.value: e.estimate for e in self.editors if e.estimate is not None}

    def _check_names(self) -> None:
        names = [e.name.value.strip() for e in self.editors]
        for e, n in zip(self.editors, names):
            e.flag_name_clash(names.count(n) > 1)

    # ------------------------------------------------------------------------------------------- traits
    @validate("mode")
    def _valid_mode(self, proposal: dict) -> str:
        mode = proposal["value"]
        if mode not in ("input", "dataset"):
            raise TraitError(f"mode={mode!r}: use 'input' (one ad-hoc input) or 'dataset' (the first k cases)")
        if mode == "dataset" and getattr(self, "dataset", None) is None:
            raise TraitError("mode='dataset' needs a dataset: give the playground an experiment or a dataset")
        return mode

    @validate("k")
    def _valid_k(self, proposal: dict) -> int:
        return max(1, min(int(proposal["value"]), self.k_slider.max))

    @observe("mode")
    def _mode_changed(self, change: dict) -> None:
        if self.mode_toggle.value != change["new"]:
            self.mode_toggle.value = change["new"]
        self._layout()
        self._refresh_estimates()

    @observe("k")
    def _k_changed(self, change: dict) -> None:
        if self.k_slider.value != change["new"]:
            self.k_slider.value = change["new"]
        if self.mode == "dataset":
            self._refresh_estimates()

    # ------------------------------------------------------------------------------------------- running
    @property
    def out_root(self) -> Path:
        if self._out_root is not None:
            return self._out_root
        from ..history import history_root

        return history_root()

    def build_experiment(self) -> Experiment:
        """The experiment the Run button executes now (the chosen cases, the edited variants)."""
        return experiment_for_run(self.template, self.variants(), self._source().cases(), repeats=self.repeats.value)

    def run(self, wait: bool = False):
        """Start a run in the background (returns its :class:`~workbench.harness.RunHandle`, or None if the
        variants are not valid - the status line says why). ``wait=True`` blocks until it ends (papermill)."""
        from ..harness import start

        if self.running:
            return self._handle
        try:
            exp = self.build_experiment()
        except WorkbenchError as e:
            self._set_status(str(e), error=True)
            return None
        self.last_experiment = exp
        self._records_reset()
        self._run_cases = list(exp.load_cases().cases)
        self._run_variants = [v.name for v in exp.variants]
        self._run_scorer = scorer_name(exp.scorers[0]) if exp.scorers else None
        self.error = None
        self.results = None
        self.running = True
        self._set_status(f"running {exp.n_cells()} calls…")
        self._render_grid()
        run_dir = new_run_dir(self.out_root, exp.name)
        self._handle = start(exp, providers=self.providers or None, out=run_dir, cache=self.cache_box.value,
                             on_result=self._on_result)
        self._watcher = threading.Thread(target=self._watch, args=(self._handle,), daemon=True,
                                         name="workbench-playground-watch")
        self._watcher.start()
        if wait:
            self.wait()
        return self._handle

    def cancel(self) -> None:
        """Stop the run: calls in flight finish, the rest are not sent."""
        if self._handle is not None and self.running:
            self._handle.cancel()
            self._set_status("cancelling: waiting for the calls in flight…")

    def wait(self, timeout: float | None = None) -> Results | None:
        """Block until the current run ends; returns its results (None if it failed - see ``error``)."""
        if self._watcher is not None:
            self._watcher.join(timeout)
        self.refresh_static()
        return self.results

    def on_finished(self, callback: Callable[[Results | None], None]) -> None:
        """Call ``callback(results)`` when a run ends (in the run's thread)."""
        self._finished_callbacks.append(callback)

    def _records_reset(self) -> None:
        with self._lock:
            self.records = []
        self.grid.value = ""
        self.summary.value = ""

    def _on_result(self, record: CellResult) -> None:  # the run's thread
        with self._lock:
            self.records.append(record)
        self._render_grid()
        h = self._handle
        if h is not None:
            st = h.state
            self._set_status(f"running: {st.done}/{st.total} calls · {st.errors} errors · {usd(st.spent_usd)}")

    def _record(self, results: Results) -> None:
        """Keep the run in the history (its manifest, the index): the playground's runs are runs like any other."""
        from ..runs.finalize import record_run

        try:
            record_run(results, source="playground", reports_dir=self.out_root)
        except Exception as e:  # the history is provenance: never let it hide the run's outputs
            self._set_status(f"run kept in {results.run_dir}, but not recorded in the history: {e}", error=True)

    def _render_grid(self) -> None:
        with self._lock:
            records = list(self.records)
        self.grid.value = grid_html(records, self._run_cases, self._run_variants, self._run_scorer)

    def _watch(self, handle) -> None:
        results, error = None, None
        try:
            results = handle.wait()
        except BaseException as e:  # shown in the status line; the widget stays usable
            error = e
        self._finish(handle, results, error)

    def _finish(self, handle, results: Results | None, error: BaseException | None) -> None:
        self.results, self.error = results, error
        if results is not None:
            with self._lock:
                self.records = list(results.records)
            self._render_grid()
            st = handle.state
            stopped = results.status.startswith("stopped")
            head = ("cancelled" if "cancel" in results.status else results.status) if stopped else "done"
            self._set_status(f"{head}: {len(results)}/{st.total} calls · {results.n_errors} errors · "
                             f"{st.filtered} filtered · {st.cache_hits} cached · {usd(st.spent_usd)} spent")
            self.summary.value = summary_html(results, results.scorers[0]) if results.scorers else ""
            self._record(results)
        else:
            self._set_status(f"run failed: {error}", error=True)
        self.running = False
        for cb in self._finished_callbacks:
            try:
                cb(results)
            except Exception as e:  # a user callback must not leave the widget running
                self._set_status(f"on_finished callback failed: {e}", error=True)
        self.refresh_static()

    @property
    def handle(self):
        return self._handle

    @observe("running")
    def _running_changed(self, change: dict) -> None:
        self.run_button.disabled = change["new"]
        self.cancel_button.disabled = not change["new"]

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status = text
        colour = "#b00" if error else "#333"
        self.status_line.value = f'<div style="font:12px system-ui,sans-serif;color:{colour}">{esc(text)}</div>'

    # --------------------------------------------------------------------------------------- save / load
    def experiment(self, path: str | Path = "experiment.yaml") -> Experiment:
        """The experiment spec :meth:`save` writes: the template's dataset, scorers and settings, these variants."""
        return experiment_for_save(self.template, self.variants(), path)

    def save(self, path: str | Path | None = None) -> Path:
        """Write the variants into an experiment spec (YAML) that ``workbench eval`` / ``load_experiment`` run."""
        path = Path(path or self.path.value or f"{self.template.name}.yaml")
        exp = self.experiment(path)
        written = exp.save(path)
        self.path.value = str(path)
        self._set_status(f"saved {len(exp.variants)} variants to {written}")
        return written

    def load(self, path: str | Path | None = None) -> Experiment:
        """Replace the variants (and dataset, scorers, targets) with those of an experiment spec."""
        path = Path(path or self.path.value)
        exp = load_experiment(path)
        self.path.value = str(path)
        self.set_experiment(exp)
        self._set_status(f"loaded {len(exp.variants)} variants from {path}")
        self.refresh_static()
        return exp

    def _save_clicked(self) -> None:
        try:
            self.save()
        except (WorkbenchError, OSError) as e:
            self._set_status(f"not saved: {e}", error=True)

    def _load_clicked(self) -> None:
        try:
            self.load()
        except (WorkbenchError, OSError) as e:
            self._set_status(f"not loaded: {e}", error=True)

    # ------------------------------------------------------------------------------------------ snapshot
    def static_html(self) -> str:
        rows = []
        for e in self.editors:
            f = e.fields()
            params = []
            if f.temperature is not None:
                params.append(f"temperature {f.temperature:g}")
            if f.max_tokens:
                params.append(f"max tokens {f.max_tokens}")
            rows.append([f.name, f.target or self._default_target, clip(f.system, 300), clip(f.user, 300),
                         ", ".join(params), f.response_format, e.estimate.text() if e.estimate else ""])
        parts = [f'<div style="font:13px system-ui,sans-serif"><b>Playground</b> · {esc(self.template.name)} · '
                 f'{len(self.editors)} variants</div>',
                 html_table(["variant", "target", "system", "user", "params", "format", "estimate"], rows)]
        if self.grid.value:
            parts.append(f'<div style="font:12px system-ui,sans-serif;margin-top:6px">{esc(self.status)}</div>')
            parts.append(self.grid.value)
        if self.summary.value:
            parts.append(self.summary.value)
        return "".join(parts)

    def static_text(self) -> str:
        names = ", ".join(e.name.value for e in self.editors)
        return f"<Playground {self.template.name!r}: variants {names}; {self.status}>"
