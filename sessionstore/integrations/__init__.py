"""Web framework integrations: ``starlette`` (Starlette and FastAPI), ``flask``, ``litestar``
and ``django`` (with Django REST framework and a session engine).

Each reads an ``Authorization: Bearer`` header or an HttpOnly cookie, validates it with the
request's client IP and User-Agent (for ``Config.device_binding``), and answers failures
the RFC 6750 way. Import the submodule of your framework; this package imports none of them.
"""

from sessionstore.integrations._http import AuthState, Cookie, CookieSettings, Reply

__all__ = ["AuthState", "Cookie", "CookieSettings", "Reply"]
