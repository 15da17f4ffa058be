"""``free_port`` under pytest-xdist: a share of ports per worker, none handed out twice."""

from __future__ import annotations

import socket

import pytest

from sessionstore.testing import free_port
from sessionstore.testing.ports import port_share


def _as_worker(monkeypatch: pytest.MonkeyPatch, worker: str | None, count: str | None) -> None:
    for name, value in (("PYTEST_XDIST_WORKER", worker), ("PYTEST_XDIST_WORKER_COUNT", count)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_each_worker_has_a_share_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    shares = []
    for worker in (None, "gw0", "gw1", "gw2"):
        _as_worker(monkeypatch, worker, None if worker is None else "3")
        shares.append(port_share())
    assert all(len(share) >= 64 for share in shares), shares
    ports = [set(share) for share in shares]
    for n, mine in enumerate(ports):
        for other in ports[n + 1 :]:
            assert not mine & other, shares


def test_free_ports_come_from_the_share_and_are_never_repeated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _as_worker(monkeypatch, "gw1", "2")
    share = port_share()
    picked = [free_port() for _ in range(50)]
    assert len(set(picked)) == len(picked)
    assert all(port in share for port in picked), (share, picked)


def test_a_port_in_use_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    _as_worker(monkeypatch, "gw0", "1")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", free_port() + 1))  # the next port free_port would try
        taken.listen()
        busy = taken.getsockname()[1]
        assert busy not in {free_port() for _ in range(5)}
