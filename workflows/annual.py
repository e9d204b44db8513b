"""The annual assessment job: ``python -m workflows.annual CONFIG [eqi run flags]``.

Exactly ``eqi run CONFIG ...`` (the same exit codes); kept here so the schedulable jobs are listed
in one folder.  Example crontab line: see ``docs/operations.md``.
"""

from __future__ import annotations

import sys

from eqi.cli import main

if __name__ == "__main__":
    main(["run", *sys.argv[1:]])
