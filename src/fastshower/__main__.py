"""``python -m fastshower``: the command line (see :mod:`fastshower.cli`)."""

from __future__ import annotations

import sys

from fastshower.cli import main

if __name__ == "__main__":
    sys.exit(main())
