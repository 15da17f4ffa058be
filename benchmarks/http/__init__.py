"""End-to-end HTTP benchmarks (``make bench-http``): real servers, a real load generator.

Each row is an app module under ``benchmarks/http/apps/`` holding:

- ``KIND``: ``"asgi"`` (served by uvicorn) or ``"wsgi"`` (gunicorn, gthread worker);
- ``APP``: the application, built at import from the environment variables
  ``BENCH_REDIS_URL`` and ``BENCH_SECRET`` (``benchmarks.http.common.env``; scratch files
  go to ``BENCH_WORK``, the run's temporary directory);
- a route ``GET /me`` that authenticates the request the way that library's users do it
  (``Authorization: Bearer <token>``, or ``CREDENTIAL``) and answers 200, or 4xx to a
  forged token;
- optionally ``CREDENTIAL = (header, prefix)``: how a token rides in a request (the
  Django sessions rows: ``("Cookie", "sessionid=")``; default ``common.BEARER``);
- ``prepare(redis_url, secret, n) -> list[str]``: ``n`` tokens the server accepts (one
  session per user), minted in a process of its own before the server starts.

``benchmarks/http/rows.py`` lists the rows and what is compared with what. A run starts a
private Valkey, one server per row (one worker, free loopback port), and drives each with
``wrk`` (``rotate.lua`` cycles through the row's tokens) in interleaved rounds, in two
regimes: "hot" (8 tokens) and "many" (10,000 distinct sessions). A Django row configures
Django at import (``benchmarks.http.django_site``): one Django row per process.
"""
