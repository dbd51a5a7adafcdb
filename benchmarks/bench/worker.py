"""One turn of a workload in a fresh process: ``python -m bench.worker`` (see :mod:`.workloads`)."""

from .workloads import main

main()
