"""What a forked child resets: live objects of a kind, each by that kind's reset.

A store made before ``fork()`` (gunicorn ``--preload``, Celery prefork) is used in every
child; the child must not touch its parent's sockets or trust a lock a parent thread held.
Each kind makes one ``AfterFork`` with its reset and adds its objects as they are made.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["AfterFork"]

T = TypeVar("T")


class AfterFork(Generic[T]):
    """The live objects of one kind, and the reset each gets in a forked child."""

    def __init__(self, reset: Callable[[T], None]) -> None:
        self._live: weakref.WeakSet[T] = weakref.WeakSet()
        self._reset = reset
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._in_child)

    def add(self, obj: T) -> None:
        """Reset ``obj`` in every child forked while it lives."""
        self._live.add(obj)

    def _in_child(self) -> None:
        for obj in list(self._live):
            self._reset(obj)
