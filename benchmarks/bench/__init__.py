"""The benchmark: engine adapters, the measuring method, workloads, the report and a runner.

Run it from the project root: ``python benchmarks/run.py`` (see :mod:`.runner`).
"""
