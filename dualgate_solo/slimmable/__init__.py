"""The slimmable family: SlimCLR (over VICReg and MoCo v3) and SACL-XD, whose cheap networks are
plain, narrower ResNets that share the full network's weights.

* :mod:`~.layers`: slimmable convolution and switchable BatchNorm;
* :mod:`~.resnet`: the slimmable ResNet (``slim_resnet18/50``) and :mod:`~.heads`, its heads;
* :mod:`~.options`: the ``method_kwargs`` dataclasses of the three methods;
* :mod:`~.losses` and :mod:`~.objective`: the losses and the framework-free training objectives;
* :mod:`~.probe`: the switchable linear probe over every width (``dualgate-solo slim-linear``);
* :mod:`~.export`: one width as a plain ResNet;
* :mod:`~.solo_methods`: the solo-learn method classes (imports solo-learn; loaded through the
  method registry).

Nothing is imported here, so a submodule loads only what it needs.
"""
