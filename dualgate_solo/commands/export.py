"""``dualgate-solo export``: a trained checkpoint -> a physically smaller, deployable network.

A slimmable checkpoint (``slimclr_vicreg``, ``slimclr_mocov3``, ``sacl_xd``) exports one width,
``--width-mult`` (default: the run's ``backbone.kwargs.width_mult``, i.e. SACL-XD's slim network),
as a plain ResNet with that width's channels and BatchNorms
(:func:`dualgate_solo.slimmable.export.export_width`), in the same files. A gated checkpoint:

Gate statistics of the gated branch over an image split (or the embedded synthetic images, drawn
at the checkpoint's input size), a ``static`` or ``hybrid`` prune plan, the pruned network with the
gated branch's weights, optional BN re-calibration, and the files of
:func:`dualgate_solo.export.save_export` (``weights.pt`` + ``spec.json``, ``model.ts``,
``model.onnx``, ``plan.json``) plus ``export_summary.json`` in ``--out``. Prints the kept inner
widths per block and the MACs of the exported network.

A width-gated checkpoint (``gate_mode: width``) exports its routed executor instead: ``model.ts``
(TorchScript of :class:`dualgate_solo.export.RoutedResNet`) and ``model.onnx`` (one graph with
``If`` nodes, :mod:`dualgate_solo.export.routed_onnx`, calibrated on the images so each block tests
its frequent width first); ``--policy`` and the thresholds do not apply. Prints each block's share
of inputs per width and the mean MACs the gated branch runs.

Before any file is written, the export is checked on the calibration images against what it
claims to reproduce (:mod:`dualgate_solo.export.verify`: the masked gated branch, features and
width choices, or for a static approximation its own pruned network); a mismatch is one line,
exit 2. ``export_summary.json`` records the check under ``verification``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dualgate_solo.checkpoint_path import find_checkpoint, run_args
from dualgate_solo.choices import EXPORT_FORMATS, ONNX_EXPORTERS, POLICIES, SLIM_BACKBONE_DEPTHS
from dualgate_solo.commands.options import (
    add_checkpoint_options,
    add_data_options,
    add_loader_options,
    add_output_options,
    fraction,
    integer,
)
from dualgate_solo.output_dir import StagedOutput, interrupts_deferred, staged_output
from dualgate_solo.validation import UsageError

#: options a slimmable checkpoint's export does not read: it exports one width as it is
SLIM_IGNORES = (
    "backbone",
    "stem",
    "width",
    "data",
    "skip_unreadable",
    "synthetic_size",
    "batch_size",
    "num_workers",
    "max_batches",
    "policy",
    "off_threshold",
    "on_threshold",
    "recalibrate_batches",
)
#: options a width-gated checkpoint's routed export does not read
ROUTED_IGNORES = ("policy", "off_threshold", "on_threshold", "recalibrate_batches", "onnx_exporter")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_checkpoint_options(parser)
    add_data_options(parser, data_default="--synthetic-size embedded synthetic images")
    parser.add_argument(
        "--synthetic-size",
        type=integer(1),
        default=512,
        help="synthetic images when --data is not given (drawn at the --dataset input size)",
    )
    add_loader_options(parser, batch_size=128)
    parser.add_argument(
        "--max-batches",
        type=integer(1),
        default=None,
        help="stop the gate statistics after this many batches",
    )
    parser.add_argument(
        "--width-mult",
        type=float,
        default=None,
        help="slimmable checkpoints: the width to export (default: the run's width_mult)",
    )
    parser.add_argument("--policy", choices=POLICIES, default="static", help="prune policy")
    parser.add_argument(
        "--off-threshold", type=fraction, default=0.0, help="drop channels with on-rate <= this"
    )
    parser.add_argument(
        "--on-threshold",
        type=fraction,
        default=1.0,
        help="hybrid: channels with on-rate >= this run without a gate",
    )
    parser.add_argument(
        "--recalibrate-batches",
        type=integer(0),
        default=0,
        help="re-estimate BN statistics on this many batches (0: keep the gated branch's)",
    )
    parser.add_argument(
        "--formats",
        nargs="+",
        choices=EXPORT_FORMATS,
        default=list(EXPORT_FORMATS),
        help="files to write",
    )
    parser.add_argument(
        "--onnx-exporter", choices=ONNX_EXPORTERS, default="dynamo", help="ONNX back end"
    )
    add_output_options(parser, "outputs/export", "output directory")


def refuse_inapplicable(
    args: argparse.Namespace, dests: Iterable[str], where: str, why: str
) -> None:
    """``UsageError`` for the first option of ``dests`` given another value than its default:
    it does not apply ``where`` (e.g. ``"with --data"``; ``why``) and would be ignored in
    silence."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    for dest in dests:
        value, default = getattr(args, dest), parser.get_default(dest)
        if value != default:
            shown = repr(str(value)) if isinstance(value, Path) else repr(value)
            allowed = "leave it out" if default is None or default is False else repr(default)
            raise UsageError(
                f"--{dest.replace('_', '-')}={shown} is invalid {where}; allowed values: "
                f"{allowed} ({why})"
            )


