"""The routed executor as one ONNX graph: every block picks its width per input with ``If`` nodes.

:class:`~dualgate_solo.export.routed.RoutedResNet` runs each input's chosen widths in PyTorch;
this module writes the same computation as a single, standard ONNX graph (opset 17), so any ONNX
runtime can deploy a width-gated network without Python control flow. Per residual block ``k``
with input ``h_k [B, C, H, W]`` and the choices ``c_k [B]`` (int64) of its gate:

* a *segment* ``(k, j)`` is the block at width choice ``j`` followed by the next block's gate:
  ``h_{k+1} = ReLU(path_j(h_k) + shortcut(h_k))`` and
  ``c_{k+1} = argmax(W_2 ReLU(W_1 GAP(h_{k+1}) + b_1))`` (the last block has no next gate);
* if every input agrees (``min c_k == max c_k``, always true at batch 1), the one segment
  ``j = c_k[0]`` runs on the whole batch, with no copies;
* otherwise the inputs are grouped: segment ``j`` runs on ``Gather(h_k, nonzero(c_k == j))``
  (an empty group is an empty batch), the groups are concatenated and put back in input order.

The case (``c_k[0]`` or "grouped") is dispatched by a chain of ``If`` nodes, the block's most
frequent width first.

Stem, first gate and head (global average pooling) sit outside the blocks. The outputs equal
``RoutedResNet.forward_choices`` (features, and per-block choices as extra outputs) up to float
rounding and execute the same MACs.

ONNX Runtime applies its blocked-layout (NCHWc) convolution kernels only to the top-level graph
of a model, not inside ``If`` branches. :func:`specialize_for_onnxruntime` therefore optimizes
each branch that holds convolutions as a model of its own with ONNX Runtime's optimizer on the
machine that will run it, and puts the optimized nodes back into the branch; the result is tied to
that machine's instruction set (like any ``ORT_ENABLE_ALL``-optimized model) and is built at load
time by :func:`routed_onnx_session`, while the portable graph is what :func:`export_routed_onnx`
saves.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dualgate_solo.export.routed import BasicPath, BottleneckPath, RoutedBlock, RoutedResNet

OPSET = 17
INPUT, OUTPUT = "images", "features"

Nodes = list  # of onnx.NodeProto


class _GraphBuilder:
    """Nodes and initializers with unique names (one namespace for a graph and its branches)."""

    def __init__(self) -> None:
        self.initializers: dict[str, Any] = {}
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def constant(self, value: np.ndarray | torch.Tensor, hint: str = "const") -> str:
        from onnx import numpy_helper

        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else value
        name = self.name(hint)
        self.initializers[name] = numpy_helper.from_array(np.array(array, order="C"), name)
        return name

    def node(self, nodes: Nodes, op: str, inputs: list[str], hint: str = "", **attrs) -> str:
        from onnx import helper

        out = self.name(hint or op.lower())
        nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out


class _ConvWeights:
    """A conv's initializers (made once, shared by every branch that runs the conv)."""

    def __init__(self, graph: _GraphBuilder, conv: nn.Conv2d, hint: str):
        self.conv = conv
        self.weight = graph.constant(conv.weight, f"{hint}.weight")
        self.bias = graph.constant(conv.bias, f"{hint}.bias") if conv.bias is not None else None

    def __call__(self, graph: _GraphBuilder, nodes: Nodes, x: str) -> str:
        conv = self.conv
        inputs = [x, self.weight] + ([self.bias] if self.bias else [])
        pad_h, pad_w = conv.padding
        return graph.node(
            nodes,
            "Conv",
            inputs,
            "conv",
            kernel_shape=list(conv.kernel_size),
            strides=list(conv.stride),
            pads=[pad_h, pad_w, pad_h, pad_w],
            dilations=list(conv.dilation),
            group=conv.groups,
        )


