"""Measurements that write CSV/JSON (+ plot) under ``results/``; thin entry points in ``scripts/``.

* :mod:`~.latency`: wall-clock latency of the gated ResNet-18 and its exports
  (``scripts/bench_latency.py``), with :mod:`~.timing`, :mod:`~.gate_training` and
  :mod:`~.latency_report`;
* :mod:`~.step`: training-step time and memory, Dual-Gating vs solo-learn's VICReg
  (``scripts/bench_step.py``);
* :mod:`~.export_accuracy`: k-NN accuracy of the exports vs the gated branch
  (``scripts/export_accuracy.py``).
"""
