"""``curate report RUN``: one self-contained HTML file about a run.

Run summary, per-stage figures (reason counts, a histogram per declared score with its threshold,
stage summaries), galleries by kind (duplicate clusters, label issues, caption repairs, measured values,
quarantine), review and evaluation results. Charts are Vega-Lite specs built with Altair and drawn by
the Vega runtime inlined from ``vl-convert-python``; thumbnails are inline WebP. The file makes no
network request (a Content-Security-Policy forbids it) and escapes every value from the data.

Modules: :mod:`~curate.report.gather` (reading the run), :mod:`~curate.report.outcome` (fates),
:mod:`~curate.report.stagesection`, :mod:`~curate.report.galleries`, :mod:`~curate.report.review`,
:mod:`~curate.report.evaluation`, :mod:`~curate.report.plots`, :mod:`~curate.report.thumbs`,
:mod:`~curate.report.vega`, :mod:`~curate.report.safety`,
:mod:`~curate.report.render`, :mod:`~curate.report.build`.
"""

from curate.report.build import build_report, default_output

__all__ = ["build_report", "default_output"]
