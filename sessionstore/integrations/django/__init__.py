"""Django and Django REST framework integration (extra ``[django]``).

Modules, each importable once Django is set up:

- ``conf``: ``settings.SESSIONSTORE`` and the process' stores (made lazily, fork-safe);
- ``middleware``: ``SessionStoreMiddleware`` (WSGI and ASGI; ``request.principal``,
  ``request.user``), ``principal_required``, and a ``SessionMiddleware`` recording devices;
- ``drf``: ``SessionStoreAuthentication``, ``HasPrincipal``, ``NotDegraded``;
- ``drf_views``: ``LoginView``, ``RefreshView``, ``LogoutView``;
- ``tokens``: token sign-in, refresh, sign-out and "sign out my other sessions";
- ``sessions``: the session engine (``SESSION_ENGINE``) storing Django's sessions;
- ``views`` / ``urls``: the public JWK Set at ``/.well-known/jwks.json`` (``jwks_path``);
- ``requests``: the per-request pieces the others share.

This package imports none of them (nor Django): name the one you need.
"""
