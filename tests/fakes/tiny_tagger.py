"""A tiny WD14-shaped tagger built with the ``onnx`` package: the same signature as
SmilingWolf's models (input ``[batch, S, S, 3]`` float32 BGR 0-255 with a dynamic batch,
output sigmoid scores ``[batch, n_tags]``) and a ``selected_tags.csv`` with the same columns.

Its scores are ``sigmoid(features @ W + b)`` over four features of the input, each in 0-1:

* ``f0``, ``f1``, ``f2`` -- the mean of channel 0, 1, 2 over the whole image, divided by 255;
* ``f3`` -- the mean of the top-left corner (the first ``S // 8`` rows and columns).

so that tests can prove the preprocessing:

* ``blue_sky`` is high only when channel 0 is blue (BGR order): a blue photo fed as RGB scores
  near 0; ``red_theme`` is its mirror image;
* ``white_background`` is high only when the corner is white: the corner of a wide photo is
  padding after the square pad, so it scores high only when the pad is white;
* the input size ``S`` is any size (the default, 40, is not the real models' 448): an image
  resized to another size is refused by onnxruntime.

Every other tag has a fixed score (its bias only): see :data:`FIXED_SCORES`.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: Default input size of the tiny model (pixels), deliberately not 448.
DEFAULT_SIZE = 40

#: ONNX opset and IR version: within what onnxruntime 1.17+ runs.
OPSET = 17
IR_VERSION = 8

# Category numbers of selected_tags.csv (SmilingWolf's model cards).
RATING, GENERAL, CHARACTER = 9, 0, 4

#: Fixed scores of the tags that do not look at the image, by CSV name.
FIXED_SCORES: dict[str, float] = {
    "general": 0.20,
    "sensitive": 0.70,
    "questionable": 0.05,
    "explicit": 0.01,
    "1girl": 0.95,
    "long_hair": 0.90,
    "smile": 0.88,
    "^_^": 0.85,
    "looking_at_viewer": 0.45,
    "(o)_(o)": 0.40,
    "simple_background": 0.30,
    "no_humans": 0.10,
    "hatsune_miku": 0.92,
    "kagamine_rin": 0.60,
    "megurine_luka": 0.10,
}

# (name, category, weights on f0..f3, bias) of the tags that look at the image.
_IMAGE_TAGS: list[tuple[str, int, tuple[float, float, float, float], float]] = [
    ("blue_sky", GENERAL, (10.0, 0.0, -10.0, 0.0), -3.0),
    ("red_theme", GENERAL, (-10.0, 0.0, 10.0, 0.0), -3.0),
    ("white_background", GENERAL, (0.0, 0.0, 0.0, 20.0), -18.0),
]

#: Every tag in CSV order: (name, category).
TAGS: list[tuple[str, int]] = [
    ("general", RATING), ("sensitive", RATING), ("questionable", RATING),
    ("explicit", RATING),
    ("1girl", GENERAL), ("long_hair", GENERAL), ("blue_sky", GENERAL), ("smile", GENERAL),
    ("^_^", GENERAL), ("red_theme", GENERAL), ("looking_at_viewer", GENERAL),
    ("(o)_(o)", GENERAL), ("white_background", GENERAL), ("simple_background", GENERAL),
    ("no_humans", GENERAL),
    ("hatsune_miku", CHARACTER), ("kagamine_rin", CHARACTER), ("megurine_luka", CHARACTER),
]


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def _weights() -> tuple[np.ndarray, np.ndarray]:
    image_tags = {name: (w, b) for name, _, w, b in _IMAGE_TAGS}
    weights = np.zeros((4, len(TAGS)), dtype=np.float32)
    bias = np.zeros(len(TAGS), dtype=np.float32)
    for column, (name, _category) in enumerate(TAGS):
        if name in image_tags:
            w, b = image_tags[name]
            weights[:, column] = w
            bias[column] = b
        else:
            bias[column] = _logit(FIXED_SCORES[name])
    return weights, bias


def expected_scores(bgr: np.ndarray) -> dict[str, float]:
    """The scores the model gives one ``(S, S, 3)`` BGR 0-255 input, by CSV name (computed with
    numpy, independently of onnxruntime)."""
    x = bgr.astype(np.float64) / 255.0
    corner = max(1, x.shape[0] // 8)
    features = np.array([*x.mean(axis=(0, 1)), x[:corner, :corner, :].mean()])
    weights, bias = _weights()
    scores = 1.0 / (1.0 + np.exp(-(features @ weights.astype(np.float64) + bias)))
    return {name: float(score) for (name, _), score in zip(TAGS, scores, strict=True)}


def build_model(size: int = DEFAULT_SIZE, *, layout: str = "NHWC", channels: int = 3
                ) -> onnx.ModelProto:
    """The tiny tagger as an ONNX model taking ``[batch, size, size, channels]`` (``layout``
    ``"NCHW"`` gives ``[batch, channels, size, size]``, the layout WD14 models do not use)."""
    corner = max(1, size // 8)
    weights, bias = _weights()
    if layout == "NHWC":
        shape: list[int | str] = ["batch", size, size, channels]
    else:
        shape = ["batch", channels, size, size]
    initializers = [
        numpy_helper.from_array(np.array([1.0 / 255.0], dtype=np.float32), "inv255"),
        numpy_helper.from_array(np.array([0, 0], dtype=np.int64), "corner_starts"),
        numpy_helper.from_array(np.array([corner, corner], dtype=np.int64), "corner_ends"),
        numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "hw_axes"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        numpy_helper.from_array(weights, "W"),
        numpy_helper.from_array(bias, "b"),
    ]
    nodes = []
    source = "input"
    if layout != "NHWC":
        nodes.append(helper.make_node("Transpose", ["input"], ["nhwc"], perm=[0, 2, 3, 1]))
        source = "nhwc"
    if channels != 3:  # a model of another kind: look at its first three channels only
        initializers += [
            numpy_helper.from_array(np.array([0], dtype=np.int64), "c_start"),
            numpy_helper.from_array(np.array([3], dtype=np.int64), "c_end"),
            numpy_helper.from_array(np.array([3], dtype=np.int64), "c_axis"),
        ]
        nodes.append(helper.make_node("Slice", [source, "c_start", "c_end", "c_axis"],
                                      ["first3"]))
        source = "first3"
    nodes += [
        helper.make_node("Mul", [source, "inv255"], ["x"]),
        # f0..f2: per-channel means, [batch, 3]
        helper.make_node("ReduceMean", ["x"], ["channel_means"], axes=[1, 2], keepdims=0),
        # f3: the top-left corner's mean, [batch, 1]
        helper.make_node("Slice", ["x", "corner_starts", "corner_ends", "hw_axes"],
                         ["corner"]),
        helper.make_node("ReduceMean", ["corner"], ["corner_mean"], axes=[1, 2, 3],
                         keepdims=0),
        helper.make_node("Unsqueeze", ["corner_mean", "axis1"], ["corner_feature"]),
        helper.make_node("Concat", ["channel_means", "corner_feature"], ["features"], axis=1),
        helper.make_node("MatMul", ["features", "W"], ["logits_no_bias"]),
        helper.make_node("Add", ["logits_no_bias", "b"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_tagger",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT,
                                       ["batch", len(TAGS)])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="loracap-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def write_tags_csv(path: Path, tags: list[tuple[str, int]] | None = None) -> Path:
    """``selected_tags.csv`` as SmilingWolf's repos hold it: ``tag_id,name,category,count``."""
    rows = TAGS if tags is None else tags
    with open(path, "w", encoding="utf-8", newline="") as fp:
        writer = csv.writer(fp)
        writer.writerow(["tag_id", "name", "category", "count"])
        for index, (name, category) in enumerate(rows):
            writer.writerow([9_999_000 + index, name, category, 1000 - index])
    return path


def write_tagger(folder: Path, size: int = DEFAULT_SIZE, *, layout: str = "NHWC",
                 channels: int = 3) -> Path:
    """A model folder: ``model.onnx`` (:func:`build_model`) and ``selected_tags.csv``."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(build_model(size, layout=layout, channels=channels), str(folder / "model.onnx"))
    write_tags_csv(folder / "selected_tags.csv")
    return folder
