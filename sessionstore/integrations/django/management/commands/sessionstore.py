"""``manage.py sessionstore``: the ``sessionstore`` command on the server of the settings.

::

    manage.py sessionstore sessions list USER [--json]
    manage.py sessionstore sessions revoke USER (SID | --device ID | --all) [--json]
    manage.py sessionstore sessions history USER [--limit N] [--json]
    manage.py sessionstore doctor [--json]

The same commands, output and exit codes as the CLI (it runs them), with the URL and the
namespace of ``settings.SESSIONSTORE`` filled in.
"""

from __future__ import annotations

import argparse
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sessionstore.cli import main
from sessionstore.integrations.django import conf

__all__ = ["Command"]


class Command(BaseCommand):
    """The ``sessions`` and ``doctor`` commands of the CLI, configured by the settings."""

    help = "List or revoke a user's sessions, or check the server (as the sessionstore CLI)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("command", choices=["sessions", "doctor"])
        parser.add_argument("rest", nargs=argparse.REMAINDER, help="the CLI command's arguments")

    def handle(self, *args: Any, **options: Any) -> None:
        opts = conf.options()
        command: str = options["command"]
        rest: list[str] = list(options["rest"])
        if command == "sessions":
            argv = [command, *rest, "--redis-url", opts.url]
            argv += ["--namespace", opts.config.namespace]
        elif any(not word.startswith("-") for word in rest):
            raise CommandError("doctor checks the server of settings.SESSIONSTORE: no URL")
        else:
            argv = [command, opts.url, *rest]
        code = main(argv)
        if code:
            raise SystemExit(code)
