"""``python -m benchmarks.http.check MODULE``: one app module's contract, without servers.

Imports the module (with the ``BENCH_*`` environment), mints three tokens with its
``prepare``, sends ``GET /me`` with each and with a forged one through the framework-neutral
test clients (werkzeug's for WSGI, Starlette's for ASGI), and prints, as JSON, the module's
``KIND``, the three answers' statuses and the forgery's. A process of its own, because a
Django row configures Django at import (one per process): ``tests/test_bench_http.py``.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

from benchmarks.http.common import BEARER, env

__all__ = ["check"]

FORGED = "forged.token.x"


def check(module_name: str) -> dict[str, Any]:
    """``{"kind", "tokens", "accepted": [3 statuses], "forged": status}`` of a module."""
    module = importlib.import_module(module_name)
    url, secret = env()
    tokens: list[str] = module.prepare(url, secret, 3)
    header, prefix = getattr(module, "CREDENTIAL", BEARER)
    sent = [{header: prefix + token} for token in [*tokens, FORGED]]
    if module.KIND == "wsgi":
        from werkzeug.test import Client

        client = Client(module.APP, use_cookies=False)  # the cookie rides in the header
        statuses = [client.get("/me", headers=headers).status_code for headers in sent]
    else:
        from starlette.testclient import TestClient

        with TestClient(module.APP) as asgi:
            statuses = [asgi.get("/me", headers=headers).status_code for headers in sent]
    return {
        "kind": module.KIND,
        "tokens": len(set(tokens)),
        "accepted": statuses[:-1],
        "forged": statuses[-1],
    }


if __name__ == "__main__":
    print(json.dumps(check(sys.argv[1])))
