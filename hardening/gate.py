"""What the pre-decode gate costs per refusal (and per acceptance), measured in-process."""

from __future__ import annotations

import base64
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from sessionstore import Config, InvalidToken, Keyring
from sessionstore.tokens import issue_access_token, verify_access_token

__all__ = ["GateFigure", "measure_gate"]


@dataclass(frozen=True)
class GateFigure:
    """Median nanoseconds per call of one input."""

    case: str
    outcome: str
    nanoseconds: float


def _per_call(call: Callable[[], object], calls: int, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(calls):
            call()
        samples.append((time.perf_counter_ns() - start) / calls)
    return statistics.median(samples)


def _outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except InvalidToken as err:
        return type(err).__name__
    return "accepted"


def measure_gate(calls: int = 2000, repeats: int = 7) -> list[GateFigure]:
    """Time ``verify_access_token`` on typical and hostile inputs (no Redis involved)."""
    config = Config()
    keyring = Keyring.generate("HS256")
    es = Keyring.generate("ES256")
    now = time.time()
    valid, _ = issue_access_token(
        keyring, user_id="user-1", session_id="S" * 22, claims={}, config=config, now=now
    )
    es_valid, _ = issue_access_token(
        es, user_id="user-1", session_id="S" * 22, claims={}, config=config, now=now
    )
    head, body, signature = valid.split(".")
    megabyte = "a" * 1_000_000
    inputs: list[tuple[str, Keyring, str]] = [
        ("1 MB token", keyring, megabyte),
        ("max_token_bytes + 1", keyring, "a" * (config.max_token_bytes + 1)),
        ("alg none", keyring, f"eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{body}.{signature}"),
        ("forged signature", keyring, f"{head}.{body}.{signature[::-1]}"),
        ("genuine HS256 token", keyring, valid),
        ("genuine ES256 token", es, es_valid),
    ]
    figures = []
    for name, ring, token in inputs:

        def call(r: Keyring = ring, t: str = token) -> object:
            return verify_access_token(r, t, config=config, now=time.time())

        def guarded(c: Callable[[], object] = call) -> None:
            with contextlib.suppress(InvalidToken):
                c()

        count = calls if "ES256" not in name else max(1, calls // 10)
        figures.append(GateFigure(name, _outcome(call), _per_call(guarded, count, repeats)))
    decode = _per_call(lambda: base64.urlsafe_b64decode(megabyte[:999_996]), 20, repeats)
    figures.append(GateFigure("(for scale) base64-decoding 1 MB", "-", decode))
    return figures
