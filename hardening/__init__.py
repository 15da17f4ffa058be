"""Hardening runs: races and faults against real servers, with figures (``make hardening``)."""
