"""The offline demo job: ``python -m workflows.demo [--out DIR]`` = ``eqi demo``."""

from __future__ import annotations

import sys

from eqi.cli import main

if __name__ == "__main__":
    main(["demo", *sys.argv[1:]])
