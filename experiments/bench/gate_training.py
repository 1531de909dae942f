"""Gates trained toward a budget on synthetic images: a stand-in model for the latency bench."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from tqdm import tqdm

from dualgate_solo.gated.budget import BudgetMultiplier, BudgetOptions
from dualgate_solo.gated.objective import gated_budget
from dualgate_solo.gated.resnet import GatedResNet
from dualgate_solo.synthetic import augment, synthetic_shapes


def train_gates(
    backbone: GatedResNet, steps: int, target_density: float, batch_size: int, seed: int = 0
) -> list[dict]:
    """Train only the gates (and BN statistics) toward kept-MAC ratio ``target_density``; returns
    the per-step log ``[{"step", "ratio", "distill", "budget"}]``.

    Loss: budget loss L_G (deterministic ratio, Lagrange multiplier, linear per-layer bound at
    p = 0.5) + ``1 - cos(gated feats, dense feats)`` with the dense features as a fixed teacher.
    """
    torch.manual_seed(seed)
    images, _ = synthetic_shapes(2048, seed=seed)
    config = BudgetOptions(
        target_density=target_density,
        ratio_source="deterministic",
        multiplier_lr=0.5,
        bound_target="linear",
    )
    multiplier = BudgetMultiplier()
    for name, p in backbone.named_parameters():
        p.requires_grad_(".gate." in name)
    optimizer = torch.optim.Adam([p for p in backbone.parameters() if p.requires_grad], lr=0.02)
    gen = torch.Generator().manual_seed(seed)
    backbone.train()
    log = []
    bar = tqdm(range(steps), desc="gate training", unit="step")
    for step in bar:
        x = augment(images[torch.randint(0, len(images), (batch_size,), generator=gen)], gen)
        with torch.no_grad():
            teacher = backbone.forward_branch(x, "dense").feats
        out = backbone.forward_branch(x, "gated")
        terms = gated_budget(backbone, out, config, p=0.5, multiplier=multiplier.value)
        distill = 1 - F.cosine_similarity(out.feats, teacher, dim=1).mean()
        loss = terms.loss + distill
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        multiplier.update(terms.ratio, config)
        log.append(
            {
                "step": step,
                "ratio": terms.ratio.item(),
                "distill": distill.item(),
                "budget": terms.loss.item(),
            }
        )
        bar.set_postfix(ratio=f"{terms.ratio.item():.3f}", distill=f"{distill.item():.3f}")
    for p in backbone.parameters():
        p.requires_grad_(True)
    return log
