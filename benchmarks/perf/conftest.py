"""Speed benchmarks (pytest-benchmark). Run: pytest benchmarks/perf --benchmark-only -n 0.

Speed is reported, never asserted: each benchmark records steps/s (and compile time, measured
separately from the steady state) in `extra_info`, so ratios come from one run on one machine.
"""
