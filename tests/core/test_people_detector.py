"""The local ONNX person detector (issue 13, ``--detector model.onnx``), run by the real
onnxruntime on tiny YOLO-shaped models (tests/fakes/tiny_detector.py)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto
from PIL import Image

from loracap.core.backends.wd14_models import INSTALL_HINT
from loracap.core.errors import InputError, LoraCapError
from loracap.core.people import PersonBox
from loracap.core.people.detector import PersonDetector, anchor_counts, non_max_suppression
from tests.fakes import tiny_detector
from tests.fakes.tiny_detector import build_colour, build_fixed, save

# (cx, cy, w, h, person score, other class score), input pixels of a 64 x 64 model
BEST = (20, 30, 20, 40, 0.9, 0.0)            # (10, 10, 30, 50)
OVERLAPS_BEST = (22, 30, 20, 40, 0.8, 0.0)   # (12, 10, 32, 50): IoU 0.82 with BEST
SECOND = (50, 30, 10, 20, 0.6, 0.0)          # (45, 20, 55, 40)
OTHER_CLASS = (40, 55, 10, 10, 0.7, 0.95)    # best class is not person
LOW = (10, 55, 8, 8, 0.2, 0.0)               # (6, 51, 14, 59), below 0.35
ROWS = [BEST, OVERLAPS_BEST, SECOND, OTHER_CLASS, LOW]


def boxes(people: list[PersonBox]) -> set[tuple[int, int, int, int]]:
    return {person.as_tuple() for person in people}


def grey(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), (90, 90, 90))


@pytest.mark.parametrize("layout", ["features-first", "anchors-first"])
def test_keeps_people_above_the_threshold_after_nms(tmp_path: Path, layout: str) -> None:
    model = save(build_fixed(ROWS, layout=layout), tmp_path / "yolo.onnx")

    people = PersonDetector(model).detect(grey(64, 64))

    assert sorted(people, key=lambda p: p.left) == [
        PersonBox(10, 10, 30, 50, "unknown", pytest.approx(0.9)),  # type: ignore[arg-type]
        PersonBox(45, 20, 55, 40, "unknown", pytest.approx(0.6)),  # type: ignore[arg-type]
    ]


def test_thresholds_change_what_is_kept(tmp_path: Path) -> None:
    model = save(build_fixed(ROWS), tmp_path / "yolo.onnx")

    loose_iou = PersonDetector(model, iou=0.9).detect(grey(64, 64))
    low_confidence = PersonDetector(model, confidence=0.1).detect(grey(64, 64))

    assert boxes(loose_iou) == {(10, 10, 30, 50), (12, 10, 32, 50), (45, 20, 55, 40)}
    assert boxes(low_confidence) == {(10, 10, 30, 50), (45, 20, 55, 40), (6, 51, 14, 59)}


def test_yolov5_layout_multiplies_objectness_and_class_score(tmp_path: Path) -> None:
    rows = [
        (20, 30, 20, 40, 0.5, 0.9, 0.0),   # 0.45: kept
        (50, 30, 10, 20, 0.3, 0.9, 0.0),   # 0.27: dropped, though its class score is 0.9
        (40, 55, 10, 10, 0.9, 0.2, 0.8),   # best class is not person
    ]
    model = save(build_fixed(rows, layout="yolov5"), tmp_path / "yolov5.onnx")

    people = PersonDetector(model).detect(grey(64, 64))

    assert [(p.as_tuple(), p.confidence) for p in people] == [
        ((10, 10, 30, 50), pytest.approx(0.45))]


@pytest.mark.parametrize(
    ("size", "rows", "expected"),
    [
        # 300 x 100 into 96 x 64: scale 0.32, 96 x 32 pasted at top 16
        ((300, 100), [(36, 32, 24, 16, 0.9, 0.0),     # (24, 24, 48, 40) in the input
                      (80, 24, 8, 32, 0.8, 0.0),      # (76, 8, 84, 40): top in the padding
                      (10, 6, 8, 8, 0.8, 0.0)],       # (6, 2, 14, 10): only padding
         {(75, 25, 150, 75), (237, 0, 263, 75)}),
        # 100 x 400 into 96 x 64: scale 0.16, 16 x 64 pasted at left 40
        ((100, 400), [(48, 24, 8, 16, 0.9, 0.0),      # (44, 16, 52, 32) in the input
                      (10, 30, 8, 8, 0.8, 0.0)],      # only padding
         {(25, 100, 75, 200)}),
    ],
    ids=["wide", "tall"],
)
def test_boxes_map_back_through_the_letterbox(
        tmp_path: Path, size: tuple[int, int],
        rows: list[tuple[float, ...]], expected: set[tuple[int, int, int, int]]) -> None:
    model = save(build_fixed(rows, height=64, width=96), tmp_path / "yolo.onnx")
    detector = PersonDetector(model)

    people = detector.detect(grey(*size))

    assert detector.input_size == (96, 64)
    assert boxes(people) == expected


def test_feeds_rgb_scaled_to_one_with_grey_114_padding(tmp_path: Path) -> None:
    detector = PersonDetector(save(build_colour(), tmp_path / "colour.onnx"))

    red = detector.detect(Image.new("RGB", (200, 100), (255, 0, 0)))
    blue = detector.detect(Image.new("RGB", (200, 100), (0, 0, 255)))

    # 200 x 100 fills half the 64 x 64 input; the other half is grey 114
    assert [(p.as_tuple(), p.confidence) for p in red] == [
        ((50, 0, 150, 100), pytest.approx(0.5 + 0.5 * 114 / 255, abs=1e-3))]
    assert blue == []


def test_a_model_with_a_batch_axis_is_accepted(tmp_path: Path) -> None:
    model = save(build_fixed(ROWS, input_shape=["batch", 3, 64, 64]), tmp_path / "dyn.onnx")

    assert boxes(PersonDetector(model).detect(grey(64, 64))) == {(10, 10, 30, 50),
                                                                 (45, 20, 55, 40)}


@pytest.mark.parametrize(
    ("input_shape", "input_type"),
    [([1, 64, 64, 3], TensorProto.FLOAT),            # NHWC
     ([1, 1, 64, 64], TensorProto.FLOAT),            # one channel
     ([1, 3, "height", "width"], TensorProto.FLOAT),  # no fixed size
     ([4, 3, 64, 64], TensorProto.FLOAT),            # a fixed batch of 4
     ([1, 3, 64, 64], TensorProto.FLOAT16)],         # half=True
    ids=["nhwc", "one-channel", "dynamic-size", "batch-4", "float16"],
)
def test_a_model_with_another_input_is_refused(
        tmp_path: Path, input_shape: list[int | str], input_type: int) -> None:
    model = save(build_fixed(ROWS, input_shape=input_shape, input_type=input_type),
                 tmp_path / "other.onnx")

    with pytest.raises(InputError, match=r"person detector needs .*\[1, 3, height, width\]"):
        PersonDetector(model).load()


def test_an_output_that_is_not_a_yolo_layout_is_refused(tmp_path: Path) -> None:
    model = save(build_fixed(ROWS, n_anchors=300), tmp_path / "e2e.onnx")

    with pytest.raises(InputError, match=r"not a YOLO detection output .* \[1, 4 \+ classes, 84\]"):
        PersonDetector(model).load()


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"this is not a protobuf\x00\xff" * 10)

    with pytest.raises(InputError, match=r"cannot load .*model.onnx.*not a valid ONNX model"):
        PersonDetector(path).load()
    with pytest.raises(InputError, match="does not exist"):
        PersonDetector(tmp_path / "missing.onnx").detect(grey(10, 10))


def test_without_onnxruntime_the_error_says_how_to_install_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    detector = PersonDetector(save(build_fixed(ROWS), tmp_path / "yolo.onnx"))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)

    with pytest.raises(LoraCapError, match="onnxruntime is missing") as caught:
        detector.detect(grey(64, 64))
    assert INSTALL_HINT in str(caught.value)
    assert not isinstance(caught.value, InputError)


@pytest.mark.parametrize(("confidence", "iou"), [(1.5, 0.45), (0.35, -0.1)])
def test_thresholds_outside_zero_to_one_are_refused(confidence: float, iou: float) -> None:
    with pytest.raises(InputError, match="between 0 and 1"):
        PersonDetector("model.onnx", confidence=confidence, iou=iou)


def test_threads_share_one_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[object] = []
    real = onnxruntime.InferenceSession

    def counting(*args: object, **kwargs: object) -> object:
        created.append(args[0])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(onnxruntime, "InferenceSession", counting)
    detector = PersonDetector(save(build_fixed(ROWS), tmp_path / "yolo.onnx"))
    results: list[set[tuple[int, int, int, int]]] = []
    threads = [threading.Thread(target=lambda: results.append(boxes(detector.detect(
        grey(64, 64))))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(created) == 1
    assert results == [{(10, 10, 30, 50), (45, 20, 55, 40)}] * 8


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    found = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [0, 0, 10, 10],
                      [5, 5, 5, 5]], dtype=np.float32)
    scores = np.array([0.5, 0.9, 0.4, 0.5, 0.8], dtype=np.float32)

    assert non_max_suppression(found, scores, 0.5) == [1, 4, 2]
    assert non_max_suppression(found, scores, 0.95) == [1, 4, 0, 2]


def test_anchor_counts_match_ultralytics_at_640() -> None:
    assert anchor_counts(640, 640) == ({8400, 8500}, {25200, 25500})
    assert tiny_detector.anchors(64, 96) == 126


def test_importing_the_detector_loads_neither_numpy_nor_onnxruntime() -> None:
    code = ("import sys\n"
            "from loracap.core.people import PersonDetector\n"
            "PersonDetector('model.onnx')\n"
            "print(sorted(m for m in ('numpy', 'onnxruntime') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2], check=True)
    assert result.stdout.strip() == "[]"
