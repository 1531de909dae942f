"""Start-up shim: run solo-learn's CUDA-hard-coded main_knn.py / main_umap.py on a CPU.

Put this directory on PYTHONPATH; Python imports ``sitecustomize`` at start-up. It maps
``.cuda()`` and ``"cuda..."`` devices to the CPU, and, when ``DUALGATE_HOOK_DIR`` is set, processes
that directory's ``.pth`` files (the package's real start-up hook) as site-packages would.
Used by the grid runner's ``--cpu`` and the integration tests; a GPU machine needs no shim.
"""

import os
import site

import torch

if hook_dir := os.environ.get("DUALGATE_HOOK_DIR"):
    site.addsitedir(hook_dir)


def _cpu(device):
    return "cpu" if str(device).startswith("cuda") else device


def _tensor_to(self, *args, _original=torch.Tensor.to, **kwargs):
    args = tuple(_cpu(a) if isinstance(a, (str, torch.device)) else a for a in args)
    if "device" in kwargs:
        kwargs["device"] = _cpu(kwargs["device"])
    return _original(self, *args, **kwargs)


def _module_to(self, *args, _original=torch.nn.Module.to, **kwargs):
    args = tuple(_cpu(a) if isinstance(a, (str, torch.device)) else a for a in args)
    if "device" in kwargs:
        kwargs["device"] = _cpu(kwargs["device"])
    return _original(self, *args, **kwargs)


torch.Tensor.cuda = lambda self, *args, **kwargs: self
torch.nn.Module.cuda = lambda self, *args, **kwargs: self
torch.Tensor.to = _tensor_to
torch.nn.Module.to = _module_to