class _GateWeights:
    """The evaluation choice of a :class:`~dualgate_solo.export.routed.WidthRouter`:
    ``h [B, C, H, W]`` -GAP-> ``[B, C]`` -Gemm-ReLU-Gemm-> ``[B, n_choices]`` -ArgMax-> ``[B]``."""

    def __init__(self, graph: _GraphBuilder, block: RoutedBlock, hint: str):
        reduce, expand = block.router.reduce, block.router.expand
        self.reduce_w = graph.constant(reduce.weight.flatten(1), f"{hint}.gate.reduce.weight")
        self.reduce_b = graph.constant(reduce.bias, f"{hint}.gate.reduce.bias")
        self.expand_w = graph.constant(expand.weight.flatten(1), f"{hint}.gate.expand.weight")

    def __call__(self, graph: _GraphBuilder, nodes: Nodes, h: str) -> str:
        pooled = graph.node(nodes, "GlobalAveragePool", [h])
        pooled = graph.node(nodes, "Flatten", [pooled], axis=1)
        hidden = graph.node(nodes, "Gemm", [pooled, self.reduce_w, self.reduce_b], transB=1)
        hidden = graph.node(nodes, "Relu", [hidden])
        logits = graph.node(nodes, "Gemm", [hidden, self.expand_w], transB=1)
        return graph.node(nodes, "ArgMax", [logits], "choice", axis=1, keepdims=0)


def _path_convs(path: nn.Module) -> list[nn.Conv2d]:
    if isinstance(path, BottleneckPath):
        return [path.conv1, path.conv2, path.conv3]
    if isinstance(path, BasicPath):
        return [path.conv1, path.conv2]
    raise TypeError(f"unknown routed path {type(path).__name__}")  # pragma: no cover


class _Block:
    """Weights of one routed block and of the gate after it; builds its segments."""

    def __init__(self, graph: _GraphBuilder, block: RoutedBlock, name: str, next_gate):
        self.paths = [
            [
                _ConvWeights(graph, conv, f"{name}.width{j}.conv{i + 1}")
                for i, conv in enumerate(_path_convs(path))
            ]
            for j, path in enumerate(block.paths)
        ]
        self.downsample = (
            _ConvWeights(graph, block.downsample, f"{name}.downsample")
            if block.downsample is not None
            else None
        )
        self.next_gate = next_gate

    def segment(self, graph: _GraphBuilder, nodes: Nodes, h: str, j: int) -> list[str]:
        """Nodes of segment ``(k, j)`` on ``h``; returns ``[h_next]`` or ``[h_next, c_next]``."""
        y = h
        convs = self.paths[j]
        for i, conv in enumerate(convs):
            y = conv(graph, nodes, y)
            if i < len(convs) - 1:
                y = graph.node(nodes, "Relu", [y])
        shortcut = h if self.downsample is None else self.downsample(graph, nodes, h)
        y = graph.node(nodes, "Relu", [graph.node(nodes, "Add", [y, shortcut])], "h")
        return [y] if self.next_gate is None else [y, self.next_gate(graph, nodes, y)]


def _branch(nodes: Nodes, outputs: list[str], name: str):
    """A subgraph (``If`` branch) returning ``outputs`` (activation float, then choice int64)."""
    from onnx import TensorProto, helper

    types = [TensorProto.FLOAT, TensorProto.INT64]
    infos = [helper.make_tensor_value_info(o, t, None) for o, t in zip(outputs, types)]
    return helper.make_graph(nodes, name, [], infos)


def _if(graph: _GraphBuilder, nodes: Nodes, condition: str, then, otherwise, n_out: int):
    from onnx import helper

    outputs = [graph.name("if_out") for _ in range(n_out)]
    nodes.append(
        helper.make_node("If", [condition], outputs, then_branch=then, else_branch=otherwise)
    )
    return outputs


