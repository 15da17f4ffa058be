"""The ``sessionstore`` command."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sessionstore", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="walk through logins, refresh and revocation")
    demo.add_argument("--redis-url", help="use this server instead of an embedded Valkey")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from sessionstore.demo import main as demo

        return demo(args.redis_url)
    return 2  # pragma: no cover - argparse refuses unknown commands first
