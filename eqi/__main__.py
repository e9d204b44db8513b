"""``python -m eqi`` is the ``eqi`` command."""

from eqi.cli import main

main()
