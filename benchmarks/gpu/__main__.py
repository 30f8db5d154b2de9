"""``python -m benchmarks.gpu``: the suite's command line (``benchmarks.gpu.cli``)."""

import sys

from benchmarks.gpu.cli import main

if __name__ == "__main__":
    sys.exit(main())
