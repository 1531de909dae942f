"""``dualgate-solo mac-table``: the per-block MAC table of a gated backbone (spec §5.2).

Numbers come from a real forward pass at the requested input size, never from a stored table.
"""

from __future__ import annotations

import argparse

from dualgate_solo.models import BACKBONE_DEPTHS, STEMS, create_backbone


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backbone", default="dg_resnet18", choices=sorted(BACKBONE_DEPTHS))
    parser.add_argument("--stem", default="cifar", choices=STEMS)
    parser.add_argument("--size", type=int, default=32, help="input height = width in pixels")


def run(args: argparse.Namespace) -> None:
    table = create_backbone(args.backbone, stem=args.stem).cost_table((args.size, args.size))
    rows = table.as_rows()
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(
            " | ".join(
                "-" if row[k] is None else f"{row[k]:,}" if isinstance(row[k], int) else str(row[k])
                for k in header
            )
        )
    print(
        f"stem MACs {table.stem_macs:,} | dense total {table.dense_macs:,} | gate MACs {table.gate_macs:,} | floor ratio {table.min_ratio:.4f}"
    )
