"""The package's shape: no import cycle, and each layer imports only what it may.

The import graph is read from the source with ``ast`` (nothing is imported): every
``import`` and ``from ... import`` of every module counts, inside functions and under
``TYPE_CHECKING`` too. ``from pkg import name`` is an edge to ``pkg.name`` when that is a
module, else to ``pkg`` (a package's ``__init__`` is a module). Importing ``a.b.c`` is not
counted as importing ``a`` and ``a.b``: Python runs them first, but every module would
then import ``sessionstore/__init__`` (the shells), and no layering could be told apart.

The layers are documented in each subpackage's docstring and in docs/architecture.md.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "sessionstore"
TESTS = Path(__file__).resolve().parent

# The client libraries: ``_engine`` and ``_jose`` must not reach them.
CLIENT_LIBRARIES = ("redis", "hiredis", "valkey")
# Outside the runtime import path: no runtime module reaches them, however indirectly.
TOOLS = (
    "sessionstore.__main__",
    "sessionstore.cli",
    "sessionstore.demo",
    "sessionstore.demo_app",
    "sessionstore.integrations",
    "sessionstore.testing",
)
# The public data modules every layer may use.
DATA = (
    "sessionstore.errors",
    "sessionstore.events",
    "sessionstore.keys",
    "sessionstore.legacy",
    "sessionstore.models",
    "sessionstore.scripts",
    "sessionstore.tokens",
)
# What each layer may import of the package (besides itself), as its docstring says.
MAY_IMPORT: dict[str, tuple[str, ...]] = {
    "sessionstore._jose": ("sessionstore.errors",),
    "sessionstore._engine": ("sessionstore._jose", "sessionstore._nearcache.cache", *DATA),
    "sessionstore._redis": ("sessionstore._engine", *DATA),
    "sessionstore._nearcache": ("sessionstore._redis", *DATA),
}
# The one adapter module that touches redis-py's private internals, behind a version gate.
ADAPTER = "sessionstore._redis.redispy"


@dataclass
class Module:
    """One module's imports: of the package (module names) and of outside libraries."""

    inside: set[str] = field(default_factory=set)
    outside: set[str] = field(default_factory=set)  # dotted: "redis._parsers.BaseParser"
    private_getattr: set[str] = field(default_factory=set)  # getattr(x, "_name") and kin


def _name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _known(name: str, modules: set[str]) -> str:
    """``name`` or its longest prefix that is a module of the package."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _top(name: str, root: Path) -> bool:
    return name.split(".")[0] == root.name


def _read(path: Path, name: str, modules: set[str], root: Path) -> Module:
    module = Module()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text("utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _top(alias.name, root):
                    module.inside.add(_known(alias.name, modules))
                else:
                    module.outside.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *filter(None, [base])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                if not _top(base, root):
                    module.outside.add(full)
                else:
                    module.inside.add(full if full in modules else _known(base, modules))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and node.args[1].value.startswith("_")
            and not node.args[1].value.startswith("__")
        ):
            module.private_getattr.add(node.args[1].value)
    module.inside.discard(name)
    return module


def import_graph(root: Path = ROOT) -> dict[str, Module]:
    """Every module under ``root`` (a package directory) and what it imports."""
    paths = {_name(path, root): path for path in sorted(root.rglob("*.py"))}
    return {name: _read(path, name, set(paths), root) for name, path in paths.items()}


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _path(parents: dict[str, str | None], end: str) -> list[str]:
    path = [end]
    while (before := parents[path[-1]]) is not None:
        path.append(before)
    return path[::-1]


def reach(graph: dict[str, Module], start: str) -> dict[str, str | None]:
    """Every module ``start`` imports directly or not, each with the module importing it."""
    parents: dict[str, str | None] = {start: None}
    todo = deque([start])
    while todo:
        current = todo.popleft()
        for target in sorted(graph[current].inside):
            if target not in parents:
                parents[target] = current
                todo.append(target)
    return parents


def cycles(graph: dict[str, Module]) -> list[list[str]]:
    """One shortest cycle through each module that is on a cycle, without repeats."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for start in sorted(graph):
        parents = reach(graph, start)
        back = [m for m in sorted(parents) if start in graph[m].inside]
        if not back:
            continue
        loop = [*min((_path(parents, m) for m in back), key=len), start]
        if frozenset(loop) not in seen:
            seen.add(frozenset(loop))
            found.append(loop)
    return found


def client_imports(graph: dict[str, Module], layers: tuple[str, ...]) -> list[str]:
    """How modules of ``layers`` reach a client library: one line per module importing one."""
    problems: dict[str, str] = {}
    for name in sorted(m for m in graph if _under(m, layers)):
        parents = reach(graph, name)
        for reached in sorted(set(parents) - set(problems)):
            libs = sorted(lib for lib in graph[reached].outside if _under(lib, CLIENT_LIBRARIES))
            if libs:
                problems[reached] = (
                    f"{' -> '.join(_path(parents, reached))} imports {', '.join(libs)}"
                )
    return sorted(problems.values())


