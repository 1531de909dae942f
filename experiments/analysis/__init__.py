"""Analyses of trained runs that write CSV/JSON (+ plot) under ``results/``; thin entry points in
``scripts/``.

* :mod:`~.gradient_shares`: the exact split of a Dual-Gating step's gradient into its loss paths
  (gated and dense side of the cross term, the dense pair, the budget) per parameter group;
* :mod:`~.gradient_share_report`: those shares for trained runs and at initialisation
  (``scripts/gradient_shares.py``).
"""