def _checkpoint_kind(args: argparse.Namespace, kind: str) -> str:
    """Where an option is refused: ``for '<checkpoint>', a <kind> checkpoint``."""
    return f"for {str(args.checkpoint)!r}, a {kind} checkpoint"


def _batches(args: argparse.Namespace, dataset: str, num_classes: int | None) -> Iterable:
    """Synthetic image batches ``[B, 3, S, S]`` (a list), or a loader over ``--data``."""
    from dualgate_solo.choices import DATASET_INPUT_SIZES
    from dualgate_solo.reports.eval_data import image_folder_split, loader

    if args.data is None:
        from dualgate_solo.synthetic import synthetic_shapes

        size = DATASET_INPUT_SIZES[dataset]
        images, _ = synthetic_shapes(args.synthetic_size, seed=12345, size=size)
        return list(images.split(args.batch_size))
    split = image_folder_split(args.data, dataset, num_classes, args.skip_unreadable)
    return loader(split, args.batch_size, args.num_workers)


def _is_slimmable(checkpoint: Path) -> bool:
    """Whether ``checkpoint``'s ``args.json`` names a slimmable backbone (torch-free: a wrong
    path fails here at once)."""
    backbone = run_args(find_checkpoint(checkpoint)).get("backbone") or {}
    return backbone.get("name") in SLIM_BACKBONE_DEPTHS


def _export_width(args: argparse.Namespace, stage: StagedOutput) -> dict:
    """One width of a slimmable checkpoint as a plain network, written like a pruned export."""
    with interrupts_deferred():  # a Ctrl-C inside an import leaves it half done
        import json

        import torch

        from dualgate_solo.checkpoint import load_slim_backbone
        from dualgate_solo.choices import DATASET_INPUT_SIZES
        from dualgate_solo.export import save_export
        from dualgate_solo.provenance import provenance
        from dualgate_solo.reports.eval_data import evaluation_dataset
        from dualgate_solo.slimmable.export import export_width
        from dualgate_solo.slimmable.layers import check_width

    loaded = load_slim_backbone(args.checkpoint)
    backbone = loaded.backbone
    width = backbone.width_mult
    if args.width_mult is not None:
        width = check_width("--width-mult", args.width_mult, backbone.widths)
    dataset, source = evaluation_dataset(args.dataset, loaded.args, loaded.path)
    size = DATASET_INPUT_SIZES[dataset]
    model = export_width(backbone, width)
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    files = save_export(model, stage.path, example, args.formats, onnx_exporter=args.onnx_exporter)
    files = stage.relocate(files)
    summary = {
        **provenance(),
        "checkpoint": str(loaded.path),
        "method": loaded.method,
        "width_mult": width,
        "dataset": dataset,
        "dataset_source": source,
        "input_hw": [size, size],
        "full_macs": backbone.macs_at(1.0, (size, size)),
        "exported_macs": backbone.macs_at(width, (size, size)),
        "features": backbone.features_at(width),
        "files": files,
    }
    (stage.path / "export_summary.json").write_text(json.dumps(summary, indent=2))
    print(
        f"width {width:g} of {loaded.method} at {size}x{size} px: {summary['exported_macs']:,} "
        f"MACs vs {summary['full_macs']:,} at full width, {summary['features']} features "
        f"-> {args.out}"
    )
    return summary


