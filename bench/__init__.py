"""Benchmarks of the Vitals pipeline and their recorded results (not part of the test run).

Run from the repo root, e.g. ``python -m bench.e2e --quick``; results are appended to
``bench/results.md``.
"""
