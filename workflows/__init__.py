"""The jobs people schedule, as thin entry points over :mod:`eqi.pipeline`.

Nothing in ``eqi`` imports this package, and the installed wheel does not contain it: each job is
also an ``eqi`` sub-command (``eqi run``, ``eqi demo``), so cron and clusters need only the wheel.
"""
