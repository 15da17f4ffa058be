"""Forked children for the tests: run a body in a child, read its result or its next word."""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

__all__ = ["expect", "fork", "outcome"]


def fork(body: Callable[[Connection], Any]) -> tuple[int, Connection]:
    """Run ``body(pipe)`` in a forked child; its result (JSON) is the pipe's last message."""
    parent_end, child_end = multiprocessing.Pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 0
        try:
            parent_end.close()
            child_end.send(json.dumps({"result": body(child_end)}))
        except BaseException as err:
            code = 1
            try:
                child_end.send(json.dumps({"error": repr(err)}))
            finally:
                os._exit(code)
        os._exit(code)
    child_end.close()
    return pid, parent_end


def outcome(pid: int, pipe: Connection, seconds: float = 60.0) -> Any:
    """The child's result (its error fails the test); the child is reaped."""
    try:
        if not pipe.poll(seconds):
            os.kill(pid, 9)
            raise AssertionError("the child did not finish")
        message = json.loads(pipe.recv())
    finally:
        os.waitpid(pid, 0)
        pipe.close()
    assert "error" not in message, message["error"]
    return message["result"]


def expect(pipe: Connection, word: str, seconds: float = 30.0) -> Any:
    """The next message of the other side, which must be ``word`` (or its error)."""
    assert pipe.poll(seconds), f"no {word!r} from the other side"
    message = pipe.recv()
    if isinstance(message, str):  # the child's last word: its result, or its error
        raise AssertionError(f"the child ended before {word!r}: {message}")
    assert message[0] == word, message
    return message[1]
