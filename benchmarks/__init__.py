"""Benchmarks of sessionstore against real servers this package starts itself.

Run ``python -m benchmarks`` (or ``make bench``); ``--quick`` is a short smoke run. Rows that
are compared run as interleaved rounds on the same server in the same run, and the report
gives medians of the per-round figures, never a single timing. See ``__main__`` for options.
"""
