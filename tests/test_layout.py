"""The architecture as the imports show it: data flows one way, sources never import detectors,
no module imports itself back through others, and private names stay in their file."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "watcher"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str) -> set[str]:
    """The watcher modules `name` imports, anywhere in it (a function-level import counts):
    `from pkg import sub` is the submodule when `pkg.sub` is one, else the package."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for a in node.names:
                sub = f"{base}.{a.name}"
                if sub in MODULES:
                    out.add(sub)
                elif base in MODULES:
                    out.add(base)
    # Importing a.b.c from outside the package a.b runs a.b's __init__ first: its imports are
    # taken too (from inside, the package is already being initialised).
    for dep in list(out):
        parts = dep.split(".")
        for i in range(2, len(parts)):
            pkg = ".".join(parts[:i])
            if pkg in MODULES and not name.startswith(pkg + "."):
                out.add(pkg)
    out.discard(name)
    return out


GRAPH = {name: _imports(name) for name in MODULES}


def _closure(name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dep in GRAPH[todo.pop()]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_the_walk_sees_the_imports_it_must() -> None:
    """The checks below mean something only if the walk finds real edges."""
    assert "watcher.detect.judge" in GRAPH["watcher.flows.scan"]
    assert "watcher.sources.prometheus.checks" in GRAPH["watcher.sources.prometheus.plan"]
    assert "watcher.sources.opener" in GRAPH["watcher.cli"]  # in a function
    assert "watcher.flows" in GRAPH["watcher.drillcheck"]  # a package's __init__ runs too
    assert len(MODULES) > 40


def test_no_import_cycles() -> None:
    cycles = sorted(name for name in MODULES if name in _closure(name))
    assert not cycles, f"modules that import themselves back: {cycles}"


def test_sources_never_import_detectors() -> None:
    bad = {
        name: sorted(d for d in _closure(name) if d.startswith("watcher.detect"))
        for name in MODULES
        if name.startswith("watcher.sources") or name == "watcher.flows.source"
    }
    assert not {k: v for k, v in bad.items() if v}


def test_detectors_do_no_io_and_know_no_source() -> None:
    """Pure detectors: they read evidence, never a source, the network, the state or delivery."""
    forbidden = ("watcher.sources", "watcher.flows", "watcher.notify", "watcher.state")
    for name in MODULES:
        if name.startswith("watcher.detect"):
            reached = [d for d in _closure(name) if d.startswith(forbidden)]
            assert not reached, (name, reached)


def test_private_names_stay_in_their_file() -> None:
    """`from x import _name` across files is a hidden contract: make it public or keep it home."""
    crossing = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("watcher"):
                crossing += [
                    (name, node.module, a.name)
                    for a in node.names
                    if a.name.startswith("_") and not a.name.startswith("__")
                ]
    assert not crossing, crossing
