"""Reproducible benchmarks of smem_dask; run ``python -m benchmarks --help`` from the repository root.

Each benchmark runs all its methods in one invocation and writes a markdown table (with the command,
machine and date) and a plot to ``benchmarks/results/``.
"""
