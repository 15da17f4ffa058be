"""A short, bounded pass of the token fuzzer (fuzz/fuzz_tokens.py, atheris + libFuzzer).

``make fuzz`` runs it for a minute; this test runs a fixed number of inputs with a fixed
seed, so CI always exercises the harness. Any crash (an exception other than
``InvalidToken``, or a forged token that verifies) fails libFuzzer's run and this test.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TARGET = Path(__file__).resolve().parents[1] / "fuzz" / "fuzz_tokens.py"
RUNS = 40_000


def test_bounded_fuzz_pass(tmp_path: Path) -> None:
    if importlib.util.find_spec("atheris") is None:
        reason = "atheris is not installed (a Linux x86-64 test extra)"
        if os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}:
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)
    done = subprocess.run(
        [
            sys.executable,
            str(TARGET),
            f"-runs={RUNS}",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    match = re.search(r"Done (\d+) runs in (\d+) second", done.stderr)
    assert match is not None and int(match.group(1)) == RUNS, done.stderr[-1000:]
    assert not list(tmp_path.glob("crash-*"))
