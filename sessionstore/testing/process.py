"""The ``with`` protocol shared by the local topologies of ``sessionstore.testing``."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

__all__ = ["Started"]

S = TypeVar("S", bound="Started")


class Started:
    """Something that starts processes and stops them by pid: ``with X(...) as x:``."""

    def start(self: S) -> S:
        """Start every process; return self."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop every process this object started."""
        raise NotImplementedError

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