def _dispatch(graph, block: _Block, h: str, choice: str, key: str, order: list[int], n_out: int):
    """Nodes running case ``key`` on ``h``: a chain of ``If (key == order[0])`` nodes, most
    frequent case first; case ``j < n_widths`` is segment ``j``, case ``n_widths`` the grouped run.
    """
    nodes: Nodes = []
    case, rest = order[0], order[1:]
    if case < len(block.paths):
        outputs = block.segment(graph, nodes, h, case)
    else:
        grouped_nodes, outputs = _grouped(graph, block, h, choice, n_out)
        nodes += grouped_nodes
    if not rest:
        return nodes, outputs
    other_nodes, other_out = _dispatch(graph, block, h, choice, key, rest, n_out)
    chain: Nodes = []
    hit = graph.node(chain, "Equal", [key, graph.constant(np.array(case, np.int64))])
    then = _branch(nodes, outputs, graph.name(f"case{case}"))
    return chain, _if(
        graph, chain, hit, then, _branch(other_nodes, other_out, graph.name("rest")), n_out
    )


def _grouped(graph: _GraphBuilder, block: _Block, h: str, choice: str, n_out: int) -> tuple:
    """Nodes running each input's segment on the group of inputs that chose it, in input order."""
    nodes: Nodes = []
    indices, parts = [], []
    for j in range(len(block.paths)):
        hit = graph.node(nodes, "Equal", [choice, graph.constant(np.array(j, np.int64))])
        index = graph.node(nodes, "NonZero", [hit])
        index = graph.node(nodes, "Reshape", [index, graph.constant(np.array([-1], np.int64))])
        group = graph.node(nodes, "Gather", [h, index], axis=0)
        indices.append(index)
        parts.append(block.segment(graph, nodes, group, j))
    order = graph.node(nodes, "Concat", indices, "order", axis=0)
    count = graph.node(nodes, "Shape", [choice])
    count = graph.node(nodes, "Squeeze", [count, graph.constant(np.array([0], np.int64))])
    zero, one = graph.constant(np.array(0, np.int64)), graph.constant(np.array(1, np.int64))
    positions = graph.node(nodes, "Range", [zero, count, one])
    inverse = graph.node(nodes, "ScatterElements", [order, order, positions], "inverse", axis=0)
    outputs = []
    for o in range(n_out):
        stacked = graph.node(nodes, "Concat", [part[o] for part in parts], axis=0)
        outputs.append(graph.node(nodes, "Gather", [stacked, inverse], axis=0))
    return nodes, outputs


def _case_order(n_widths: int, frequency) -> list[int]:
    """Width choices by decreasing ``frequency`` (ties and ``None``: increasing choice), then the
    grouped case ``n_widths``."""
    share = [0.0] * n_widths if frequency is None else frequency
    return sorted(range(n_widths), key=lambda j: (-share[j], j)) + [n_widths]


