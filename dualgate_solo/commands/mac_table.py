"""``dualgate-solo mac-table``: the per-block MAC table of a gated backbone at one input size.

Numbers come from a real forward pass at the requested input size, never from a stored table.
"""

from __future__ import annotations

import argparse

from dualgate_solo.commands.options import add_architecture_options, integer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_architecture_options(parser, from_checkpoint=False)
    parser.add_argument("--size", type=integer(1), default=32, help="input height = width, pixels")


def run(args: argparse.Namespace) -> None:
    from dualgate_solo.models import create_backbone

    backbone = create_backbone(args.backbone, stem=args.stem, width=args.width)
    table = backbone.cost_table((args.size, args.size))
    rows = table.as_rows()
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        cells = (
            "-" if row[k] is None else f"{row[k]:,}" if isinstance(row[k], int) else str(row[k])
            for k in header
        )
        print(" | ".join(cells))
    print(
        f"stem MACs {table.stem_macs:,} | dense total {table.dense_macs:,} | "
        f"gate MACs {table.gate_macs:,} | floor ratio {table.min_ratio:.4f}"
    )
