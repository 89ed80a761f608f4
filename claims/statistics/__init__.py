"""Statistics for policy: aggregates of the care-sheet ledger by territory, fund, month and care
setting, served without exposing anyone (``operations``: ``MeasureReport/$aggregate`` and
``$fairness``, for the statistics role only).  See docs/statistics.md.
"""
