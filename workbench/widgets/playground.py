"""The variant playground: prompt variants side by side, live estimates, streamed runs, chats, prompt history.

::

    from workbench.widgets import Playground
    pg = Playground(load_example())          # or Playground(variants=[...], dataset="cases.csv")
    pg                                       # edit, Run, Cancel; pg.results afterwards
    pg.chat("And why?")                      # every variant answers, side by side (Stop, Regenerate)
    pg.save("my-experiment.yaml")            # the batch run executes exactly these variants

Thin over the core: cards hold :class:`~workbench.widgets.editing.VariantFields`; estimates come from
:func:`~workbench.widgets.editing.estimate_variant`; Run builds an experiment with
:func:`~workbench.widgets.editing.experiment_for_run` and hands it to :func:`workbench.harness.start` with
streaming on (``on_stream``): every card and grid cell shows its answer as it arrives. A chat is a
:class:`~workbench.conversation.Conversation`; every run's variants go into a
:class:`~workbench.widgets.history.PromptHistory`.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from traitlets import Bool, Int, TraitError, Unicode, observe, validate

from ..conversation import Conversation
from ..datasets import Dataset, load_dataset
from ..errors import DataError, NotFoundError, WorkbenchError
from ..experiment import Experiment, load_experiment
from ..formatting import plural, usd
from ..records import CellResult
from ..results import Results
from ..scorers.registry import scorer_name
from ..variants import Target, Variant
from .cells import (
    CellKey,
    answer_html,
    cell_body_html,
    cell_detail_html,
    cell_statuses,
    flaky_keys,
    grid_html,
    live_cell_html,
    record_meta,
    summary_html,
    thread_html,
)
from .editing import (
    ALL_TARGETS,
    CaseSource,
    VariantEstimate,
    VariantFields,
    case_label,
    copy_fields,
    dataset_copy,
    default_template,
    estimate_variant,
    experiment_for_run,
    experiment_for_save,
    new_run_dir,
    request_params,
    target_options,
    unique_name,
    variables_of,
)
from .fallback import StaticFallback, clip, esc, hide_snapshots_widget, html_table
from .history import PromptHistory
from .output_grid import GRID_CSS, OutputGrid
from .variant_card import CARD_CSS, CARDS_COLUMNS, VariantEditor

RENDER_EVERY_S = 0.12  # streamed text reaches the browser at most this often per cell (a comm message per token
# would flood the kernel's socket; people read no faster)
STALE_NOTE = ("The prompts or inputs changed after this run: these outputs are from the previous version. "
              "Run again to refresh them.")


class _Throttle:
    """Call ``fn`` at most once per ``interval`` seconds, soon after :meth:`poke` (from any thread)."""

    def __init__(self, fn: Callable[[], None], interval: float = RENDER_EVERY_S):
        self.fn, self.interval = fn, interval
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def poke(self) -> None:
        with self._lock:
            if self._timer is None:
                self._timer = threading.Timer(self.interval, self._fire)
                self._timer.daemon = True
                self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
        try:
            self.fn()
        except Exception:  # a display refresh must never break a run
            pass

    def flush(self) -> None:
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self.fn()


class Playground(StaticFallback, widgets.VBox):
    """Prompt variants side by side on one ad-hoc input or the first ``k`` cases of a dataset.

    ``experiment``: an :class:`Experiment` (or a YAML path) to start from - its variants, dataset, scorers and
    targets. Or give ``variants``, ``dataset`` and ``scorers``. ``providers`` maps profile names to providers
    (e.g. ``{"fake": FakeBackend().provider("openai")}``); others come from the configuration. ``out``: the
    folder under which each run gets its own subfolder (default: the workbench home). ``stream``: show answers
    as they arrive (default); False waits for whole answers.
    """

    running = Bool(False, help="a run is going on")
    chatting = Bool(False, help="the variants are answering a chat message")
    status = Unicode("", help="the status line (plain text)")
    mode = Unicode("input", help="'input' (one ad-hoc input) or 'dataset' (the first k cases)")
    k = Int(3, help="how many dataset cases a run uses in 'dataset' mode")
    stale = Bool(False, help="the prompts or inputs changed since the outputs shown were made")

    def __init__(self, experiment: Experiment | str | Path | None = None, *, variants: Sequence[Variant] | None = None,
                 dataset: Any = None, scorers: Sequence[Any] | None = None, providers: Mapping[str, Any] | None = None,
                 k: int = 3, mode: str | None = None, cache: bool = True, out: str | Path | None = None,
                 profiles: Mapping[str, Any] | None = None, target: str = "local", stream: bool = True):
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
        self.stream = stream
        self._run_cases: list[Any] = []
        self._run_variants: list[str] = []
        self._run_targets: list[str] = []
        self._run_scorer: str | None = None
        self._run_note = ""
        self._live: dict[CellKey, str] = {}  # streamed text of the cells still answering
        self._dirty: set[CellKey] = set()
        self._card_cell: dict[str, CellKey] = {}  # the cell each card shows: its latest
        self._render = _Throttle(self._render_live)
        self._default_target = target
        self._targets: list[str] = []
        self._history: PromptHistory | None = None
        self._ran: tuple | None = None  # what the outputs on screen were made from (see _shown)
        self.conversation: Conversation | None = None
        self._chat_stop = threading.Event()
        self._chat_threads: list[threading.Thread] = []
        self._chat_watcher: threading.Thread | None = None
        self._chat_render = _Throttle(self._render_chat)

        # controls
        self.add_button = widgets.Button(description="Add variant", icon="plus")
        self.path = widgets.Text(value="", placeholder="experiment.yaml (next to the notebook)", description="spec",
                                 layout=widgets.Layout(width="340px", max_width="100%"))
        self.save_button = widgets.Button(description="Save", icon="save",
                                          tooltip="save the variants as an experiment spec")
        self.load_button = widgets.Button(description="Load", icon="folder-open", tooltip="load an experiment spec")
        self.history_button = widgets.ToggleButton(description="History", icon="history",
                                                   tooltip="earlier versions of the variants, from past runs")
        self.history_button.add_class("wb-history-toggle")
        self.cards = widgets.GridBox(layout=widgets.Layout(width="100%", padding="4px 0", grid_gap="8px",
                                                           grid_template_columns=CARDS_COLUMNS))
        self.cards.add_class("wb-cards")
        self.mode_toggle = widgets.ToggleButtons(options=[("one input", "input"), ("first k cases", "dataset")],
                                                 value="input", style={"button_width": "110px"})
        self.k_slider = widgets.IntSlider(value=k, min=1, max=max(1, k), description="k", continuous_update=False)
        self.inputs = widgets.VBox(layout=widgets.Layout(width="100%"))
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
        self.chat_button = widgets.ToggleButton(description="Chat", icon="comments",
                                                tooltip="continue the conversation with every variant at once")
        self.chat_button.add_class("wb-chat-toggle")
        self.status_line = widgets.HTML()
        self.status_line.add_class("wb-status")
        self.grid = OutputGrid(self._detail_html)
        self.grid.add_class("wb-outputs")
        self.summary = widgets.HTML()
        self.summary.add_class("wb-summary")
        self.editors: list[VariantEditor] = []
        self._build_chat_bar()
        self._build_history_panel()
        self._hide = hide_snapshots_widget()
        self._style = widgets.HTML(f"<style>{CARD_CSS}{GRID_CSS}</style>",
                                   layout=widgets.Layout(height="0px", margin="0", overflow="hidden"))
        self._toolbar = widgets.HBox([self.add_button, self.path, self.save_button, self.load_button,
                                      self.history_button], layout=widgets.Layout(flex_flow="row wrap"))
        self._source_box = widgets.HBox()
        self._runbar = widgets.HBox([self.run_button, self.cancel_button, self.cache_box, self.repeats,
                                     self.chat_button], layout=widgets.Layout(flex_flow="row wrap"))
        super().__init__(layout=widgets.Layout(width="100%", max_width="100%"))
        self.add_class("wb-playground")

        self.add_button.on_click(lambda _: self.add_variant())
        self.save_button.on_click(lambda _: self._save_clicked())
        self.load_button.on_click(lambda _: self._load_clicked())
        self.run_button.on_click(lambda _: self.run())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.chat_button.observe(lambda c: self._show_chat(c["new"]), names="value")
        self.history_button.observe(lambda _: self._layout(), names="value")
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
        self._history = None
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
        self.conversation = None
        self._ran = None
        self._records_reset()
        self._layout()
        self._refresh_inputs(reset=True)
        self._refresh_estimates()
        self._refresh_history()

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
        editor = VariantEditor(fields, self._targets, default_temperature=temperature,
                               on_change=self._editor_changed, on_duplicate=self.duplicate_variant,
                               on_remove=self.remove_variant)
        editor.show_chat(self.chat_button.value)
        return editor

    def _layout(self) -> None:
        self.cards.children = list(self.editors)
        self._source_box.children = [self.mode_toggle, self.k_slider] if self.dataset is not None else []
        input_box = [self.inputs, self.expected] if self.mode == "input" else []
        chat = [self.chat_bar] if self.chat_button.value else []
        history = [self.history_panel] if self.history_button.value else []
        self.children = [self._hide, self._style, self._toolbar, *history, self.cards, self._source_box, *input_box,
                         self._runbar, *chat, self.status_line, self.grid, self.summary]

    # -------------------------------------------------------------------------------------------- editing
    def add_variant(self, variant: Variant | None = None) -> VariantEditor:
        """Add an editor (a fresh variant, or ``variant``) at the end."""
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
        new = self._make_editor(fields, editor.temperature.value)
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
        self._mark_stale()

    def variants(self) -> list[Variant]:
        """The variants as edited (raises :class:`DataError` naming the field that is wrong)."""
        return [e.fields().to_variant(self._default_target) for e in self.editors]

    def _editor_changed(self, editor: VariantEditor) -> None:
        self._refresh_inputs()
        self._estimate(editor)
        self._check_names()
        self._mark_stale()
        self.refresh_static(debounce=1.0)

    def _shown(self) -> tuple:
        """What the outputs on screen depend on: the cards' fields, the inputs, the cases chosen."""
        fields = tuple(repr({k: v for k, v in e.fields().__dict__.items() if k != "base"}) for e in self.editors)
        return fields, tuple(sorted(self.input_values().items())), self.expected.value, self.mode, self.k

    def _mark_stale(self) -> None:
        """After an edit, outputs on screen no longer answer the prompts on screen: say so (and stop saying so
        when the edit is undone)."""
        if self._ran is not None:
            self.stale = self._shown() != self._ran

    @observe("stale")
    def _stale_changed(self, change: dict) -> None:
        self.grid.set_stale(change["new"], STALE_NOTE)

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
                                     layout=widgets.Layout(width="60%", min_width="200px"), continuous_update=True)
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
            self._mark_stale()

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

    def _target_of(self, editor: VariantEditor) -> Target:
        label = editor.target.value or self._default_target
        return Target.parse(self.template.targets[0].label if label == ALL_TARGETS else label)

    def _estimate(self, editor: VariantEditor) -> VariantEstimate | None:
        """Recount one editor's tokens and cost (memoized on the variant, target and cases: typing is cheap)."""
        try:
            variant = editor.fields().to_variant(self._default_target)
        except WorkbenchError as e:
            editor.show(None, [str(e)])
            return None
        target = self._target_of(editor)
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
        self._note_model(editor, target, est)
        return est

    def _note_model(self, editor: VariantEditor, target: Target, est: VariantEstimate) -> None:
        try:
            info = self._provider(target.profile).model_info(target.model) if est.model else None
        except Exception:
            info = None
        editor.set_model(bool(info is not None and info.is_reasoning))

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
        self._mark_stale()

    @observe("k")
    def _k_changed(self, change: dict) -> None:
        if self.k_slider.value != change["new"]:
            self.k_slider.value = change["new"]
        if self.mode == "dataset":
            self._refresh_estimates()
            self._mark_stale()

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

    def _run_providers(self, exp: Experiment) -> dict[str, Any]:
        """A provider for every profile the run uses, each checked before anything is sent (a missing key or
        endpoint is one clear error now, not a failed call per cell later).

        The embedded model answers one call at a time, but its streams take turns: a streamed run lets every
        card of the local model stream at once instead of queueing them."""
        out: dict[str, Any] = {}
        for profile in {t.profile for v in exp.variants for t in exp.targets_for(v)}:
            provider = self._provider(profile)
            try:
                provider.client  # noqa: B018 - builds the client: settings are checked here, offline
            except WorkbenchError as e:
                raise type(e)(f"Target profile {profile!r}: {e}") from None
            if self.stream and provider.profile.backend == "local" and profile not in self.providers:
                from ..providers import Provider

                streams = max(1, min(8, exp.n_cells()))
                profile_obj = dataclasses.replace(provider.profile, max_concurrency=streams)
                provider = Provider(profile_obj, max_retries=0)
                if streams > 1:
                    self._run_note = (f" · the local model took turns between {plural(streams, 'stream')}, so "
                                      f"each call's time includes the others'")
            out[profile] = provider
        return out

    def run(self, wait: bool = False):
        """Start a run in the background (returns its :class:`~workbench.harness.RunHandle`, or None if the
        variants are not valid - the status line says why). ``wait=True`` blocks until it ends (papermill)."""
        from ..harness import start

        if self.running:
            return self._handle
        self._run_note = ""
        try:
            exp = self.build_experiment()
            providers = self._run_providers(exp)
        except WorkbenchError as e:
            self.error = e
            self._set_status(str(e), error=True)
            return None
        self.last_experiment = exp
        self._records_reset()
        self._run_cases = list(exp.load_cases().cases)
        self._run_variants = [v.name for v in exp.variants]
        self._run_targets = list(dict.fromkeys(t.label for v in exp.variants for t in exp.targets_for(v)))
        self._run_scorer = scorer_name(exp.scorers[0]) if exp.scorers else None
        self.error = None
        self.results = None
        self._ran = self._shown()
        self.stale = False
        self.running = True
        self._set_status(f"running {plural(exp.n_cells(), 'call')}…")
        self._reset_grid()
        run_dir = new_run_dir(self.out_root, exp.name)
        self._record_history(exp.variants, run_dir.name)
        self._handle = start(exp, providers=providers, out=run_dir, cache=self.cache_box.value,
                             on_result=self._on_result, on_stream=self._on_stream if self.stream else None)
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
            self._live, self._dirty, self._card_cell = {}, set(), {}
        self.grid.reset([], [])
        self.summary.value = ""
        self.stale = False
        for e in self.editors:
            e.show_output("")

    # -- the grid and the cards during a run --------------------------------------------------------------
    def _rows(self) -> list[tuple[str, str, str]]:
        rows = []
        for case in self._run_cases:
            label = f"<b>{esc(case.id)}</b>"
            label += f'<div style="color:#555">{esc(case_label(case))}</div>'
            if case.expected not in (None, ""):
                label += f'<div style="color:#555">expected: <b>{esc(case.expected)}</b></div>'
            for target in self._run_targets:
                tlabel = f'<div style="color:#888">{esc(target)}</div>' if len(self._run_targets) > 1 else ""
                rows.append((str(case.id), target, label + tlabel))
        return rows

    def _reset_grid(self) -> None:
        self.grid.reset(self._rows(), self._run_variants)
        for key in self.grid.cells:
            self.grid.show(key, live_cell_html("waiting"), "waiting")
        for e in self.editors:
            if e.name.value in self._run_variants:
                e.show_output(answer_html("", live_cell_html("waiting")))

    def _on_stream(self, planned: Any, text: str) -> None:  # the run's thread, once per piece of text
        key = (str(planned.cell.case.id), planned.cell.variant.name, planned.target.label)
        with self._lock:
            self._live[key] = text
            self._dirty.add(key)
        self._render.poke()

    def _render_live(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            live = {k: self._live[k] for k in dirty if k in self._live}
        for key, text in live.items():
            self.grid.show(key, live_cell_html("streaming", text), "streaming")
            self._show_card(key, live_cell_html("streaming", text), "")

    def _show_card(self, key: CellKey, body_html: str, meta: str) -> None:
        case_id, variant, target = key
        shown = self._card_cell.get(variant)
        if shown is not None and shown != key and shown in self._live and key not in self._live:
            return  # the card follows a cell still streaming; a finished one shows in the grid
        self._card_cell[variant] = key
        label = ""
        if len(self._run_cases) > 1 or len(self._run_targets) > 1:
            label = f"case {case_id}" + (f" · {target}" if len(self._run_targets) > 1 else "")
        for e in self.editors:
            if e.name.value == variant:
                e.show_output(answer_html(label, body_html, meta))

    def _on_result(self, record: CellResult) -> None:  # the run's thread
        key = (record.case_id, record.variant, record.target)
        self._render.flush()  # text that came before this answer is shown before it: the screen keeps the order
        with self._lock:
            self.records.append(record)
            self._live.pop(key, None)
            self._dirty.discard(key)
            same = [r for r in self.records if (r.case_id, r.variant, r.target) == key]
        st = cell_statuses(same, self._run_scorer)[key]
        self.grid.show(key, cell_body_html(st), st.kind)
        self._show_card(key, esc(clip(record.output if record.outcome != "error" else
                                      f"[{record.error_type}] {record.error_message}", 2000)), record_meta(record))
        h = self._handle
        if h is not None:
            st_ = h.state
            self._set_status(f"running: {st_.done}/{st_.total} calls · {plural(st_.errors, 'error')} · "
                             f"{usd(st_.spent_usd)}")

    def _record(self, results: Results) -> None:
        """Keep the run in the history (its manifest, the index): the playground's runs are runs like any other."""
        from ..runs.finalize import record_run

        try:
            record_run(results, source="playground", reports_dir=self.out_root)
        except Exception as e:  # the history is provenance: never let it hide the run's outputs
            self._set_status(f"run kept in {results.run_dir}, but not recorded in the history: {e}", error=True)

    def _detail_html(self, key: CellKey) -> str:
        with self._lock:
            recs = [r for r in self.records if (r.case_id, r.variant, r.target) == key]
            live = self._live.get(key)
        if recs:
            st = cell_statuses(recs, self._run_scorer)[key]
            return cell_detail_html(st)
        if live is not None:
            return f"<b>{esc(key[0])}</b> × <b>{esc(key[1])}</b>: still answering…<pre>{esc(live)}</pre>"
        return f"<b>{esc(key[0])}</b> × <b>{esc(key[1])}</b>: no answer yet."

    def grid_html(self) -> str:
        """The output grid as a static HTML table (what an exported notebook shows)."""
        with self._lock:
            records = list(self.records)
        return grid_html(records, self._run_cases, self._run_variants, self._run_scorer,
                         pending="waiting…" if self.running else "not run")

    def _watch(self, handle) -> None:
        results, error = None, None
        try:
            results = handle.wait()
        except BaseException as e:  # shown in the status line; the widget stays usable
            error = e
        self._finish(handle, results, error)

    def _finish(self, handle, results: Results | None, error: BaseException | None) -> None:
        self._render.flush()
        self.results, self.error = results, error
        if results is not None:
            with self._lock:
                self.records = list(results.records)
                self._live = {}
            scorer = self._run_scorer
            statuses = cell_statuses(self.records, scorer, flaky_keys(results, scorer))
            for key in self.grid.cells:
                st = statuses.get(key)
                if st is None:
                    self.grid.show(key, live_cell_html("not run"), "not-run")
                else:
                    self.grid.show(key, cell_body_html(st), st.kind)
            st = handle.state
            stopped = results.status.startswith("stopped")
            head = ("cancelled" if "cancel" in results.status else results.status) if stopped else "done"
            self._set_status(f"{head}: {len(results)}/{st.total} calls · {plural(results.n_errors, 'error')} · "
                             f"{st.filtered} filtered · {st.cache_hits} cached · {usd(st.spent_usd)} spent"
                             + self._run_note)
            self.summary.value = summary_html(results, results.scorers[0]) if results.scorers else ""
            self._record(results)
            for e in self.editors:
                if e.name.value in self._run_variants and e.name.value not in self._card_cell:
                    e.show_output(answer_html("", live_cell_html("not run")))
        else:
            self._set_status(f"run failed: {error}", error=True)
            for key in self.grid.cells:
                self.grid.show(key, live_cell_html("not run"), "not-run")
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

    @observe("running", "chatting")
    def _busy_changed(self, change: dict) -> None:
        busy = self.running or self.chatting
        self.run_button.disabled = busy
        self.cancel_button.disabled = not self.running
        self.chat_send.disabled = busy
        self.chat_regenerate.disabled = busy or self.conversation is None or not self.conversation.exchanges
        self.chat_stop.disabled = not self.chatting

    def _set_status(self, text: str, error: bool = False) -> None:
        self.status = text
        colour = "#b00" if error else "#333"
        self.status_line.value = f'<div style="font:12px system-ui,sans-serif;color:{colour}">{esc(text)}</div>'

    # ---------------------------------------------------------------------------------------------- chat
    def _build_chat_bar(self) -> None:
        self.chat_input = widgets.Textarea(placeholder="a message to every variant (Send: every one answers it)",
                                           rows=2, layout=widgets.Layout(width="100%"))
        self.chat_input.add_class("wb-chat-input")
        self.chat_send = widgets.Button(description="Send", icon="paper-plane", button_style="primary")
        self.chat_send.add_class("wb-chat-send")
        self.chat_regenerate = widgets.Button(description="Regenerate", icon="redo", disabled=True,
                                              tooltip="ask the last message again")
        self.chat_regenerate.add_class("wb-chat-regenerate")
        self.chat_stop = widgets.Button(description="Stop", icon="stop", disabled=True,
                                        tooltip="stop the answers; what came so far is kept")
        self.chat_stop.add_class("wb-chat-stop")
        self.chat_clear = widgets.Button(description="New chat", icon="eraser", tooltip="start the conversation over")
        self.case_path = widgets.Text(value="conversations.jsonl", description="save to",
                                      layout=widgets.Layout(width="300px", max_width="100%"))
        self.case_from = widgets.Dropdown(description="as in", options=[], layout=widgets.Layout(width="220px"),
                                          tooltip="whose side of the conversation the case keeps")
        self.case_save = widgets.Button(description="Save as case", icon="save",
                                        tooltip="append this conversation to a dataset (JSON lines)")
        self.case_save.add_class("wb-chat-save")
        self.chat_send.on_click(lambda _: self.chat())
        self.chat_regenerate.on_click(lambda _: self.regenerate())
        self.chat_stop.on_click(lambda _: self.stop_chat())
        self.chat_clear.on_click(lambda _: self.new_chat())
        self.case_save.on_click(lambda _: self._save_case_clicked())
        buttons = widgets.HBox([self.chat_send, self.chat_regenerate, self.chat_stop, self.chat_clear],
                               layout=widgets.Layout(flex_flow="row wrap"))
        saving = widgets.HBox([self.case_path, self.case_from, self.case_save],
                              layout=widgets.Layout(flex_flow="row wrap"))
        self.chat_bar = widgets.VBox([self.chat_input, buttons, saving], layout=widgets.Layout(width="100%"))
        self.chat_bar.add_class("wb-chat")

    def _show_chat(self, on: bool) -> None:
        for e in self.editors:
            e.show_chat(on)
        self._layout()
        self._render_chat()

    def _new_conversation(self) -> Conversation:
        """Each variant's prefix (system, few-shot turns), continuing from the last run on the ad-hoc input."""
        variants = self.variants()
        values = self._source().rows()[0] if self.mode == "input" else dict(self._source().cases()[0].vars)
        prefixes, opening = {}, {}
        for v in variants:
            messages = v.render(values, base_dir=self.template.base_dir)
            prefixes[v.name] = messages[:-1]
        if self.results is not None and len(self._run_cases) == 1:
            for r in self.records:
                if r.outcome in ("ok", "length") and r.output and r.repeat == 0 and r.variant in prefixes:
                    user = r.messages[-1].get("content") if r.messages else None
                    if isinstance(user, str):
                        opening[r.variant] = (user, r.output)
        return Conversation(prefixes, opening)

    def chat(self, message: str | None = None, wait: bool = False) -> Conversation | None:
        """Send ``message`` (default: the chat box's text) to every variant; they answer side by side, streamed.
        Returns the conversation (None if it could not be sent: the status line says why)."""
        text = self.chat_input.value if message is None else message
        if not self.chat_button.value:
            self.chat_button.value = True
        try:
            if self.conversation is None:
                self.conversation = self._new_conversation()
            self.conversation.ask(text)
        except WorkbenchError as e:
            self._set_status(f"not sent: {e}", error=True)
            return None
        self.chat_input.value = ""
        self._start_replies()
        if wait:
            self.wait_chat()
        return self.conversation

    def regenerate(self, wait: bool = False) -> None:
        """Ask the last message again (new answers replace the last ones)."""
        if self.conversation is None or self.chatting:
            return
        try:
            self.conversation.regenerate()
        except WorkbenchError as e:
            self._set_status(str(e), error=True)
            return
        self._start_replies()
        if wait:
            self.wait_chat()

    def stop_chat(self) -> None:
        """Stop every answer in progress; what came so far stays in the conversation."""
        if self.chatting:
            self._chat_stop.set()
            self._set_status("stopping the answers…")

    def new_chat(self) -> None:
        self.stop_chat()
        self.wait_chat()
        self.conversation = None
        self._render_chat()
        self._busy_changed({})

    def wait_chat(self, timeout: float | None = None) -> None:
        """Block until every variant has answered (or stopped) the last message."""
        for t in [*self._chat_threads, *([self._chat_watcher] if self._chat_watcher else [])]:
            t.join(timeout)

    def _start_replies(self) -> None:
        conv = self.conversation
        assert conv is not None
        self._chat_stop.clear()
        self.chatting = True
        if list(self.case_from.options) != conv.variants:
            self.case_from.options = conv.variants
            self.case_from.value = conv.variants[0]
        by_name = {e.name.value: e for e in self.editors}
        variants = {v.name: v for v in self.variants()}
        self._set_status(f"chat: {plural(len(conv.variants), 'variant')} answering…")
        self._chat_threads = []
        for name in conv.variants:
            editor = by_name.get(name)
            if editor is None or name not in variants:
                conv.reply(name).fail("this variant was removed or renamed: start a new chat")
                continue
            t = threading.Thread(target=self._reply, args=(conv, name, variants[name], self._target_of(editor)),
                                 daemon=True, name=f"workbench-chat-{name}")
            self._chat_threads.append(t)
        self._render_chat()
        for t in self._chat_threads:
            t.start()
        self._chat_watcher = threading.Thread(target=self._chat_watch, args=(list(self._chat_threads),), daemon=True,
                                              name="workbench-chat-watch")
        self._chat_watcher.start()

    def _reply(self, conv: Conversation, name: str, variant: Variant, target: Target) -> None:
        """One variant's answer to the last message, streamed (its own thread; the local model takes turns)."""
        reply = conv.reply(name)
        try:
            provider = self._provider(target.profile)
            req = provider.prepare(conv.messages_for(name), target.model, warn=False,
                                   **request_params(variant, self.template.seed))
            with provider.stream(req) as stream:
                for _ in stream:
                    if self._chat_stop.is_set():
                        break
                    reply.stream(stream.text)
                    self._chat_render.poke()
            reply.finish(stream.completion, stopped=self._chat_stop.is_set())
        except Exception as e:  # shown in the card; the other variants go on
            reply.fail(f"{type(e).__name__}: {e}")
        self._chat_render.poke()

    def _chat_watch(self, threads: list[threading.Thread]) -> None:
        for t in threads:
            t.join()
        self._chat_render.flush()
        conv = self.conversation
        if conv is not None and conv.exchanges:
            replies = conv.exchanges[-1].replies.values()
            spent = 0.0
            for r in replies:
                if r.completion is not None:
                    spent += self._reply_cost(r.completion) or 0.0
            states = [r.state for r in replies]
            self._set_status(f"chat: {states.count('done')} answered, {states.count('stopped')} stopped, "
                             f"{plural(states.count('error'), 'error')} · {usd(spent)}")
        self.chatting = False
        self.refresh_static()

    def _reply_cost(self, completion: Any) -> float | None:
        from ..costs import actual_cost

        try:
            info = self._provider(self._default_target.partition(":")[0]).model_info(completion.deployment)
            return float(actual_cost(completion.usage, info).usd)
        except Exception:
            return None

    def _render_chat(self) -> None:
        conv = self.conversation
        for e in self.editors:
            if conv is None:
                e.show_thread(thread_html(Conversation({e.name.value: []}), e.name.value))
            elif e.name.value in conv.prefixes:
                e.show_thread(thread_html(conv, e.name.value))
            else:
                e.show_thread('<div class="wb-meta">Not in this chat (added after it began): New chat.</div>')

    def save_case(self, path: str | Path | None = None, variant: str | None = None, case_id: str | None = None) -> Path:
        """Append the conversation to a JSON-lines dataset as one case (``conversation`` column): a batch run
        asks its last message again of every variant. ``variant``: whose side of it to keep (default: the first)."""
        conv = self.conversation
        if conv is None or not conv.exchanges:
            raise DataError("No conversation to save: send a message first.")
        path = Path(path or self.case_path.value or "conversations.jsonl")
        if path.exists() and path.suffix.lower() not in (".jsonl", ".ndjson"):
            raise DataError(f"{path}: a conversation is saved as a JSON-lines file (.jsonl); choose such a file.")
        taken = set()
        if path.is_file():
            taken = {json.loads(line).get("id") for line in path.read_text("utf-8").splitlines() if line.strip()}
        n = len(taken) + 1
        while f"chat-{n}" in taken:
            n += 1
        row = conv.to_case(variant or self.case_from.value or conv.variants[0], case_id or f"chat-{n}",
                           expected=self.expected.value or None)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._set_status(f"saved case {row['id']} to {path.resolve()}")
        return path

    def _save_case_clicked(self) -> None:
        try:
            self.save_case()
        except (WorkbenchError, OSError) as e:
            self._set_status(f"not saved: {e}", error=True)

    # ------------------------------------------------------------------------------------------- history
    def _build_history_panel(self) -> None:
        self.history_variant = widgets.Dropdown(description="variant", options=[], layout=widgets.Layout(width="260px"))
        self.history_version = widgets.Dropdown(description="version", options=[],
                                                layout=widgets.Layout(width="360px", max_width="100%"))
        self.history_diff = widgets.HTML()
        self.history_diff.add_class("wb-history-diff")
        self.restore_button = widgets.Button(description="Restore", icon="undo",
                                             tooltip="put this version back into its card")
        self.restore_button.add_class("wb-restore")
        self.history_variant.observe(lambda _: self._history_versions(), names="value")
        self.history_version.observe(lambda _: self._history_show(), names="value")
        self.restore_button.on_click(lambda _: self._restore_clicked())
        self.history_panel = widgets.VBox([
            widgets.HBox([self.history_variant, self.history_version, self.restore_button],
                         layout=widgets.Layout(flex_flow="row wrap")), self.history_diff],
            layout=widgets.Layout(width="100%", border="1px solid #ddd", padding="4px"))
        self.history_panel.add_class("wb-history")

    @property
    def history(self) -> PromptHistory:
        """Every version of the variants this playground (and earlier ones on this experiment) ran."""
        if self._history is None:
            # beside the experiment's runs in the history (a file: never taken for a run folder)
            self._history = PromptHistory(self.out_root / self.template.name / "prompt-history.jsonl")
        return self._history

    def _record_history(self, variants: Sequence[Variant], run: str) -> None:
        try:
            self.history.record(variants, run=run)
        except (OSError, WorkbenchError) as e:  # the history is a convenience: it must not stop a run
            self._set_status(f"prompt history not saved: {e}", error=True)
        self._refresh_history()

    def _refresh_history(self) -> None:
        try:
            names = self.history.names
        except (OSError, WorkbenchError, ValueError):
            names = []
        current = self.history_variant.value
        self.history_variant.options = names
        if names:
            self.history_variant.value = current if current in names else names[0]
        self._history_versions()

    def _history_versions(self) -> None:
        name = self.history_variant.value
        versions = self.history.versions(name) if name else []
        self.history_version.options = [(v.label(), v.version) for v in reversed(versions)]
        if versions:
            self.history_version.value = versions[-1].version
        self._history_show()

    def _history_show(self) -> None:
        name, version = self.history_variant.value, self.history_version.value
        if not name or not version:
            self.history_diff.value = '<div class="wb-meta">No runs yet: every run keeps the variants it ran.</div>'
            return
        try:
            now = self.editor(name).fields().to_variant(self._default_target)
            diff = self.history.diff(name, version, now)
            title = f"v{version} → the card now"
        except WorkbenchError:
            diff = self.history.diff(name, version)
            title = f"v{version - 1} → v{version}" if version > 1 else f"v{version}"
        self.history_diff.value = _diff_html(diff, title)

    def restore(self, name: str, version: int) -> VariantEditor:
        """Put version ``version`` of variant ``name`` back into its card (or a new card if it is gone)."""
        variant = self.history.get(name, version).to_variant()
        fields = VariantFields.from_variant(variant, self._default_target)
        try:
            editor = self.editor(name)
        except NotFoundError:
            return self.add_variant(variant)
        editor.set_fields(fields)
        self._set_status(f"restored {name} v{version}")
        return editor

    def _restore_clicked(self) -> None:
        if self.history_variant.value and self.history_version.value:
            self.restore(self.history_variant.value, self.history_version.value)
            self._history_show()

    # --------------------------------------------------------------------------------------- save / load
    def experiment(self, path: str | Path = "experiment.yaml") -> Experiment:
        """The experiment spec :meth:`save` writes: the template's dataset, scorers and settings, these variants
        (every field their cards show) and the repeats."""
        return experiment_for_save(self.template, self.variants(), path, repeats=self.repeats.value)

    def default_spec_path(self) -> Path:
        """Where Save writes when no path is given: next to the notebook (the kernel's folder)."""
        return Path.cwd() / f"{self.template.name}.yaml"

    def save(self, path: str | Path | None = None) -> Path:
        """Write the variants into an experiment spec (YAML) that ``workbench eval`` / ``load_experiment`` run.

        Paths in it are relative to the spec; a dataset from the installed package is copied next to it."""
        path = Path(path or self.path.value or self.default_spec_path()).expanduser()
        exp = self.experiment(path)
        copy = dataset_copy(self.template, path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if copy is not None and not copy[1].exists():
            shutil.copyfile(*copy)
        written = exp.save(path)
        self.path.value = str(path)
        note = f" (with its dataset copied next to it: {copy[1].name})" if copy is not None else ""
        self._set_status(f"saved {plural(len(exp.variants), 'variant')} to {written}{note}")
        return written

    def load(self, path: str | Path | None = None) -> Experiment:
        """Replace the variants (and dataset, scorers, targets) with those of an experiment spec."""
        path = Path(path or self.path.value)
        exp = load_experiment(path)
        self.path.value = str(path)
        self.set_experiment(exp)
        self.repeats.value = exp.repeats
        self._set_status(f"loaded {plural(len(exp.variants), 'variant')} from {path}")
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
            turns = "".join(f"[{r}] {clip(c, 120)}\n" for r, c in (f.turns or []))
            rows.append([f.name, f.target or self._default_target, clip(f.system, 300), turns, clip(f.user, 300),
                         ", ".join(params), f.response_format, e.estimate.text() if e.estimate else ""])
        parts = [f'<div style="font:13px system-ui,sans-serif"><b>Playground</b> · {esc(self.template.name)} · '
                 f'{plural(len(self.editors), "variant")}</div>',
                 html_table(["variant", "target", "system", "few-shot turns", "user", "params", "format", "estimate"],
                            rows)]
        if self._run_variants:
            parts.append(f'<div style="font:12px system-ui,sans-serif;margin-top:6px">{esc(self.status)}</div>')
            parts.append(self.grid_html())
        if self.summary.value:
            parts.append(self.summary.value)
        return "".join(parts)

    def static_text(self) -> str:
        names = ", ".join(e.name.value for e in self.editors)
        return f"<Playground {self.template.name!r}: variants {names}; {self.status}>"


def _diff_html(diff: str, title: str) -> str:
    if not diff:
        return f'<div class="wb-meta">{esc(title)}: no difference.</div>'
    lines = []
    for line in diff.splitlines():
        colour = {"+": "#0d652d", "-": "#a50e0e", "@": "#777"}.get(line[:1], "#333")
        if line.startswith(("+++", "---")):
            colour = "#777"
        lines.append(f'<span style="color:{colour}">{esc(line)}</span>')
    return (f'<div class="wb-meta">{esc(title)}</div><pre style="font-size:11px;white-space:pre-wrap;margin:2px 0">'
            + "\n".join(lines) + "</pre>")
