"""The gated ResNet: branch equivalence, gradient routing, state dicts, contracts."""

from __future__ import annotations

import io

import pytest
import timm
import torch
from model_utils import copy_dense_bn_to_gated, open_all_gates

from dualgate_solo.gated.layers import DualBatchNorm
from dualgate_solo.models import DUAL_BN_SCOPES, GatedResNet, create_backbone

SMALL = (2, 3, 32, 32)


def _gate_params(model: GatedResNet) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if ".gate." in n}


def _bn_params(model: GatedResNet, copy: str) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if f".{copy}." in n}


@pytest.mark.parametrize("name", ["dg_resnet18", "dg_resnet50"])
@pytest.mark.parametrize("scope", ["block", "backbone"])
def test_all_gates_on_and_equal_bn_gives_dense_features(name: str, scope: str) -> None:
    model = create_backbone(name, stem="cifar", dual_bn_scope=scope)
    # give the BNs non-trivial statistics first, so the copy matters
    model.train()
    model.forward_branch(torch.randn(8, 3, 32, 32), "dense")
    open_all_gates(copy_dense_bn_to_gated(model)).eval()
    x = torch.randn(*SMALL)
    dual = model.forward_dual(x)
    torch.testing.assert_close(dual.gated.feats, dual.dense.feats, rtol=0, atol=0)
    costs = dual.gated.costs
    expected_ratio = 1 + costs.gate_macs / costs.dense_macs
    torch.testing.assert_close(
        dual.gated.ratio, torch.full((2,), expected_ratio, dtype=torch.float64)
    )
    torch.testing.assert_close(dual.dense.ratio, torch.ones(2, dtype=torch.float64))


def test_eval_masks_are_deterministic_and_binary(r18_cifar) -> None:
    r18_cifar.eval()
    x = torch.randn(*SMALL)
    first = r18_cifar.forward_branch(x, "gated")
    second = r18_cifar.forward_branch(x, "gated")
    for a, b in zip(first.masks, second.masks):
        assert torch.equal(a, b)
        assert set(a.unique().tolist()) <= {0.0, 1.0}
        assert not a.requires_grad
    assert len(first.masks) == 8
    assert [m.shape[1] for m in first.masks] == [64, 64, 128, 128, 256, 256, 512, 512]
    torch.testing.assert_close(first.feats, second.feats, rtol=0, atol=0)


def test_training_masks_are_binary_with_nonzero_logit_gradients(r18_cifar) -> None:
    r18_cifar.train()
    out = r18_cifar.forward_branch(torch.randn(4, 3, 32, 32), "gated")
    for mask in out.masks:
        assert set(mask.detach().unique().tolist()) == {0.0, 1.0}
    out.ratio.mean().backward()
    for _, block in r18_cifar.named_blocks():
        grad = block.gate.expand.weight.grad
        assert grad is not None and grad.abs().sum() > 0


def test_training_gates_are_stochastic(r18_cifar) -> None:
    r18_cifar.train()
    x = torch.randn(*SMALL)
    a = r18_cifar.forward_branch(x, "gated").masks[0]
    b = r18_cifar.forward_branch(x, "gated").masks[0]
    assert not torch.equal(a, b)


def test_dense_backward_leaves_gates_and_gated_bn_without_grad(r18_cifar) -> None:
    r18_cifar.forward_branch(torch.randn(*SMALL), "dense").feats.sum().backward()
    assert all(p.grad is None for p in _gate_params(r18_cifar).values())
    assert all(p.grad is None for p in _bn_params(r18_cifar, "gated").values())
    assert all(p.grad is not None for p in _bn_params(r18_cifar, "dense").values())


def test_gated_backward_leaves_dense_bn_without_grad(r18_cifar) -> None:
    r18_cifar.forward_branch(torch.randn(*SMALL), "gated").feats.sum().backward()
    assert all(p.grad is None for p in _bn_params(r18_cifar, "dense").values())
    assert all(p.grad is not None for p in _gate_params(r18_cifar).values())


@pytest.mark.parametrize("name", ["dg_resnet18", "dg_resnet34", "dg_resnet50"])
@pytest.mark.parametrize("scope", DUAL_BN_SCOPES)
def test_both_branches_give_every_parameter_a_gradient(name: str, scope: str) -> None:
    model = create_backbone(name, stem="cifar", dual_bn_scope=scope)
    dual = model.forward_dual(torch.randn(*SMALL))
    (dual.dense.feats.sum() + dual.gated.feats.sum() + dual.gated.ratio.sum()).backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert missing == []


def test_dual_bn_scope_controls_which_norms_are_dual() -> None:
    def dual_names(scope: str) -> set[str]:
        model = create_backbone("dg_resnet18", dual_bn_scope=scope)
        return {n for n, m in model.named_modules() if isinstance(m, DualBatchNorm)}

    assert dual_names("none") == set()
    block = dual_names("block")
    assert len(block) == 16 and all(n.endswith(("bn1", "bn2")) and "layer" in n for n in block)
    wider = dual_names("backbone")
    assert wider - block == {
        "bn1",
        "layer2.0.downsample.bn",
        "layer3.0.downsample.bn",
        "layer4.0.downsample.bn",
    }
    assert dual_names("all") == wider


