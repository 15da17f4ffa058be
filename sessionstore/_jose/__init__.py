"""JOSE under ``sessionstore.tokens``: the keyring, JWS verification, strict encodings.

Imports nothing of the package but ``sessionstore.errors``, besides the standard library
and the crypto libraries (PyJWT, cryptography): no redis, no other layer
(tests/test_architecture.py).
"""
