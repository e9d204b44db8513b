"""The project impact assessment job: ``python -m workflows.assess CONFIG [--project NAME]``.

Exactly ``eqi assess CONFIG ...`` (the same exit codes), listed with the other schedulable jobs.
"""

from __future__ import annotations

import sys

from eqi.cli import main

if __name__ == "__main__":
    main(["assess", *sys.argv[1:]])