def routed_onnx_model(routed: RoutedResNet):
    """The portable ONNX graph of ``routed`` (module docstring).

    Each block tests its most frequent width first (``routed.choice_frequency()``, after
    :meth:`~dualgate_solo.export.routed.RoutedResNet.count_choices` on calibration images;
    uncalibrated: narrowest first), so a typical batch-1 input passes one ``If`` per block. The
    order changes the speed, never the outputs.

    Inputs ``images [B, 3, H, W]``; outputs ``features [B, num_features]`` and
    ``choice.<block> [B]`` (int64, the width choice of every block, e.g. ``choice.layer2.0``).
    """
    import onnx
    from onnx import TensorProto, helper

    graph = _GraphBuilder()
    nodes: Nodes = []
    stem = _ConvWeights(graph, routed.conv1, "conv1")
    h = graph.node(nodes, "Relu", [stem(graph, nodes, INPUT)])
    if isinstance(routed.maxpool, nn.MaxPool2d):
        pool = routed.maxpool
        h = graph.node(
            nodes,
            "MaxPool",
            [h],
            kernel_shape=[pool.kernel_size] * 2,
            strides=[pool.stride] * 2,
            pads=[pool.padding] * 4,
        )
    gates = [_GateWeights(graph, b, n) for b, n in zip(routed.blocks, routed.block_names)]
    frequency = routed.choice_frequency()
    choice = gates[0](graph, nodes, h)
    choices = [choice]
    for k, (block, name) in enumerate(zip(routed.blocks, routed.block_names)):
        last = k == len(routed.blocks) - 1
        weights = _Block(graph, block, name, None if last else gates[k + 1])
        n_out = 1 if last else 2
        first = graph.node(nodes, "Gather", [choice, graph.constant(np.array(0, np.int64))], axis=0)
        low = graph.node(nodes, "ReduceMin", [choice], keepdims=0)
        high = graph.node(nodes, "ReduceMax", [choice], keepdims=0)
        agree = graph.node(nodes, "Equal", [low, high], "agree")
        grouped = graph.constant(np.array(len(block.paths), np.int64))
        key = graph.node(nodes, "Where", [agree, first, grouped], "case")
        order = _case_order(len(block.paths), None if frequency is None else frequency[k])
        dispatch_nodes, outputs = _dispatch(graph, weights, h, choice, key, order, n_out)
        nodes += dispatch_nodes
        h = outputs[0]
        if not last:
            choice = outputs[1]
            choices.append(choice)
    pooled = graph.node(nodes, "GlobalAveragePool", [h])
    nodes.append(helper.make_node("Flatten", [pooled], [OUTPUT], axis=1))
    outputs = [
        helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", routed.num_features])
    ]
    for name, c in zip(routed.block_names, choices):
        nodes.append(helper.make_node("Identity", [c], [f"choice.{name}"]))
        outputs.append(
            helper.make_tensor_value_info(f"choice.{name}", TensorProto.INT64, ["batch"])
        )
    image = helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", 3, "height", "width"])
    model = helper.make_model(
        helper.make_graph(
            nodes, "routed_resnet", [image], outputs, list(graph.initializers.values())
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="dualgate_solo",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def export_routed_onnx(routed: RoutedResNet, path: str | Path) -> Path:
    """Save :func:`routed_onnx_model` of ``routed`` to ``path``; returns the path."""
    import onnx

    path = Path(path)
    onnx.save(routed_onnx_model(routed), str(path))
    return path


def _free_inputs(graph) -> list[str]:
    """Names a graph's nodes read but do not produce (outer-scope values and initializers)."""
    produced, free = set(), []
    for node in graph.node:
        free += [i for i in node.input if i and i not in produced and i not in free]
        produced.update(node.output)
    return free


def _read_names(graph) -> set[str]:
    """Every name a node of ``graph`` or of its subgraphs reads."""
    import onnx

    names = set()
    for node in graph.node:
        names.update(node.input)
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                names |= _read_names(attribute.g)
    return names


def _has_subgraphs(graph) -> bool:
    import onnx

    return any(a.type == onnx.AttributeProto.GRAPH for n in graph.node for a in n.attribute)


def _optimized_by_onnxruntime(model, threads: int):
    """``model`` after ONNX Runtime's ``ORT_ENABLE_ALL`` graph optimisations on this machine."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="routed_ort_") as directory:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        options.optimized_model_filepath = str(Path(directory) / "optimized.onnx")
        ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def specialize_for_onnxruntime(model, threads: int = 1):
    """A copy of a routed ONNX model whose ``If`` branches run ONNX Runtime's optimized kernels.

    Every branch without nested subgraphs that holds a ``Conv`` becomes a model of its own (its
    outer-scope values as inputs, typed by ONNX shape inference; the initializers it reads), is
    optimized by :func:`_optimized_by_onnxruntime` and put back (its new initializers moved to
    the top level, identical ones shared). Tied to this machine's instruction set.
    """
    import onnx
    from onnx import helper

    model = onnx.shape_inference.infer_shapes(model)
    top = model.graph
    initializers = {t.name: t for t in top.initializer}
    types = {v.name: v for v in [*top.input, *top.value_info]}
    hoisted: dict[str, Any] = {}
    by_content: dict[str, str] = {}
    domains: dict[str, int] = {}

    def rewrite(branch, prefix: str) -> None:
        free = _free_inputs(branch)
        inputs = [types[n] for n in free if n not in initializers]
        single = helper.make_graph(
            list(branch.node),
            "branch",
            inputs,
            list(branch.output),
            [initializers[n] for n in free if n in initializers],
        )
        standalone = helper.make_model(single, opset_imports=list(model.opset_import))
        standalone.ir_version = model.ir_version
        optimized = _optimized_by_onnxruntime(standalone, threads)
        domains.update({o.domain: o.version for o in optimized.opset_import})
        rename = {i.name: i.name for i in optimized.graph.input}
        rename.update({o.name: o.name for o in optimized.graph.output})
        for tensor in optimized.graph.initializer:
            renamed = onnx.TensorProto()
            renamed.CopyFrom(tensor)
            renamed.name = ""
            digest = hashlib.sha1(renamed.SerializeToString()).hexdigest()
            if digest not in by_content:
                renamed.name = by_content[digest] = f"{prefix}/{tensor.name}"
                hoisted[renamed.name] = renamed
            rename[tensor.name] = by_content[digest]
        new_nodes = []
        for node in optimized.graph.node:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            copy.input[:] = [rename.get(i, f"{prefix}/{i}") if i else i for i in node.input]
            copy.output[:] = [rename.get(o, f"{prefix}/{o}") for o in node.output]
            copy.name = f"{prefix}/{node.name}" if node.name else ""
            new_nodes.append(copy)
        del branch.node[:]
        branch.node.extend(new_nodes)
        del branch.value_info[:]

    count = 0

    def visit(graph) -> None:
        nonlocal count
        types.update({v.name: v for v in graph.value_info})
        for node in graph.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.GRAPH:
                    visit(attribute.g)
                    if not _has_subgraphs(attribute.g) and any(
                        n.op_type == "Conv" for n in attribute.g.node
                    ):
                        count += 1
                        rewrite(attribute.g, f"branch{count}")

    visit(top)
    used = _read_names(top)
    kept = [t for t in top.initializer if t.name in used]  # the branches no longer read the rest
    del top.initializer[:]
    top.initializer.extend([*kept, *hoisted.values()])
    known = {o.domain for o in model.opset_import}
    model.opset_import.extend(
        helper.make_opsetid(d, v) for d, v in domains.items() if d not in known
    )
    return model


def routed_onnx_session(
    source: RoutedResNet | str | Path, threads: int | None = None
) -> tuple[Any, dict[str, Any]]:
    """An ONNX Runtime session running a routed network fast on this machine, and its settings.

    ``source``: a :class:`RoutedResNet` or a file written by :func:`export_routed_onnx`. The
    graph goes through :func:`specialize_for_onnxruntime`, then
    :func:`~dualgate_solo.export.onnx_session` (all graph optimisations, ``threads`` intra-op
    threads; default: torch's). Outputs: ``features``, then ``choice.<block>``.
    """
    import onnx

    from dualgate_solo.export.onnx_runtime import onnx_session

    threads = torch.get_num_threads() if threads is None else threads
    model = (
        routed_onnx_model(source) if isinstance(source, RoutedResNet) else onnx.load(str(source))
    )
    with tempfile.TemporaryDirectory(prefix="routed_ort_") as directory:
        path = Path(directory) / "routed_specialized.onnx"
        onnx.save(specialize_for_onnxruntime(model, threads), str(path))
        made, settings = onnx_session(path, threads)
    return made, {**settings, "routed_branches_specialized": True}
