"""Benchmarks: ``python -m ops.bench overhead`` and ``python -m ops.bench throughput``.

Each prints its figures beside a baseline measured in the same run, because this machine is
shared and noisy: compare ratios, not absolute numbers between runs.
"""
