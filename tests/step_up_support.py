"""What the step-up guard suites share: the tokens of each case, and the exact RFC 9470
challenges every integration must answer them with."""

import time
from collections.abc import Callable
from typing import Any

from sessionstore import Device, SessionStore
from sessionstore.keys import user_keys

PHONE = Device(id="phone-1", name="Pixel", user_agent="Mozilla/5.0 (Linux; Android 14)")
PREFIX = 'Bearer realm="api", error="insufficient_user_authentication", error_description='
OLD = PREFIX + '"More recent authentication is required", max_age="300"'
LOW = PREFIX + '"A different authentication level is required", acr_values="2"'
BOTH_LOW = PREFIX + '"A different authentication level is required", max_age="300", acr_values="2"'
BOTH_OLD = PREFIX + '"More recent authentication is required", max_age="300", acr_values="2"'
BOTH = (
    PREFIX
    + '"More recent authentication at a different level is required", max_age="300", '
    + 'acr_values="2"'
)
BODIES = {
    OLD: "More recent authentication is required",
    LOW: "A different authentication level is required",
    BOTH_LOW: "A different authentication level is required",
    BOTH_OLD: "More recent authentication is required",
    BOTH: "More recent authentication at a different level is required",
}
ROUTES = ("/recent", "/strong", "/both")


def age(admin: SessionStore, user_id: str, session_id: str, seconds: int) -> None:
    """Make a session's last proof of identity ``seconds`` old (the test's clock hand)."""
    key = user_keys(admin.config.namespace, user_id).session(session_id)
    admin.client.hset(key, "au", int(time.time()) - seconds)


def tokens(admin: SessionStore, user_id: str) -> dict[str, str]:
    """One token per case: level 1 just now, level 1 long ago, level 2 long ago, level 2
    just now (stepped up)."""
    recent_weak = admin.login(user_id, device=PHONE, methods="pwd", level=1)
    old_weak = admin.login(user_id, device=PHONE, methods="pwd", level=1)
    age(admin, user_id, old_weak.session_id, 3600)
    old_strong = admin.login(user_id, device=PHONE, methods=["pwd", "otp"], level=2)
    age(admin, user_id, old_strong.session_id, 3600)
    stepped = admin.login(user_id, device=PHONE, methods="pwd", level=1)
    age(admin, user_id, stepped.session_id, 3600)
    strong = admin.step_up(user_id, stepped.session_id, method="otp", level=2)
    return {
        "recent_weak": recent_weak.access_token,
        "old_weak": old_weak.access_token,
        "old_strong": old_strong.access_token,
        "strong": strong,
    }


# What each route answers each token: None for 200, else the exact challenge.
EXPECTED: dict[str, dict[str, str | None]] = {
    "/recent": {"recent_weak": None, "old_weak": OLD, "old_strong": OLD, "strong": None},
    "/strong": {"recent_weak": LOW, "old_weak": LOW, "old_strong": None, "strong": None},
    "/both": {"recent_weak": BOTH_LOW, "old_weak": BOTH, "old_strong": BOTH_OLD, "strong": None},
}


def body(answer: Any) -> Any:
    """The JSON body of any framework's test response (Flask's: ``get_json``)."""
    return answer.get_json() if hasattr(answer, "get_json") else answer.json()


def check_answers(
    get: Callable[[str, str | None], Any], admin: SessionStore, user_id: str = "alice"
) -> None:
    """Every route, every token: 200, or 401 with the exact RFC 9470 challenge and body
    (200s answer ``{"user": user_id}``)."""
    for name, token in tokens(admin, user_id).items():
        for route in ROUTES:
            answer = get(route, token)
            expected = EXPECTED[route][name]
            if expected is None:
                assert answer.status_code == 200, (route, name, answer.text)
                assert body(answer) == {"user": user_id}
                continue
            assert answer.status_code == 401, (route, name)
            assert answer.headers["WWW-Authenticate"] == expected, (route, name)
            assert body(answer) == {
                "error": "insufficient_user_authentication",
                "error_description": BODIES[expected],
                "reason": "step_up",
            }
    # No token at all: the usual bare challenge, not a step-up one.
    missing = get("/recent", None)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