def _export_routed(
    args: argparse.Namespace, stage: StagedOutput, loaded, dataset: str, source: str, batches
) -> dict:
    """A width-gated checkpoint as its routed executor: ``model.ts`` (TorchScript of
    :class:`~dualgate_solo.export.RoutedResNet`) and ``model.onnx`` (its ``If`` graph,
    :mod:`dualgate_solo.export.routed_onnx`), each first verified against the masked gated
    branch (:func:`~dualgate_solo.export.verify.verify_routed_export`); the mean executed MACs
    and every block's choice frequencies over the images."""
    import itertools
    import json
    import warnings

    import torch

    from dualgate_solo.export import RoutedResNet
    from dualgate_solo.export.routed_onnx import export_routed_onnx
    from dualgate_solo.export.verify import verify_routed_export
    from dualgate_solo.provenance import provenance

    refuse_inapplicable(
        args,
        ROUTED_IGNORES,
        _checkpoint_kind(args, "width-gated"),
        "it exports the routed network, which keeps the gated branch's widths and BatchNorms",
    )
    if set(args.formats) == {"state_dict"}:
        raise UsageError(
            f"--formats=['state_dict'] is invalid for {str(args.checkpoint)!r}, a width-gated "
            "checkpoint, whose routed network has no state dict of its own; allowed values: "
            "torchscript, onnx"
        )
    routed = RoutedResNet(loaded.backbone)
    folder = stage.path
    files, macs, samples = {}, 0, 0
    with torch.no_grad():
        for batch in itertools.islice(batches, args.max_batches):
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            out = loaded.backbone.forward_branch(x, "gated")
            macs, samples = macs + int(out.macs.sum()), samples + x.shape[0]
            dense_macs, input_hw = int(out.costs.dense_macs), list(x.shape[-2:])
            routed.count_choices(x)  # the ONNX graph tests each block's frequent width first
    # every format against the masked gated branch, features and choices, before writing
    verification = verify_routed_export(
        loaded.backbone, routed, batches, args.max_batches, args.formats
    )
    if "torchscript" in args.formats:
        with warnings.catch_warnings():  # torch.jit.script's deprecation notice
            warnings.simplefilter("ignore", FutureWarning)
            torch.jit.script(routed).save(str(folder / "model.ts"))
        files["torchscript"] = str(args.out / "model.ts")
    if "onnx" in args.formats:
        export_routed_onnx(routed, folder / "model.onnx")
        files["onnx"] = str(args.out / "model.onnx")
    if "state_dict" in args.formats:
        files["state_dict"] = (
            "not written: a routed network is rebuilt from the checkpoint "
            "(dualgate_solo.checkpoint.load_backbone, then dualgate_solo.export.RoutedResNet)"
        )
    summary = {
        **provenance(),
        "checkpoint": str(loaded.path),
        "method": loaded.method,
        "policy": "routed (gate_mode width: each input runs its chosen widths)",
        "data": str(args.data) if args.data else f"synthetic ({args.synthetic_size} images)",
        "dataset": dataset,
        "dataset_source": source,
        "num_samples": samples,
        "input_hw": input_hw,
        "dense_macs": dense_macs,
        "gated_branch_mean_macs": macs / max(samples, 1),
        "extra_parameter_bytes": routed.extra_parameter_bytes,
        "blocks": [
            {"block": name, "widths": widths, "choice_frequency": shares}
            for name, widths, shares in zip(
                routed.block_names, routed.widths, routed.choice_frequency()
            )
        ],
        "files": files,
        "verification": verification,
    }
    (folder / "export_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{'block':10} {'widths':>22} {'share of inputs per width':>30}")
    for b in summary["blocks"]:
        shares = " ".join(f"{f:.2f}" for f in b["choice_frequency"])
        print(f"{b['block']:10} {str(b['widths']):>22} {shares:>30}")
    print(
        f"routed export at {input_hw[0]}x{input_hw[1]} px ({dataset}, from {source}): gated "
        f"branch mean {summary['gated_branch_mean_macs']:,.0f} MACs per image vs "
        f"{dense_macs:,} dense over {samples} images, "
        f"{routed.extra_parameter_bytes:,} extra bytes of pre-sliced weights -> {args.out}"
    )
    return summary


def run(args: argparse.Namespace) -> dict:
    """Check the options against the checkpoint (torch-free where the path decides), then export
    into a staged ``--out`` that is moved into place once every file is written."""
    if args.off_threshold >= args.on_threshold:
        raise UsageError(
            f"--off-threshold={args.off_threshold} is invalid with --on-threshold="
            f"{args.on_threshold}; allowed values: --off-threshold < --on-threshold"
        )
    if args.data is None:
        refuse_inapplicable(args, ["skip_unreadable"], "without --data", "no files are read")
    else:
        refuse_inapplicable(args, ["synthetic_size"], "with --data", "--data's images are used")
    slimmable = _is_slimmable(args.checkpoint)
    if slimmable:
        refuse_inapplicable(
            args,
            SLIM_IGNORES,
            _checkpoint_kind(args, "slimmable"),
            "it exports one width of the slimmable network as is",
        )
    elif args.width_mult is not None:
        raise UsageError(
            f"--width-mult={args.width_mult:g} is invalid for {str(args.checkpoint)!r}, a gated "
            "checkpoint; allowed values: omit it (it selects a width of a slimmable checkpoint)"
        )
    with staged_output(args.out, overwrite=args.overwrite) as stage:
        return _export_width(args, stage) if slimmable else _export_gated(args, stage)


