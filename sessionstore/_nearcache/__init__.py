"""The near cache, the connections that keep it honest, and which servers they follow.

``cache`` is pure (the engine reads it on every validation); ``listener`` and ``follow``
hold invalidation connections, spoken in plain RESP (``sessionstore._redis.resp``), each
watched by a ``worker.Worker`` thread; ``topology`` says where a client's data lives;
``watch`` tells code waiting on given sessions (live connections) what the listeners hear. May
import ``sessionstore._redis`` and the public data modules; never ``_engine``, the shells,
``cli`` or ``testing`` (tests/test_architecture.py).
"""
