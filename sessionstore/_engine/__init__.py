"""The pure logic the shells run: calls, session operations, validation, codecs, policy.

Nothing here does I/O or imports redis: a ``Call`` (``call``) says which command or script
to run and how to read its reply, and ``SessionStore``/``AsyncSessionStore`` run it.
``engine.Engine`` is the object both shells hold: the session operations (``sessions``)
plus the token ones; a validation reads top to bottom in ``validation``. The wire format's
names (hash fields, row slots, script reply codes) are in ``schema``; ``forks`` resets
what a forked child must not share; ``liveness`` what live connections ask of a session
(its time left, when an outage denies). May import
``sessionstore._jose``, ``sessionstore._nearcache.cache`` (pure) and the public data modules
(``errors``, ``models``, ``events``, ``keys``, ``scripts``, ``tokens``); never ``_redis``,
the rest of ``_nearcache``, the shells, ``cli`` or ``testing`` (tests/test_architecture.py).
"""
