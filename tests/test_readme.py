"""The README's Python snippets run as written, in order, against each engine."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def snippets() -> list[str]:
    """The ```python blocks of the README, in order."""
    return re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), flags=re.DOTALL)


def test_readme_has_snippets() -> None:
    assert len(snippets()) >= 5


def test_readme_snippets_run(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    namespace: dict[str, object] = {"__name__": "readme"}
    for number, code in enumerate(snippets(), 1):
        exec(compile(code, f"README.md snippet {number}", "exec"), namespace)


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
