"""The package's floor plan holds: no import circles, and no import from a lower layer to a higher one.

Layers, top to bottom: cli > web > exporter > pipeline > probers > config > registry and the leaves.
Every import counts (module level, inside functions, under TYPE_CHECKING), because each one is a
dependency a reader has to follow. The registry reaches the probers by name (importlib), which is
not an import statement and so not checked here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "probe_exporter"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# (layer, module prefixes); a module belongs to the layer of the longest prefix it starts with.
# probers.net.hostport imports nothing but the standard library: the one host:port parser and
# IP-literal check, which config validation needs too. workers: the worker set's shared state (leaves the
# limiter and self-metrics use), the history and reloads over all workers, and the cluster that joins them.
LAYERS: list[tuple[int, tuple[str, ...]]] = [
    (7, ("cli", "__main__", "healthcheck")),
    (6, ("web", "workers.cluster")),
    (5, ("exporter", "autoreload", "workers.history", "workers.reload")),
    (4, ("pipeline", "testkit")),
    (3, ("probers",)),
    (2, ("config", "settings")),
    (1, ("registry", "extras", "modulecache", "logs", "exposition", "selfmetrics", "probe_metrics", "gotext",
         "history", "limits", "openfiles", "masking", "probers.net.hostport", "__init__", "workers")),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    """Every module of the package: its .py file, or for a C extension its .pyi stub."""
    modules = {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}
    stubs = {_module_name(path): path for path in sorted(ROOT.rglob("*.pyi"))}
    return {**stubs, **modules}


MODULES = _modules()


def _layer(module: str) -> int:
    inside = module.removeprefix(PACKAGE).removeprefix(".") or "__init__"
    matches = [(len(prefix), layer) for layer, prefixes in LAYERS for prefix in prefixes
               if inside == prefix or inside.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return max(matches)[1]


def _resolve(name: str) -> str | None:
    """The package module an imported name lives in (the longest known prefix)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str) -> Iterator[tuple[str, int]]:
    """(imported package module, line) for every import statement in `module`."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from package import submodule` imports the submodule; `from module import name` the module.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                target = _resolve(name)
                if target is not None and target != module:
                    yield target, node.lineno


GRAPH = {module: sorted(set(_imports(module))) for module in MODULES}


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _layer(module)


def test_no_import_goes_up_a_layer() -> None:
    upward = [f"{MODULES[module].relative_to(ROOT.parent)}:{line}: {module} (layer {_layer(module)}) imports "
              f"{target} (layer {_layer(target)})"
              for module, targets in GRAPH.items() for target, line in targets if _layer(target) > _layer(module)]
    assert not upward, "\n".join(upward)


def _cycle_from(start: str) -> list[str] | None:
    """A shortest import circle through `start`, if any (breadth-first over the import graph)."""
    paths: dict[str, list[str]] = {start: [start]}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for module in frontier:
            for target, _ in GRAPH[module]:
                if target == start:
                    return [*paths[module], start]
                if target not in paths:
                    paths[target] = [*paths[module], target]
                    following.append(target)
        frontier = following
    return None


def test_no_import_circles() -> None:
    circles = {" -> ".join(cycle) for module in MODULES if (cycle := _cycle_from(module)) is not None}
    assert not circles, "\n".join(sorted(circles))


@pytest.mark.parametrize(("source", "expected"), [
    ("from probe_exporter.web import routes\n", "probe_exporter.web.routes"),
    ("from probe_exporter.config import Config\n", "probe_exporter.config"),
    ("import probe_exporter.probers.snmp.scrape\n", "probe_exporter.probers.snmp.scrape"),
    ("def f():\n    from probe_exporter import pipeline\n", "probe_exporter.pipeline"),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from probe_exporter.exporter import Exporter\n",
     "probe_exporter.exporter"),
])
def test_the_walk_sees_every_kind_of_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str,
                                            expected: str) -> None:
    fake = ROOT / "gotext.py"
    monkeypatch.setitem(MODULES, "probe_exporter.gotext", tmp_path / "gotext.py")
    (tmp_path / "gotext.py").write_text(source)
    assert fake.exists()
    assert [target for target, _ in _imports("probe_exporter.gotext")] == [expected]
