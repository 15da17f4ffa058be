"""The README's Python snippets run as written against each engine: each one on its own,
in a fresh namespace, twice in a row on the same database. A snippet that uses the
Quickstart's names (the README says the others continue it) runs after the first one."""

from __future__ import annotations

import ast
import asyncio
import re
import sys
import types
from pathlib import Path

import pytest

from sessionstore import AsyncSessionStore, SessionStore

README = Path(__file__).resolve().parent.parent / "README.md"
QUICKSTART_NAMES = {"url", "keyring", "store", "phone"}


def continues_quickstart(code: str) -> bool:
    """Whether ``code`` uses a name the Quickstart defines."""
    used = {node.id for node in ast.walk(ast.parse(code)) if isinstance(node, ast.Name)}
    return bool(used & QUICKSTART_NAMES)


def snippets() -> list[str]:
    """The ```python blocks of the README, in order."""
    return re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), flags=re.DOTALL)


def test_readme_has_snippets() -> None:
    assert len(snippets()) >= 5


def _django_ready(code: str) -> None:
    """Set up the tests' Django project for a snippet that imports Django (or skip)."""
    if re.search(r"^from (django|rest_framework)\b", code, flags=re.MULTILINE):
        pytest.importorskip("django")
        pytest.importorskip("rest_framework")
        import django_site

        django_site.setup()


def _close_stores(namespace: dict[str, object]) -> None:
    """Close what a snippet left open (closing twice is harmless)."""
    for value in namespace.values():
        if isinstance(value, SessionStore):
            value.close()
        elif isinstance(value, AsyncSessionStore):
            asyncio.run(value.close())


@pytest.mark.parametrize("number", range(1, len(snippets()) + 1))
def test_readme_snippet_runs_on_its_own_twice(
    number: int, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    setup, code = snippets()[0], snippets()[number - 1]
    _django_ready(code)
    for _ in range(2):
        # A module of its own, as a user's script is: frameworks that resolve a handler's
        # annotations (Litestar) look its module up in sys.modules.
        module = types.ModuleType("readme")
        monkeypatch.setitem(sys.modules, "readme", module)
        namespace: dict[str, object] = module.__dict__
        try:
            if number != 1 and continues_quickstart(code):
                exec(compile(setup, "README.md snippet 1", "exec", dont_inherit=True), namespace)
            exec(compile(code, f"README.md snippet {number}", "exec", dont_inherit=True), namespace)
        finally:
            _close_stores(namespace)


def _section(title: str) -> str:
    text = README.read_text("utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def test_the_error_tree_names_every_error() -> None:
    from sessionstore import errors

    tree = _section("Errors")
    missing = [name for name in errors.__all__ if not re.search(rf"\b{name}\b", tree)]
    assert not missing, f"README's error tree omits {missing}"


def _usage(synopsis: str, command: str) -> str:
    """The usage lines of ``command``: its first line and the bracketed lines that follow."""
    lines = synopsis.splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith(command + " ")]
    found = []
    for n in starts:
        found.append(lines[n])
        found += _continued(lines[n + 1 :])
    return "\n".join(found)


def _continued(lines: list[str]) -> list[str]:
    found = []
    for line in lines:
        if not line.lstrip().startswith(("[", "(")):
            break
        found.append(line)
    return found


def test_the_cli_synopsis_names_every_option() -> None:
    """Every option of every command (``sessionstore COMMAND --help``) is in the synopsis."""
    import argparse

    from sessionstore.cli import _parser

    synopsis = _section("Command line")
    missing = []

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, f"{path} {name}")
            for option in action.option_strings:
                wanted = option.startswith("--") and option != "--help"
                if wanted and option not in _usage(synopsis, path):
                    missing.append(f"{path} {option}")

    walk(_parser(), "sessionstore")
    assert not missing, f"README's CLI synopsis omits {missing}"


def test_the_config_docstring_does_not_deny_the_cluster_near_cache() -> None:
    """A cluster store has a near cache (one invalidation connection per primary)."""
    from sessionstore import Config

    doc = " ".join((Config.__doc__ or "").split())
    assert "never on a cluster" not in doc
    assert "cluster" in doc
