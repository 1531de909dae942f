"""The gated family: VICReg-Dual-Gating (BMVC 2023) and VICReg-Gating (IMVIP 2022), one ResNet whose
residual blocks switch channels off per input, with a dense and a gated branch over the same
convolutions.

* :mod:`~.layers`: the channel and width gates, the gate mode (:class:`~.layers.GateMode`),
  branch-routed BatchNorm and the masked convolution;
* :mod:`~.blocks` and :mod:`~.resnet`: the gated residual blocks and ``GatedResNet``
  (``dg_resnet18/34/50``);
* :mod:`~.budget`: the budget loss L_G and its options; :mod:`~.objective`: the two training
  objectives, framework-free;
* :mod:`~.gate_stats`: per-channel on-rates and the FLOPs ratio over a split;
* :mod:`~.solo_methods`: the solo-learn method classes (imports solo-learn; loaded through the
  method registry).

The deployable executors (prune exports, dynamic, routed) are :mod:`dualgate_solo.export`, shared
with the slimmable family's width export. Nothing is imported here, so a submodule loads only what
it needs.
"""
