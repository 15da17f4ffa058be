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
