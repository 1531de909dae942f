"""The one place that opens an ONNX Runtime session: CPU, all graph optimisations, a stated
thread count; used by the exporters' checks, the export verification and the benchmarks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dualgate_solo.validation import check_interval


def onnx_session(path: str | Path, threads: int | None = None) -> tuple[Any, dict[str, Any]]:
    """An ONNX Runtime CPU session of ``path`` and its settings (for a results file).

    Graph optimisations ``ORT_ENABLE_ALL`` (constant folding, node fusions, layout transforms),
    ``threads`` intra-op threads (default: ``torch.get_num_threads()``, the threads PyTorch
    runs with), one inter-op thread, sequential execution and no spinning of idle threads (they
    would steal the cores of the next call on a small machine).
    """
    import onnxruntime as ort

    threads = torch.get_num_threads() if threads is None else threads
    check_interval("threads", threads, 1, float("inf"))
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    settings = {
        "onnxruntime": ort.__version__,
        "providers": session.get_providers(),
        "graph_optimization_level": options.graph_optimization_level.name,
        "execution_mode": options.execution_mode.name,
        "intra_op_num_threads": options.intra_op_num_threads,
        "inter_op_num_threads": options.inter_op_num_threads,
        "session.intra_op.allow_spinning": "0",
    }
    return session, settings
