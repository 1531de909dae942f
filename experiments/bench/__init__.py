"""Measurements that write CSV/JSON (+ plot) under ``results/``; thin entry points in ``scripts/``.

* :mod:`~.latency`: wall-clock latency of a gated ResNet and its exports side by side
  (``scripts/bench_latency.py``), with the variant registry :mod:`~.variants`, :mod:`~.timing`,
  :mod:`~.gate_training`, :mod:`~.latency_report` and the per-block report :mod:`~.block_report`;
* :mod:`~.family`: latency, MACs and accuracy of every deployable network of a grid's runs (gated,
  slimmable, dense), the accuracy-vs-cost decision figure (``scripts/bench_family.py``);
* :mod:`~.step`: training-step time and memory of Dual-Gating, the slimmable methods and
  solo-learn's VICReg (``scripts/bench_step.py``);
* :mod:`~.export_accuracy`: k-NN accuracy of the exports vs the gated branch
  (``scripts/export_accuracy.py``).
"""
