"""From experiment folders to the figures and tables of a pruning paper.

- :mod:`analysis.results`: result files -> one tidy DataFrame (``load``, ``save``,
  ``rows_from_metrics``, ``layer_frame``); no running Ray needed.
- :mod:`analysis.aggregate`: aggregation over seeds, method variant labels, speed-up vs IMP.
- :mod:`analysis.plots`: the figures (matplotlib, PNG and PDF).
- :mod:`analysis.tables`: report tables in Markdown and LaTeX.
- :mod:`analysis.report`: ``write_report`` behind ``drive-sweep report``.

Nothing here imports Ray or :mod:`sweeps`.
"""
