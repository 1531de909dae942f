"""Per-image MACs of each network a grid run trained, from its ``args.json``.

Dense and slimmable networks cost the same for every image: one forward pass on zeros at the
evaluation size counts them (convolutions only, one multiply-add = one MAC). A gated branch's
cost depends on the image; the grid's cost report measures it (the table multiplies the dense
MACs by its FLOPs ratio).
"""

from __future__ import annotations

import json
from pathlib import Path

from dualgate_solo.choices import DATASET_INPUT_SIZES
from dualgate_solo.method_registry import label_width
from dualgate_solo.models import BACKBONES, GatedResNet, create_backbone


def network_macs(args_json: Path, networks: tuple[str, ...], dataset: str) -> dict[str, int]:
    """``{"macs_<network>": MACs}`` of every network but a gated branch at ``dataset``'s size;
    ``{}`` for a backbone of solo-learn's own (e.g. ``resnet18``), which this package does not
    build."""
    backbone_cfg = json.loads(Path(args_json).read_text())["backbone"]
    if backbone_cfg["name"] not in BACKBONES:
        return {}
    backbone = create_backbone(backbone_cfg["name"], **backbone_cfg.get("kwargs", {}))
    size = DATASET_INPUT_SIZES[dataset]
    if isinstance(backbone, GatedResNet):
        return {"macs_dense": backbone.cost_table((size, size)).dense_macs}
    return {f"macs_{n}": backbone.macs_at(label_width(n), (size, size)) for n in networks}
