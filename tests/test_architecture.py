"""The package's shape, checked: no import cycles, no import of another module's private
names. Every import counts, wherever it stands (inside functions and `if TYPE_CHECKING:`
blocks too), and importing `a.b.c` imports the packages `a` and `a.b` first."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from .conftest import REPO

PACKAGE = REPO / "qwenbuild"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for _ in range(node.level - 1):
        package = package.rsplit(".", 1)[0]
    return f"{package}.{node.module}" if node.module else package


def _imports(module: str, path: Path, modules: dict[str, Path]
             ) -> Iterator[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) of every import in `path`."""
    tree = ast.parse(path.read_text("utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if full in modules:  # `from . import watch`: a module, not a name
                    yield full, None, node.lineno
                else:
                    yield base, alias.name, node.lineno


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for target, _, _ in _imports(name, path, modules):
            for module in _with_parents(target):
                if module in modules and module != name and not name.startswith(module + "."):
                    graph[name].add(module)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_module_imports_another_modules_private_names() -> None:
    modules = _modules()
    offences = []
    for name, path in modules.items():
        for target, imported, line in _imports(name, path, modules):
            private = imported is not None and imported.startswith("_") and \
                not imported.startswith("__")
            if private and target != name and target.startswith("qwenbuild"):
                offences.append(f"{path.relative_to(REPO)}:{line}: {imported} from {target}")
            if imported is None and any(part.startswith("_") and not part.startswith("__")
                                        for part in target.split(".")[1:]):
                offences.append(f"{path.relative_to(REPO)}:{line}: module {target}")
    assert not offences, "\n".join(offences)


def test_the_checker_finds_a_cycle_and_a_private_import() -> None:
    """The two checks above must be able to fail."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    tree = ast.parse("from .x import _hidden\n")
    node = tree.body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _resolve("qwenbuild.y", PACKAGE / "y.py", node) == "qwenbuild.x"