def _export_gated(args: argparse.Namespace, stage: StagedOutput) -> dict[str, Any]:
    """A gated checkpoint: the routed network of a width-gated one (:func:`_export_routed`), else
    the pruned network of the ``--policy`` plan."""
    with interrupts_deferred():  # a Ctrl-C inside an import leaves it half done
        import json

        import torch

        from dualgate_solo.commands.options import open_checkpoint
        from dualgate_solo.export import export_pruned, make_plan, recalibrate_bn, save_export
        from dualgate_solo.export.verify import verify_pruned_export
        from dualgate_solo.gated.gate_stats import collect_gate_statistics
        from dualgate_solo.gated.layers import gate_mode_of
        from dualgate_solo.provenance import provenance

    loaded, dataset, source = open_checkpoint(args)
    backbone = loaded.backbone.eval()
    batches = _batches(args, dataset, loaded.args.get("data", {}).get("num_classes"))
    if gate_mode_of(backbone).routed:
        return _export_routed(args, stage, loaded, dataset, source, batches)
    stats = collect_gate_statistics(backbone, batches, max_batches=args.max_batches, progress=False)
    plan = make_plan(backbone, stats, args.policy, args.off_threshold, args.on_threshold)
    model = export_pruned(backbone, plan)
    if args.recalibrate_batches:
        recalibrate_bn(model, batches, args.recalibrate_batches)
    verification = verify_pruned_export(
        backbone, model, plan, stats, batches, args.max_batches, bool(args.recalibrate_batches)
    )
    example = torch.zeros(2, 3, *stats.costs.input_hw)
    for batch in batches:
        example = (batch[0] if isinstance(batch, (tuple, list)) else batch)[:2]
        break
    files = save_export(
        model, stage.path, example, args.formats, plan, onnx_exporter=args.onnx_exporter
    )
    files = stage.relocate(files)
    summary = {
        **provenance(),
        "checkpoint": str(loaded.path),
        "method": loaded.method,
        "data": str(args.data) if args.data else f"synthetic ({args.synthetic_size} images)",
        "dataset": dataset,
        "dataset_source": source,
        "num_samples": stats.num_samples,
        "policy": plan.policy,
        "off_threshold": plan.off_threshold,
        "on_threshold": plan.on_threshold,
        "recalibrate_batches": args.recalibrate_batches,
        "input_hw": plan.input_hw,
        "dense_macs": plan.dense_macs,
        "exported_macs": plan.predicted_macs,
        "gated_branch_mean_macs": stats.mean_ratio * stats.costs.dense_macs,
        "theoretical_speedup": plan.dense_macs / plan.predicted_macs,
        "blocks": [
            {
                "block": b.name,
                "full": b.group_sizes,
                "kept": [len(k) for k in b.kept],
                "built": b.widths,
                "gated": b.gated,
                "macs": b.macs,
                "dense_macs": b.dense_macs,
            }
            for b in plan.blocks
        ],
        "files": files,
        "verification": verification,
    }
    (stage.path / "export_summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{'block':10} {'full':>10} {'kept':>10} {'gated':>8} {'MACs':>14} {'dense MACs':>14}")
    for b in summary["blocks"]:
        print(
            f"{b['block']:10} {str(b['full']):>10} {str(b['kept']):>10} {str(b['gated']):>8} "
            f"{b['macs']:>14,} {b['dense_macs']:>14,}"
        )
    height, width = plan.input_hw
    print(
        f"{plan.policy} export at {height}x{width} px ({dataset}, from {source}): "
        f"{plan.predicted_macs:,} MACs vs {plan.dense_macs:,} dense "
        f"({plan.dense_macs / plan.predicted_macs:.2f}x fewer; gated branch mean "
        f"{summary['gated_branch_mean_macs']:,.0f}) -> {args.out}"
    )
    return summary
