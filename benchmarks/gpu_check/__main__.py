"""``python3 -m benchmarks.gpu_check``: see :mod:`benchmarks.gpu_check`."""

import sys
from pathlib import Path

if not __package__:  # run as a folder (python3 benchmarks/gpu_check): the repository on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.gpu_check.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
