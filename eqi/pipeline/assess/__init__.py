"""Project-scale impact assessment (``eqi assess``, spec §4.5): config, geometry, run."""
