"""JOSE under ``sessionstore.tokens``: the keyring, JWS verification, strict encodings.

Imports nothing but ``sessionstore.errors`` and the standard library plus the crypto
libraries (PyJWT, cryptography): no redis, no other layer of the package.
"""
