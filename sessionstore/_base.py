"""Construction shared by ``SessionStore`` and ``AsyncSessionStore``.

The only I/O started here is the shared invalidation listeners of the near cache
(background threads, one per followed server and namespace in a process; see ``_follow``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from sessionstore import _follow
from sessionstore._auth import Auth
from sessionstore._io import check_client
from sessionstore.errors import InvalidInput
from sessionstore.events import EventHook
from sessionstore.models import Config
from sessionstore.tokens import Keyring

__all__ = ["StoreBase"]

S = TypeVar("S", bound="StoreBase")


class StoreBase:
    """Holds the client, the pure core and the ownership flag of both shells.

    A shell adds what is its own through two hooks: ``_new_client`` (the client
    ``from_url`` makes) and ``_start`` (its set-up around the client).
    """

    def __init__(
        self,
        client: Any,
        *,
        keyring: Keyring | None = None,
        config: Config | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        if client is None:
            raise InvalidInput("client must be a Redis client; use from_url() to make one")
        check_client(client)
        self._client = client
        self._core = Auth(Config() if config is None else config, keyring, on_event)
        # Clients the store creates are closed by close(); a user-owned one is left open.
        self._owns_client = False
        self._listener: _follow.Followers | None = None
        cfg = self._core.config
        topology = _follow.topology_of(client)
        try:
            if cfg.near_cache_size and cfg.touch_interval and topology is not None:
                listener = self._listener = _follow.acquire(
                    topology, cfg.namespace, cfg.near_cache_size, cfg.touch_interval
                )
                listener.subscribe(self._core.published, self._core.breaker.expedite)
                self._core.attach(listener.cache, listener.fresh)
            self._start(client)
        except BaseException:
            self._detach()  # a store that failed to start leaves no listener thread behind
            raise

    @classmethod
    def from_url(
        cls: type[S],
        url: str,
        *,
        keyring: Keyring | None = None,
        config: Config | None = None,
        on_event: EventHook | None = None,
        **options: Any,
    ) -> S:
        """A store on a client it creates (and closes): no driver retries, bounded timeouts."""
        config = Config() if config is None else config
        # Nothing to close if the constructor refuses (say, a bad keyring): redis-py's
        # clients connect on first use (a sync cluster client reads the slot map, then
        # lets that connection go).
        store = cls(
            cls._new_client(url, config, options), keyring=keyring, config=config, on_event=on_event
        )
        store._owns_client = True
        return store

    @staticmethod
    def _new_client(url: str, config: Config, options: dict[str, Any]) -> Any:
        """The redis-py client ``from_url`` makes (sync or asyncio: the shell's own)."""
        raise NotImplementedError

    def _start(self, client: Any) -> None:
        """The shell's own set-up around ``client`` (its fast path, its batcher)."""

    def _detach(self) -> None:
        """Give back the shared invalidation listener (the last store stops it)."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.unsubscribe(self._core.published, self._core.breaker.expedite)
            self._core.near = None
            _follow.release(listener)

    @property
    def config(self) -> Config:
        """The store's configuration."""
        return self._core.config

    @property
    def keyring(self) -> Keyring:
        """The store's keyring (raises ``InvalidInput`` when it has none)."""
        return self._core.keyring

    @property
    def client(self) -> Any:
        """The underlying redis-py client."""
        return self._client

    def __repr__(self) -> str:
        return f"{type(self).__name__}(namespace={self.config.namespace!r})"
