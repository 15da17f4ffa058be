"""``python -m benchmarks.http.prepare MODULE N OUT``: a row's tokens, in its own process.

Imports the app module (with the run's ``BENCH_*`` environment), writes ``prepare(url,
secret, N)`` to OUT one token per line, and prints, as its last line, a JSON object: the
module's ``KIND`` and ``CREDENTIAL`` (``[header, prefix]``; default ``BEARER``).
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from benchmarks.http.common import BEARER, env


def main(argv: list[str]) -> int:
    module_name, count, out = argv
    module = importlib.import_module(module_name)
    url, secret = env()
    tokens: list[str] = module.prepare(url, secret, int(count))
    Path(out).write_text("".join(f"{token}\n" for token in tokens), encoding="ascii")
    header, prefix = getattr(module, "CREDENTIAL", BEARER)
    print(json.dumps({"kind": module.KIND, "credential": [header, prefix]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
