"""The benchmark's entry point, from the project root: ``python benchmarks/run.py [--quick]``.

Everything else is in the :mod:`bench` package beside this file: the adapters
(``bench/adapters.py``), the method (``bench/method.py``), the workloads, the
report and the runner. It measures the code of this tree.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from bench.runner import main  # noqa: E402

main()
