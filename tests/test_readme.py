"""The README's Python snippets run as written against each engine: each one on its own,
in a fresh namespace, twice in a row on the same database. A snippet that uses the
Quickstart's names (the README says the others continue it) runs after the first one."""

from __future__ import annotations

import ast
import asyncio
import re
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
    for _ in range(2):
        namespace: dict[str, object] = {"__name__": "readme"}
        try:
            if number != 1 and continues_quickstart(code):
                exec(compile(setup, "README.md snippet 1", "exec", dont_inherit=True), namespace)
            exec(compile(code, f"README.md snippet {number}", "exec", dont_inherit=True), namespace)
        finally:
            _close_stores(namespace)
