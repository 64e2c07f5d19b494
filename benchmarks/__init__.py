"""Performance measurements of the training path, masks, pruning cost, Ray and result loading.

Not part of the test run: ``make bench`` (``python -m benchmarks.run_all``) runs them all, and
each module runs alone as ``python -m benchmarks.bench_<name> --help``. Every benchmark prints
the machine it ran on and ratios measured side by side in the same process, which are far less
sensitive to a busy machine than absolute numbers. docs/benchmarks.md holds the figures.
"""
