"""Everything that talks to a Redis client: error mapping, URLs, the direct path, batching.

``runner`` runs a ``Call``'s command or script (EVALSHA, then EVAL after NOSCRIPT) in its
sync, async and pipelined forms; the direct path re-sends by the same rule.

The only package that touches redis-py's internals (``redispy``, behind a version gate).
May import ``sessionstore._engine`` (the calls it runs) and the public data modules; never
``_nearcache``, the shells, ``cli`` or ``testing`` (tests/test_architecture.py).
"""
