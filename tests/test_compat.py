"""The declared dependency ranges and the redis-py adapter's version gate.

``make compat`` runs the core suite (this file included) on the lowest and the newest
allowed versions; these tests keep the declared lower ends equal to what it installs, and
show that a redis-py outside the tested range takes redis-py's public path, never a crash.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from sessionstore import Keyring, SessionRevoked, SessionStore
from sessionstore._redis import redispy
from sessionstore.models import Device
from sessionstore.testing import Engine
from support import internals, single_node

REPO = Path(__file__).resolve().parent.parent


def _declared() -> dict[str, Requirement]:
    text = (REPO / "pyproject.toml").read_text()
    block = text.split("dependencies = [", 1)[1].split("]\n", 1)[0]
    found = re.findall(r'^\s*"([^"]+)",', block, flags=re.MULTILINE)
    return {(r := Requirement(spec)).name.lower(): r for spec in found}


def test_lowest_pins_are_the_declared_lower_bounds() -> None:
    pins = {}
    for line in (REPO / ".ci" / "lowest.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    declared = _declared()
    assert set(pins) == set(declared), "every runtime dependency has a lowest pin"
    for name, requirement in declared.items():
        lower = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        upper = [s.version for s in requirement.specifier if s.operator == "<"]
        assert lower == [Version(pins[name])], f"{name}: declared {requirement.specifier}"
        assert upper, f"{name} has no upper bound"


def test_the_adapter_knows_the_declared_redis_range() -> None:
    (spec,) = [s for s in _declared()["redis"].specifier if s.operator == ">="]
    assert redispy.supported(spec.version)
    assert not redispy.supported("5.3.0")
    assert redispy.supported("8.2.0")
    assert not redispy.supported("9.0.0")
    assert not redispy.supported("banana")


def test_a_redis_py_outside_the_range_takes_the_public_path(
    redis_url: str,
    engine: Engine,
    keyring: Keyring,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    single_node(engine)
    monkeypatch.setattr(redispy, "_KNOWN", False)
    monkeypatch.setattr(redispy, "_warned", type(redispy._warned)())
    caplog.set_level(logging.WARNING, logger="sessionstore")
    stores = [SessionStore.from_url(redis_url, keyring=keyring) for _ in range(2)]
    try:
        assert not any(internals(store).takes_direct_path() for store in stores)
        pair = stores[0].login("user-1", device=Device(id="phone-1"))
        assert stores[1].validate(pair.access_token).session_id == pair.session_id
        assert stores[1].revoke("user-1", pair.session_id)
        with pytest.raises(SessionRevoked):
            stores[0].validate(pair.access_token)
    finally:
        for store in stores:
            store.close()
    warnings = [r for r in caplog.records if "outside the tested range" in r.getMessage()]
    assert len(warnings) == 1
