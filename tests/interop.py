"""The Node side of the interop suites: a pinned package installed once, then ``node``."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from conftest import unavailable

__all__ = ["node_tool"]


def _installed_version(folder: Path, package: str) -> str | None:
    manifest = folder / "node_modules" / package / "package.json"
    if not manifest.is_file():
        return None
    return str(json.loads(manifest.read_text("utf-8"))["version"])


def node_tool(folder: Path, package: str, label: str) -> str:
    """``node``'s path, once ``folder``'s locked ``package`` is installed (``npm ci`` when it
    is missing or another version); unavailable (a skip, a failure under CI) otherwise."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable(
            f"{label} interop: node and npm are needed (Debian: apt-get install nodejs npm)"
        )
    locked = json.loads((folder / "package-lock.json").read_text("utf-8"))
    wanted = locked["packages"][f"node_modules/{package}"]["version"]
    if _installed_version(folder, package) != wanted:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0 or _installed_version(folder, package) != wanted:
            unavailable(f"{label} interop: npm ci failed in {folder}: {done.stderr.strip()[-500:]}")
    return node
