"""Tiny YOLO-shaped person detectors built with the ``onnx`` package, for
:mod:`loracap.core.people.detector`.

They take ``images`` ``[1, 3, H, W]`` float32 (as Ultralytics exports) and output a YOLO
detection tensor of the right anchor count for that size (one anchor per cell of the stride 8,
16 and 32 grids; three per cell for YOLOv5):

* :func:`build_fixed` -- a constant output holding the given anchors (zeros elsewhere), in any
  of the three layouts. The input is still read (``0 * sum(images)`` is added), so onnxruntime
  checks its shape and a model fed the wrong shape fails.
* :func:`build_colour` -- one anchor with a fixed box whose class scores are the mean of the
  input's channel 0 (class 0, person) and channel 2 (class 1): a red photo is a person, a blue
  one is not, and the score tells the 0-1 scaling and the grey of the padding apart.

A row is ``(cx, cy, w, h, score0, score1, ...)`` in input pixels (YOLOv5: ``(cx, cy, w, h,
objectness, score0, ...)``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.fakes.tiny_tagger import IR_VERSION, OPSET


def anchors(height: int, width: int, per_cell: int = 1) -> int:
    """The anchor count of a P3-P5 YOLO head for an ``height`` x ``width`` input."""
    return per_cell * sum(math.ceil(height / s) * math.ceil(width / s) for s in (8, 16, 32))


def _model(nodes: list[onnx.NodeProto], initializers: list[onnx.TensorProto],
           input_shape: Sequence[int | str], output_shape: Sequence[int],
           input_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "tiny_detector",
        [helper.make_tensor_value_info("images", input_type, list(input_shape))],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output_shape))],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="loracap-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def fixed_output(rows: Sequence[Sequence[float]], height: int, width: int, *,
                 layout: str = "features-first", n_anchors: int | None = None) -> np.ndarray:
    """The output tensor :func:`build_fixed` gives: ``rows`` first, then zero anchors."""
    features = len(rows[0])
    per_cell = 3 if layout == "yolov5" else 1
    count = anchors(height, width, per_cell) if n_anchors is None else n_anchors
    table = np.zeros((count, features), dtype=np.float32)
    table[: len(rows)] = np.asarray(rows, dtype=np.float32)
    return (table.T if layout == "features-first" else table)[np.newaxis].copy()


def build_fixed(rows: Sequence[Sequence[float]], *, height: int = 64, width: int = 64,
                layout: str = "features-first", n_anchors: int | None = None,
                input_shape: Sequence[int | str] | None = None,
                input_type: int = TensorProto.FLOAT) -> onnx.ModelProto:
    """A model answering :func:`fixed_output` for any input of ``input_shape`` (default
    ``[1, 3, height, width]``); ``layout`` is ``features-first`` (``[1, 4 + C, A]``),
    ``anchors-first`` (``[1, A, 4 + C]``) or ``yolov5`` (``[1, A, 5 + C]``)."""
    value = fixed_output(rows, height, width, layout=layout, n_anchors=n_anchors)
    shape = list(input_shape) if input_shape is not None else [1, 3, height, width]
    cast = [] if input_type == TensorProto.FLOAT else [
        helper.make_node("Cast", ["images"], ["images_f"], to=TensorProto.FLOAT)]
    source = "images" if not cast else "images_f"
    nodes = [
        *cast,
        helper.make_node("ReduceSum", [source], ["total"], keepdims=0),
        helper.make_node("Mul", ["total", "zero"], ["nothing"]),
        helper.make_node("Add", ["fixed", "nothing"], ["output0"]),
    ]
    initializers = [numpy_helper.from_array(value, "fixed"),
                    numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")]
    return _model(nodes, initializers, shape, value.shape, input_type)


#: The box of :func:`build_colour`'s one anchor: ``(cx, cy, w, h)`` in input pixels.
COLOUR_BOX = (32.0, 32.0, 32.0, 48.0)


def build_colour(height: int = 64, width: int = 64) -> onnx.ModelProto:
    """A ``[1, 6, A]`` model: anchor 0 is :data:`COLOUR_BOX` with class scores (mean of
    channel 0, mean of channel 2) of the input; the other anchors are zeros."""
    count = anchors(height, width)
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["means"], axes=[2, 3], keepdims=0),
        helper.make_node("Gather", ["means", "channels"], ["scores"], axis=1),  # [1, 2]
        helper.make_node("Concat", ["box", "scores"], ["anchor"], axis=1),  # [1, 6]
        helper.make_node("Unsqueeze", ["anchor", "axis2"], ["column"]),  # [1, 6, 1]
        helper.make_node("Concat", ["column", "rest"], ["output0"], axis=2),
    ]
    initializers = [
        numpy_helper.from_array(np.array([0, 2], dtype=np.int64), "channels"),
        numpy_helper.from_array(np.array([COLOUR_BOX], dtype=np.float32), "box"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"),
        numpy_helper.from_array(np.zeros((1, 6, count - 1), dtype=np.float32), "rest"),
    ]
    return _model(nodes, initializers, [1, 3, height, width], [1, 6, count])


def save(model: onnx.ModelProto, path: Path) -> Path:
    """Write ``model`` to ``path`` and return it."""
    onnx.save(model, str(path))
    return path
