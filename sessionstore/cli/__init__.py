"""The ``sessionstore`` command: keys, server checks, sessions, and the demo.

Exit codes:
    0  done
    1  done, but: ``doctor`` found a problem, or ``sessions revoke`` found nothing to revoke
    2  bad usage or bad input (an invalid user id, session id, URL, ...)
    3  the server is unreachable (or what answers there is not Redis)
    4  the server answered with an error
    5  the server refused the credentials (WRONGPASS, NOAUTH: wrong or missing password)

Every failure is one line on stderr, and no output ever shows a password (``redact``).
Outside the runtime path (no runtime module imports it); ``doctor`` and ``demo`` load on use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import redis

from sessionstore.cli.redact import mask_text, mask_url
from sessionstore.errors import InvalidInput, SessionStoreError, StoreUnavailable

if TYPE_CHECKING:
    from sessionstore.models import HistoryEntry, Session
    from sessionstore.store import SessionStore

__all__ = [
    "EXIT_AUTH",
    "EXIT_BAD_INPUT",
    "EXIT_OK",
    "EXIT_PROBLEM",
    "EXIT_SERVER_ERROR",
    "EXIT_UNREACHABLE",
    "main",
]

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_BAD_INPUT = 2
EXIT_UNREACHABLE = 3
EXIT_SERVER_ERROR = 4
EXIT_AUTH = 5
URL_ENVS = ("SESSIONSTORE_REDIS_URL", "REDIS_URL")
_DEFAULT_URL = "redis://localhost:6379/0"
_ALGORITHMS = ("HS256", "HS384", "HS512", "ES256", "EdDSA", "RS256", "PS256")


def _default_url() -> str:
    return next((os.environ[e] for e in URL_ENVS if os.environ.get(e)), _DEFAULT_URL)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="machine-readable output")
    parser = argparse.ArgumentParser(
        prog="sessionstore",
        description="Redis-native sessions and stateful JWTs.",
        epilog="exit codes: 0 done, 1 problem found or nothing revoked, 2 bad input, "
        "3 server unreachable, 4 server error, 5 credentials refused",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keygen = commands.add_parser("keygen", parents=[common], help="print a new signing key")
    keygen.add_argument("--alg", default="HS256", choices=_ALGORITHMS)
    keygen.add_argument("--kid", help="key id (default: random)")

    doctor = commands.add_parser("doctor", parents=[common], help="check a server for sessions")
    doctor.add_argument(
        "url",
        metavar="URL",
        help="redis://, rediss://, unix://, redis(s)+cluster:// or redis(s)+sentinel:// URL",
    )

    sessions = commands.add_parser(
        "sessions", help="list or revoke a user's sessions, or show their history"
    )
    actions = sessions.add_subparsers(dest="action", required=True, metavar="ACTION")
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--redis-url",
        default=None,
        help=f"server URL (default: ${URL_ENVS[0]}, ${URL_ENVS[1]}, or {_DEFAULT_URL})",
    )
    server.add_argument("--namespace", default="ss", help="key namespace (default: ss)")
    listing = actions.add_parser("list", parents=[common, server], help="a user's sessions")
    listing.add_argument("user", metavar="USER")
    revoke = actions.add_parser("revoke", parents=[common, server], help="sign sessions out")
    revoke.add_argument("user", metavar="USER")
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("sid", metavar="SID", nargs="?", help="one session id")
    which.add_argument("--device", metavar="ID", help="every session of one device")
    which.add_argument("--all", action="store_true", help="every session of the user")
    history = actions.add_parser(
        "history", parents=[common, server], help="a user's history, newest first"
    )
    history.add_argument("user", metavar="USER")
    history.add_argument(
        "--limit", type=int, default=100, help="at most N entries (1..1000, default 100)"
    )

    demo = commands.add_parser("demo", help="run the web demo (embedded Valkey by default)")
    demo.add_argument("--redis-url", help="use this server instead of an embedded Valkey")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--walkthrough", action="store_true", help="print a tour and exit")
    demo.add_argument(
        "--insecure-cookies", action="store_true", help="drop the Secure flag (plain HTTP hosts)"
    )
    return parser


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _emit(args: argparse.Namespace, data: Any, human: Callable[[], str]) -> None:
    if args.json:
        print(json.dumps(msgspec.to_builtins(data), indent=2, sort_keys=True))
    else:
        print(human())


def _keygen(args: argparse.Namespace) -> int:
    from sessionstore.tokens import Keyring

    ring = Keyring.generate(args.alg, kid=args.kid)
    jwks = json.dumps(ring.to_private_jwks(), separators=(",", ":"))
    export = f"export SESSIONSTORE_JWKS={shlex.quote(jwks)}"
    data = {
        "kid": ring.current_kid,
        "alg": args.alg,
        "jwks": ring.to_private_jwks(),
        "public_jwks": ring.to_jwks(),
        "env": export,
    }
    _emit(args, data, lambda: f"kid: {ring.current_kid}\nalg: {args.alg}\n{export}")
    return EXIT_OK


def _checked_url(url: str) -> str:
    """``url`` if it is a URL ``from_url`` takes; else ``InvalidInput``, before connecting."""
    from sessionstore._redis.connect import parse

    if parse(url).kind == "single":
        # Building (not connecting) a connection applies every URL option: a misspelt one
        # is refused here rather than as a TypeError deep inside the first command.
        try:
            redis.ConnectionPool.from_url(url).make_connection()
        except TypeError as err:
            unknown = re.search(r"unexpected keyword argument '(\w+)'", str(err))
            problem = f"unknown URL option {unknown.group(1)!r}" if unknown else f"bad URL: {err}"
            raise InvalidInput(problem) from err
        except ValueError as err:
            raise InvalidInput(f"bad URL: {err}") from err
    return url


def _doctor(args: argparse.Namespace) -> int:
    from sessionstore.cli.doctor import diagnose

    checks = diagnose(_checked_url(args.url))
    ok = all(c.status in ("ok", "note") for c in checks)
    data = {"url": mask_url(args.url), "ok": ok, "checks": [c.to_dict() for c in checks]}

    def human() -> str:
        rows = [(c.name, c.status.upper(), c.detail) for c in checks]
        verdict = "fit for sessions" if ok else "PROBLEMS FOUND"
        return f"{_table(('check', 'status', 'detail'), rows)}\n\n{mask_url(args.url)}: {verdict}"

    _emit(args, data, human)
    return EXIT_OK if ok else EXIT_PROBLEM


def _sessions(args: argparse.Namespace) -> int:
    from sessionstore.models import Config
    from sessionstore.store import SessionStore

    # A one-shot command: no near cache, so no invalidation listener thread either.
    config = Config(namespace=args.namespace, socket_timeout=2.0, near_cache_size=0)
    store = SessionStore.from_url(_checked_url(args.url), config=config)
    with store:
        return _session_action(args, store)


def _session_rows(found: Sequence[Session]) -> list[tuple[str, ...]]:
    return [
        (
            s.session_id,
            s.device.id,
            s.device.name,
            s.device.ip,
            _when(s.created_at),
            _when(s.last_seen_at),
            _when(min(s.idle_expires_at, s.absolute_expires_at)),
        )
        for s in found
    ]


def _history_rows(found: Sequence[HistoryEntry]) -> list[tuple[str, ...]]:
    def detail(e: HistoryEntry) -> str:
        if e.kind == "step_up":
            return f"{e.method} level {e.level}"
        return e.reason

    return [
        (
            _when(e.at),
            e.kind,
            e.session_id or e.session_ref + "…",
            e.device_id or "-",
            e.device_name or "-",
            e.ip or "-",
            f"{e.browser}/{e.os}" if e.browser else "-",
            detail(e) or "-",
        )
        for e in found
    ]


def _session_action(args: argparse.Namespace, store: SessionStore) -> int:
    if args.action == "history":
        entries = store.history(args.user, limit=args.limit)
        columns = ("when", "kind", "session", "device", "name", "ip", "client", "detail")
        none = f"no history for {args.user!r}"
        _emit(args, entries, lambda: _table(columns, _history_rows(entries)) if entries else none)
        return EXIT_OK
    if args.action == "list":
        found = store.sessions(args.user)
        headers = ("session", "device", "name", "ip", "created", "last seen", "expires")
        empty = f"no active sessions for {args.user!r}"
        _emit(args, found, lambda: _table(headers, _session_rows(found)) if found else empty)
        return EXIT_OK
    if args.all:
        count = store.revoke_user(args.user)
    elif args.device is not None:
        count = store.revoke_device(args.user, args.device)
    else:
        count = int(store.revoke(args.user, args.sid))
    _emit(args, {"revoked": count}, lambda: f"revoked {count} session(s) of {args.user!r}")
    return EXIT_OK if count else EXIT_PROBLEM


def _demo(args: argparse.Namespace) -> int:
    from sessionstore.demo import main as demo

    if not 0 <= args.port <= 65535:
        raise InvalidInput("--port must be 0..65535")
    if args.redis_url is not None:
        _checked_url(args.redis_url)
    return demo(
        args.redis_url,
        host=args.host,
        port=args.port,
        walkthrough=args.walkthrough,
        secure_cookies=not args.insecure_cookies,
    )


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "keygen": _keygen,
    "doctor": _doctor,
    "sessions": _sessions,
    "demo": _demo,
}


def _causes(err: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _refused_login(err: BaseException) -> bool:
    if isinstance(err, redis.AuthenticationError):
        return True
    return isinstance(err, redis.ResponseError) and str(err).startswith(("NOAUTH", "WRONGPASS"))


def _failure(err: Exception, url: str) -> tuple[int, str] | None:
    """The exit code and the one line for ``err``; None for an error that is a bug."""
    from sessionstore._redis.driver import is_unreachable
    from sessionstore.testing import NoServerAvailable

    where = mask_url(url) if url else "the server"
    chain = list(_causes(err))
    refused = next((e for e in chain if _refused_login(e)), None)
    if refused is not None:
        return EXIT_AUTH, f"{where} refused the credentials: {refused} (check user and password)"
    if isinstance(err, InvalidInput):
        return EXIT_BAD_INPUT, str(err)
    alien = next((e for e in chain if isinstance(e, redis.exceptions.InvalidResponse)), None)
    if alien is not None:
        return EXIT_UNREACHABLE, f"{where} does not answer as a Redis server ({alien})"
    driver = next((e for e in chain if not isinstance(e, SessionStoreError)), err)
    if isinstance(err, (StoreUnavailable, NoServerAvailable, OSError)) or is_unreachable(driver):
        detail = driver if driver is not err else type(err).__name__
        return EXIT_UNREACHABLE, f"the server is unreachable: cannot reach {where}: {detail}"
    if isinstance(err, (SessionStoreError, redis.RedisError, redis.RedisClusterException)):
        return EXIT_SERVER_ERROR, f"the server answered with an error: {where}: {driver}"
    return None


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    """Keep the library's own warnings (marker checks, listener retries) off stderr: the
    command reports the failure itself, in one line."""
    library = logging.getLogger("sessionstore")
    quiet = logging.NullHandler()
    propagate = library.propagate
    library.addHandler(quiet)
    library.propagate = False
    try:
        yield
    finally:
        library.removeHandler(quiet)
        library.propagate = propagate


# The ``sessions`` options that take a value: the word after one is never an operand.
_SESSIONS_VALUED = frozenset({"--redis-url", "--namespace", "--device", "--limit"})
_SESSIONS_FLAGS = frozenset({"--json", "--all", "-h", "--help"})


def _operands_last(argv: list[str]) -> list[str]:
    """Put a ``sessions`` command's operands (USER, SID) after ``--``, options before.

    A user or session id may begin with '-' (an id is base64url): argparse would take it
    for an unknown option, and an optional SID met before the options is lost. Any word
    that is not one of the command's options is an operand here; a word beginning with
    "--" that is no option stays one, so argparse still names it as unrecognised.
    """
    if len(argv) < 2 or argv[0] != "sessions" or argv[1].startswith("-"):
        return argv
    options: list[str] = []
    operands: list[str] = []
    words = iter(argv[2:])
    for word in words:
        name = word.split("=", 1)[0]
        if word == "--":
            operands.extend(words)
        elif name in _SESSIONS_VALUED and "=" not in word:  # --name=value takes any value
            value = next(words, None)
            options.append(word if value is None else f"{word}={value}")
        elif name in _SESSIONS_VALUED or word in _SESSIONS_FLAGS or word.startswith("--"):
            options.append(word)
        else:
            operands.append(word)
    return [*argv[:2], *options, "--", *operands]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; the exit code (see the module docstring)."""
    words = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(_operands_last(words))
    url = getattr(args, "url", None) or getattr(args, "redis_url", None) or ""
    if args.command == "sessions":
        url = args.url = args.redis_url or _default_url()
    # The one-shot commands report failures themselves; the demo server keeps its logs.
    one_shot = args.command in ("doctor", "sessions")
    quiet = _one_line_errors() if one_shot else contextlib.nullcontext()
    try:
        with quiet:
            return _COMMANDS[args.command](args)
    except Exception as err:
        failure = _failure(err, url)
        if failure is None:
            raise
        code, line = failure
        print(mask_text(f"sessionstore: error: {line}", url), file=sys.stderr)
        return code