def test_dual_bn_only_updates_the_running_stats_of_the_branch_that_ran(r18_cifar) -> None:
    bn = r18_cifar.layer1[0].bn1
    dense_before = bn.dense.running_mean.clone()
    gated_before = bn.gated.running_mean.clone()
    r18_cifar.train().forward_branch(torch.randn(*SMALL), "dense")
    assert not torch.equal(bn.dense.running_mean, dense_before)
    assert torch.equal(bn.gated.running_mean, gated_before)


def test_routing_survives_sync_batchnorm_conversion(r18_cifar) -> None:
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(r18_cifar)
    bn = converted.layer1[0].bn1
    assert isinstance(bn, DualBatchNorm)
    assert isinstance(bn.dense, torch.nn.SyncBatchNorm) and isinstance(
        bn.gated, torch.nn.SyncBatchNorm
    )


@pytest.mark.parametrize("source, target", [("dense", "gated"), ("gated", "dense")])
def test_state_dict_loads_strictly_across_branches_with_weights_only(
    source: str, target: str
) -> None:
    saved = create_backbone("dg_resnet18", branch=source)
    buffer = io.BytesIO()
    torch.save(saved.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    loaded = create_backbone("dg_resnet18", branch=target)
    assert loaded.load_state_dict(state, strict=True).missing_keys == []
    x = torch.randn(*SMALL)
    saved.eval(), loaded.eval()
    torch.testing.assert_close(loaded.forward_branch(x, source).feats, saved(x))


def test_forward_returns_one_feature_tensor_per_branch(r18_cifar) -> None:
    x = torch.randn(*SMALL)
    r18_cifar.eval()
    for branch in ("dense", "gated"):
        r18_cifar.branch = branch
        feats = r18_cifar(x)
        assert isinstance(feats, torch.Tensor) and feats.shape == (2, r18_cifar.num_features)
    assert create_backbone("dg_resnet50").num_features == 2048
    assert not hasattr(r18_cifar, "inplanes")


def test_channels_last_inputs_work(r18_cifar) -> None:
    model = r18_cifar.to(memory_format=torch.channels_last).eval()
    x = torch.randn(*SMALL).to(memory_format=torch.channels_last)
    reference = model.forward_branch(x.contiguous(), "gated").feats
    torch.testing.assert_close(model.forward_branch(x, "gated").feats, reference)


def test_timm_create_model_builds_registered_backbones() -> None:
    model = timm.create_model("dg_resnet34", stem="imagenet", branch="gated")
    assert isinstance(model, GatedResNet) and model.depth == 34 and model.branch == "gated"
    assert {"dg_resnet18", "dg_resnet34", "dg_resnet50"} <= set(timm.list_models("dg_resnet*"))
    with pytest.raises(ValueError, match="pretrained"):
        timm.create_model("dg_resnet18", pretrained=True)


def test_mixed_precision_gates_are_float32(r18_cifar) -> None:
    r18_cifar.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = r18_cifar.forward_branch(torch.randn(*SMALL), "gated")
    assert all(m.dtype == torch.float32 for m in out.masks)
    assert torch.isfinite(out.ratio).all()


def test_trained_steps_count_only_training_passes_with_grad(r18_cifar) -> None:
    x = torch.randn(*SMALL)
    r18_cifar.train()
    r18_cifar.forward_branch(x, "gated")
    r18_cifar.forward_branch(x, "gated")
    with torch.no_grad():
        r18_cifar.forward_branch(x, "dense")
    r18_cifar.eval()
    r18_cifar.forward_branch(x, "dense")
    assert r18_cifar.trained_steps.tolist() == [0, 2]


@pytest.mark.parametrize(
    "source",
    [
        lambda: __import__("torchvision").models.resnet18().state_dict(),
        lambda: create_backbone("dg_resnet18", dual_bn_scope="backbone").state_dict(),
        lambda: create_backbone("dg_resnet34").state_dict(),
    ],
    ids=["torchvision-resnet18", "other-dual-bn-scope", "other-depth"],
)
def test_non_strict_load_of_another_architecture_raises(source) -> None:
    """solo-learn's main_linear loads with strict=False: that must not keep random weights."""
    model = create_backbone("dg_resnet18")
    with pytest.raises(
        (ValueError, RuntimeError), match="does not match the backbone|size mismatch"
    ):
        model.load_state_dict(source(), strict=False)


def test_non_strict_load_under_a_prefix_checks_only_that_prefix() -> None:
    wrapper = torch.nn.Module()
    wrapper.backbone = create_backbone("dg_resnet18")
    wrapper.head = torch.nn.Linear(2, 2)
    state = wrapper.state_dict()
    wrapper.load_state_dict(state, strict=False)  # the full, matching dict loads
    del state["backbone.layer4.1.conv2.weight"]
    with pytest.raises(
        ValueError,
        match=r"1 of its \d+ keys are missing \(e.g. \['backbone.layer4.1.conv2.weight'\]\)",
    ):
        wrapper.load_state_dict(state, strict=False)


def test_loading_an_untrained_branch_raises_naming_the_trained_one() -> None:
    trained = create_backbone("dg_resnet18", dual_bn_scope="none").train()
    trained.forward_branch(torch.randn(*SMALL), "gated")  # a VICReg-Gating run: gated passes only
    state = trained.state_dict()
    create_backbone("dg_resnet18", dual_bn_scope="none", branch="gated").load_state_dict(state)
    with pytest.raises(
        ValueError, match="branch='dense' was never trained .*allowed values: gated"
    ):
        create_backbone("dg_resnet18", dual_bn_scope="none", branch="dense").load_state_dict(
            state, strict=False
        )
