"""One module per benchmarked row (the contract is in ``benchmarks/http/__init__.py``)."""
