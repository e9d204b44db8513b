"""Benchmarks of eqi against plain baselines, each side in a fresh subprocess (``make bench``).

``python -m bench`` runs every case, checks that eqi and the baseline give the same result,
merges the rows into ``bench/results.json`` and prints a table.  See :mod:`bench.harness`.
"""