def layer_breaches(
    graph: dict[str, Module],
    tools: tuple[str, ...] = TOOLS,
    may_import: dict[str, tuple[str, ...]] = MAY_IMPORT,
) -> list[str]:
    """Runtime modules that import a tool, and layers that import what they may not.

    Direct imports suffice for the tools: a runtime module that reaches one, however
    indirectly, is on a path whose first step into the tools is a direct import.
    """
    problems = []
    for name in sorted(m for m in graph if not _under(m, tools)):
        problems += [
            f"{name} imports {target}: a tool, outside the runtime path"
            for target in sorted(graph[name].inside)
            if _under(target, tools)
        ]
    for layer, allowed in may_import.items():
        for name in sorted(m for m in graph if _under(m, (layer,))):
            problems += [
                f"{name} imports {target}: {layer} may import only {', '.join(allowed)}"
                for target in sorted(graph[name].inside)
                if not _under(target, (layer, *allowed))
            ]
    return problems


def private_redis(graph: dict[str, Module], adapter: str = ADAPTER) -> list[str]:
    """Touches of redis-py's private internals outside the adapter module."""
    problems = []
    for name in sorted(m for m in graph if m != adapter):
        module = graph[name]
        problems += [
            f"{name} imports {lib}"
            for lib in sorted(module.outside)
            if _under(lib, CLIENT_LIBRARIES) and any(p.startswith("_") for p in lib.split("."))
        ]
        problems += [f"{name} reads {attr} by name" for attr in sorted(module.private_getattr)]
    return problems


def test_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_engine_and_jose_import_no_client_library() -> None:
    found = client_imports(import_graph(), ("sessionstore._engine", "sessionstore._jose"))
    assert not found, "\n".join(found)


def test_layers_import_only_what_they_may() -> None:
    found = layer_breaches(import_graph())
    assert not found, "\n".join(found)


def test_only_the_adapter_touches_redis_py_internals() -> None:
    graph = import_graph()
    assert ADAPTER in graph
    found = private_redis(graph)
    assert not found, "\n".join(found)


def imports_between_tests(tests: Path = TESTS) -> list[str]:
    """``test_*`` modules of ``tests`` that import another ``test_*`` module (shared helpers
    live in support.py and the other helper modules, never in a test module)."""
    found = []
    for path in sorted(tests.glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.name}: {n}" for n in names if n.split(".")[-1].startswith("test_")]
    return found


def test_no_test_module_imports_another(tmp_path: Path) -> None:
    assert not imports_between_tests(), imports_between_tests()
    (tmp_path / "test_a.py").write_text("from test_b import helper\n", encoding="utf-8")
    assert imports_between_tests(tmp_path) == ["test_a.py: test_b"]


# Each rule above fails on a package that breaks it: a small one written for the purpose.
BROKEN = {
    "__init__.py": "",
    "a.py": "from pkg import b\n",
    "b.py": "def later() -> None:\n    from . import a\n",
    "_engine/__init__.py": "",
    "_engine/pure.py": "from pkg.errors import X\nfrom pkg import cli\n",
    "errors.py": "import hiredis\n",
    "cli.py": "",
    "_jose/__init__.py": "from pkg._redis import driver\n",
    "_redis/__init__.py": "",
    "_redis/driver.py": "from redis._parsers import BaseParser\n",
    "_redis/other.py": "def f(c: object) -> object:\n    return getattr(c, '_sock')\n",
}


@pytest.fixture
def broken(tmp_path: Path) -> dict[str, Module]:
    for relative, text in BROKEN.items():
        path = tmp_path / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return import_graph(tmp_path / "pkg")


def test_the_rules_catch_a_broken_package(broken: dict[str, Module]) -> None:
    assert cycles(broken) == [["pkg.a", "pkg.b", "pkg.a"]]
    assert client_imports(broken, ("pkg._engine",)) == [
        "pkg._engine.pure -> pkg.errors imports hiredis"
    ]
    assert client_imports(broken, ("pkg._jose",)) == [
        "pkg._jose -> pkg._redis.driver imports redis._parsers.BaseParser"
    ]
    assert layer_breaches(broken, ("pkg.cli",), {"pkg._jose": ("pkg.errors",)}) == [
        "pkg._engine.pure imports pkg.cli: a tool, outside the runtime path",
        "pkg._jose imports pkg._redis.driver: pkg._jose may import only pkg.errors",
    ]
    assert private_redis(broken, "pkg._redis.redispy") == [
        "pkg._redis.driver imports redis._parsers.BaseParser",
        "pkg._redis.other reads _sock by name",
    ]
