"""Reports and overviews people open, built from the finished outputs of a run (issue 10).

``build_reports(OUT)`` writes ``OUT/reports/`` (HTML + PDF, Chinese by default, English on
request); nothing here computes a product.  See :mod:`eqi.report.build`.
"""

from eqi.report.build import Built, ReportFile, build_reports

__all__ = ["build_reports", "Built", "ReportFile"]
