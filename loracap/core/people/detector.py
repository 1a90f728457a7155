"""A local person detector (issue 13, ``--detector model.onnx``): a YOLO model the user exported
to ONNX with Ultralytics, run with onnxruntime, for people who do not want to send whole images
to a vision service.

Facts this module relies on (Ultralytics' documentation: "Export" mode, "ONNX integration",
and the ``LetterBox`` / ``scale_boxes`` / ``non_max_suppression`` steps its predictor applies):

* ``yolo export model=yolo11n.pt format=onnx`` writes a model with one input, ``images``,
  ``[1, 3, H, W]`` float32 RGB scaled to 0-1 (NCHW; 640 x 640 by default; the batch axis is
  symbolic with ``dynamic=True``; ``half=True`` makes it float16, which this module refuses).
* The image is letterboxed to ``H`` x ``W``: resized by one factor to fit, aspect ratio kept,
  centred, padded with grey 114.
* YOLOv8 / YOLO11 detection models output ``[1, 4 + C, A]``: per anchor (column) ``cx, cy, w,
  h`` in input pixels, then ``C`` class scores 0-1 (sigmoid already applied, no objectness).
  ``A`` is one anchor per cell of the stride 8, 16 and 32 grids (8,400 at 640 x 640; a P6 model
  adds stride 64). Class 0 is ``person`` in COCO, the classes of every pretrained model.
* YOLOv5 models (exported by its own ``export.py``) output ``[1, A, 5 + C]``: ``cx, cy, w, h``,
  an objectness score, then ``C`` class scores; ``A`` is three anchors per cell (25,200 at 640 x
  640), and a box's score is objectness times class score.
* Boxes are kept when their best class is the one asked for with a score at or above the
  confidence threshold, then greedy non-maximum suppression drops a box whose
  intersection-over-union with a better one is above the IoU threshold.

How the layout is told apart: the output must be ``[1, X, Y]``. The anchor counts a model of
the input size ``H`` x ``W`` can have are computed (:func:`anchor_counts`): ``Y`` being a
one-anchor count means ``[1, 4 + C, A]`` (YOLOv8/11 as exported); ``X`` being one means the
transposed ``[1, A, 4 + C]`` (some converters and post-processed exports); ``X`` being a
three-anchor count means YOLOv5's ``[1, A, 5 + C]``. Any other shape -- end-to-end models with
NMS built in (YOLOv10, ``nms=True`` exports: ``[1, 300, 6]``), RT-DETR, segmentation protos as
the first output -- is refused with :class:`InputError`.

numpy and onnxruntime are optional (the ``wd14`` extra): they are imported when the model is
loaded or run, never when this module is imported, and a missing one raises
:class:`LoraCapError` saying how to install it.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from loracap.core.backends.wd14_models import _detail, _require
from loracap.core.errors import CaptionError, InputError
from loracap.core.people.detection import PersonBox

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from PIL import Image

logger = logging.getLogger(__name__)

#: Default thresholds: a box's score (0-1) and the IoU above which NMS drops the weaker box.
DEFAULT_CONFIDENCE = 0.35
DEFAULT_IOU = 0.45

#: The grey the letterbox pads with (Ultralytics' ``LetterBox``).
PAD_GREY = 114

#: COCO's class index of ``person``.
PERSON_CLASS = 0

#: Strides of the detection heads: P3-P5, and P3-P6 for the ``-p6`` / ``*6`` models.
_STRIDES = ((8, 16, 32), (8, 16, 32, 64))

_EXPORT_HINT = ("Export a YOLO detection model with Ultralytics: "
                "yolo export model=yolo11n.pt format=onnx")

Layout = Literal["features-first", "anchors-first", "yolov5"]
"""How a model's output ``[1, X, Y]`` is laid out: ``features-first`` is ``[1, 4 + C, A]``
(YOLOv8/11), ``anchors-first`` is ``[1, A, 4 + C]``, ``yolov5`` is ``[1, A, 5 + C]``."""


def anchor_counts(height: int, width: int) -> tuple[set[int], set[int]]:
    """The anchor counts ``A`` of a YOLO model with an ``height`` x ``width`` pixel input:
    (one anchor per grid cell, as YOLOv8/11; three per cell, as YOLOv5), each for the P3-P5 and
    the P3-P6 heads. A grid at stride ``s`` is ``ceil(height / s)`` x ``ceil(width / s)``
    cells (stride-2 convolutions with padding round up). 640 x 640 gives ``{8400, 8500}`` and
    ``{25200, 25500}``."""
    per_cell = {sum(math.ceil(height / s) * math.ceil(width / s) for s in strides)
                for strides in _STRIDES}
    return per_cell, {3 * count for count in per_cell}


def output_layout(shape: tuple[int, ...] | list[Any], height: int, width: int
                  ) -> tuple[Layout, int]:
    """The layout of an output of shape ``shape`` from a model taking ``height`` x ``width``
    pixels, and its number of classes ``C`` (see the module's docstring for the rule). Raises
    :class:`InputError` for any other shape."""
    dims = list(shape)
    if len(dims) == 3 and dims[0] == 1 and all(isinstance(d, int) for d in dims[1:]):
        rows, columns = int(dims[1]), int(dims[2])
        one, three = anchor_counts(height, width)
        if columns in one and rows >= 5:
            return "features-first", rows - 4
        if rows in one and columns >= 5:
            return "anchors-first", columns - 4
        if rows in three and columns >= 6:
            return "yolov5", columns - 5
    v8 = min(anchor_counts(height, width)[0])
    raise InputError(
        f"The person detector's output has shape {dims}, which is not a YOLO detection output "
        f"for a {width} x {height} input: expected [1, 4 + classes, {v8}] (YOLOv8 / YOLO11), "
        f"its transpose, or YOLOv5's [1, {3 * v8}, 5 + classes]. Models with NMS built in "
        f"(YOLOv10, nms=True) and segmentation or pose models are not supported. "
        f"{_EXPORT_HINT}.")


@dataclass(frozen=True)
class Letterbox:
    """Where an image lies in the model's input after :func:`letterbox`, in input pixels: it
    was resized to ``width`` x ``height`` and pasted at (``left``, ``top``)."""

    left: int
    top: int
    width: int
    height: int


def letterbox(image: Image.Image, size: tuple[int, int]) -> tuple[Image.Image, Letterbox]:
    """``image`` fitted into ``size`` = (width, height) pixels as Ultralytics' ``LetterBox``
    does: one scale factor ``min(W / w, H / h)`` (up or down; bilinear), the resized image
    rounded to whole pixels (at least 1), centred (an odd margin puts the extra pixel right or
    below), the rest grey :data:`PAD_GREY`. Returns the RGB input image and its placement.
    An image not in RGB mode is converted first (alpha dropped)."""
    from PIL import Image

    target_w, target_h = size
    if image.mode != "RGB":
        image = image.convert("RGB")
    scale = min(target_w / image.width, target_h / image.height)
    width = min(target_w, max(1, round(image.width * scale)))
    height = min(target_h, max(1, round(image.height * scale)))
    left, top = (target_w - width) // 2, (target_h - height) // 2
    canvas = Image.new("RGB", (target_w, target_h), (PAD_GREY,) * 3)
    resized = image if image.size == (width, height) else image.resize(
        (width, height), Image.Resampling.BILINEAR)
    canvas.paste(resized, (left, top))
    return canvas, Letterbox(left, top, width, height)


def non_max_suppression(boxes: NDArray[np.float32], scores: NDArray[np.float32],
                        iou: float) -> list[int]:
    """Greedy NMS: the indices of the boxes kept, best score first. ``boxes`` is ``(N, 4)``
    ``x1, y1, x2, y2`` (any unit), ``scores`` ``(N,)``; a box is dropped when its
    intersection-over-union with a kept, better box is above ``iou`` (ties keep the earlier
    box). Empty boxes have IoU 0 with everything."""
    import numpy as np

    x1, y1, x2, y2 = (boxes[:, i].astype(np.float64) for i in range(4))
    areas = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    order = np.argsort(-scores.astype(np.float64), kind="stable")
    kept: list[int] = []
    while order.size:
        best, rest = int(order[0]), order[1:]
        kept.append(best)
        inter_w = np.clip(np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]),
                          0, None)
        inter_h = np.clip(np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]),
                          0, None)
        inter = inter_w * inter_h
        union = areas[best] + areas[rest] - inter
        overlap = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        order = rest[overlap <= iou]
    return kept


@dataclass(frozen=True)
class _Session:
    session: Any
    input_name: str
    output_name: str
    width: int
    height: int


class PersonDetector:
    """Finds people with a YOLO detection model exported to ONNX (see the module's docstring).

    ``path`` is the ``.onnx`` file; ``confidence`` (0-1) is the lowest score kept; ``iou``
    (0-1) the overlap above which NMS drops the weaker of two boxes. The model is loaded on
    first use (:meth:`load`), once, under a lock; :meth:`detect` may be called from several
    threads. Raises :class:`InputError` for thresholds outside 0-1.
    """

    def __init__(self, path: Path | str, *, confidence: float = DEFAULT_CONFIDENCE,
                 iou: float = DEFAULT_IOU) -> None:
        for name, value in (("confidence", confidence), ("IoU", iou)):
            if not 0.0 <= value <= 1.0:
                raise InputError(f"The person detector's {name} threshold must be between 0 "
                                 f"and 1, not {value:g}.")
        self.path = Path(path)
        self.confidence = confidence
        self.iou = iou
        self._lock = threading.Lock()
        self._session: _Session | None = None
        self._load_error: str | None = None

    def load(self) -> None:
        """Create the ONNX session now if not done yet (call it off the GUI thread).

        Raises :class:`InputError` when the file is missing or not an ONNX model, or when its
        input is not one float tensor ``[1 or batch, 3, H, W]`` (NCHW with fixed ``H`` and
        ``W``, as Ultralytics exports) or its output (when its shape is fixed) not a YOLO
        layout (:func:`output_layout`); :class:`LoraCapError` (the ``wd14`` extra's install
        hint) without numpy or onnxruntime. A failure is remembered: later calls raise the
        same message without loading again.
        """
        self._load()

    @property
    def input_size(self) -> tuple[int, int]:
        """The model's input (width, height) in pixels, read from its input shape (loads it)."""
        session = self._load()
        return session.width, session.height

    def close(self) -> None:
        """Free the loaded model (a later call loads it again)."""
        with self._lock:
            self._session = None

    def _load(self) -> _Session:
        with self._lock:
            if self._session is not None:
                return self._session
            if self._load_error is not None:
                raise InputError(self._load_error)
            try:
                self._session = _open_session(self.path)
            except InputError as exc:
                self._load_error = str(exc)
                raise
            logger.info("Person detector: loaded %s (input %d x %d px)", self.path,
                        self._session.width, self._session.height)
            return self._session

    def detect(self, image: Image.Image) -> list[PersonBox]:
        """The people in ``image`` (a Pillow image, EXIF-oriented, RGB; another mode is
        converted) as :class:`PersonBox` es in that image's pixels, ``gender`` ``"unknown"``
        and ``confidence`` the score (0-1), in no particular order (see
        :func:`~loracap.core.people.detection.order_people`).

        The image is letterboxed to the model's input (:func:`letterbox`), fed as ``[1, 3, H,
        W]`` float32 RGB 0-1; boxes of class 0 (person) with a score at or above
        :attr:`confidence` go through :func:`non_max_suppression` at :attr:`iou`, are mapped
        back to image pixels, clamped to the image and rounded outwards (left and top down,
        right and bottom up); a box under one pixel wide or high once clamped is dropped.

        Raises :class:`InputError` as :meth:`load` does or when the output is not a YOLO
        layout, :class:`CaptionError` when onnxruntime fails to run the model.
        """
        np = _require("numpy")
        loaded = self._load()
        fitted, placement = letterbox(image, (loaded.width, loaded.height))
        pixels = np.asarray(fitted, dtype=np.float32) / np.float32(255.0)
        batch = np.ascontiguousarray(pixels.transpose(2, 0, 1)[np.newaxis])
        try:
            outputs = loaded.session.run([loaded.output_name], {loaded.input_name: batch})
        except Exception as exc:  # onnxruntime raises its own error classes
            raise CaptionError(f'The person detector "{self.path.name}" failed to run '
                               f"({_detail(exc)}).") from exc
        output = np.asarray(outputs[0], dtype=np.float32)
        layout, _ = output_layout(tuple(int(d) for d in output.shape), loaded.height,
                                  loaded.width)
        boxes, scores = _person_candidates(output, layout, self.confidence)
        kept = non_max_suppression(boxes, scores, self.iou)
        people = [_to_image(boxes[i], float(scores[i]), placement, image.width, image.height)
                  for i in kept]
        return [person for person in people if person is not None]


def _person_candidates(output: NDArray[np.float32], layout: Layout, confidence: float
                       ) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The ``(N, 4)`` ``x1, y1, x2, y2`` boxes (input pixels) and ``(N,)`` scores of the
    anchors whose best class is :data:`PERSON_CLASS` with a score at or above ``confidence``
    and whose coordinates are finite."""
    import numpy as np

    rows = output[0].T if layout == "features-first" else output[0]
    if layout == "yolov5":
        classes = rows[:, 5:] * rows[:, 4:5]  # YOLOv5: objectness times class score
    else:
        classes = rows[:, 4:]
    best = np.argmax(classes, axis=1)
    scores = classes[:, PERSON_CLASS]
    keep = ((best == PERSON_CLASS) & (scores >= confidence)
            & np.all(np.isfinite(rows[:, :4]), axis=1))
    cx, cy, w, h = (rows[keep, i] for i in range(4))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return boxes.astype(np.float32), scores[keep].astype(np.float32)


def _to_image(box: NDArray[np.float32], score: float, placement: Letterbox, width: int,
              height: int) -> PersonBox | None:
    """A box in input pixels as a :class:`PersonBox` of the ``width`` x ``height`` image, or
    None when under a pixel wide or high once clamped."""
    x1, y1, x2, y2 = (float(v) for v in box)

    def undo(value: float, offset: int, resized: int, size: int) -> float:
        return min(max((value - offset) * size / resized, 0.0), float(size))

    left, right = (undo(x, placement.left, placement.width, width) for x in (x1, x2))
    top, bottom = (undo(y, placement.top, placement.height, height) for y in (y1, y2))
    if right - left < 1.0 or bottom - top < 1.0:
        return None
    return PersonBox(math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom),
                     "unknown", score)


def _open_session(path: Path) -> _Session:
    """An onnxruntime session for ``path`` with its input (and, when fixed, output) checked;
    errors as :meth:`PersonDetector.load` says."""
    _require("numpy")
    ort = _require("onnxruntime")
    if not path.is_file():
        raise InputError(f'The person detector "{path}" does not exist: choose the .onnx file '
                         f"of a YOLO model. {_EXPORT_HINT}.")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the graph optimiser's notes are noise
    try:
        session = ort.InferenceSession(str(path), sess_options=options,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # InvalidProtobuf, Fail, ... from onnxruntime's binding
        raise InputError(f'The person detector cannot load "{path}": it is not a valid ONNX '
                         f"model ({_detail(exc)}). {_EXPORT_HINT}.") from exc
    inputs = session.get_inputs()
    shape = list(inputs[0].shape) if inputs else []
    kind = inputs[0].type if inputs else "nothing"
    nchw = (len(inputs) == 1 and kind == "tensor(float)" and len(shape) == 4
            and (shape[0] == 1 or not isinstance(shape[0], int)) and shape[1] == 3
            and all(isinstance(d, int) and d > 0 for d in shape[2:]))
    if not nchw:
        raise InputError(
            f'The person detector needs a model taking one float image as [1, 3, height, '
            f'width] (NCHW with a fixed size, as Ultralytics exports); "{path}" takes {kind} '
            f"{shape}. Export it without half=True and with a fixed imgsz. {_EXPORT_HINT}.")
    height, width = int(shape[2]), int(shape[3])
    output = session.get_outputs()[0]
    if all(isinstance(d, int) for d in output.shape):  # else checked when run
        output_layout(list(output.shape), height, width)
    return _Session(session, inputs[0].name, output.name, width, height)
