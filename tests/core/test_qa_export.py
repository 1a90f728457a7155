"""Question-answer exports, read back the way their users read them: every JSON style with
``json`` and with ``datasets.load_dataset("json")``, the ``hf`` style with
``datasets.load_dataset("imagefolder")`` (offline, caches in a temporary folder), embedded images
decoded with Pillow. Images are real files made with Pillow."""

from __future__ import annotations

import base64
import errno
import io
import json
import os
import shutil
import tracemalloc
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from loracap.core.errors import (
    ExportError,
    InputError,
    NothingToExportError,
    OutputExistsError,
)
from loracap.core.qa import AnswerType, QAEntry, QAImage
from loracap.core.qa.exports import QAStyle, SkippedImage, SkipReason, export_qa
from tests.core.test_export_hf import Loader, image_names, load_imagefolder  # noqa: F401
from tests.fakes.photos import make_photo

JsonLoader = Callable[[Path], Any]


@pytest.fixture
def load_json(load_imagefolder: Loader, tmp_path: Path) -> JsonLoader:  # noqa: F811
    """``load_dataset("json", data_files=FILE)["train"]``, offline like ``load_imagefolder``
    (which sets up the environment ``datasets`` reads)."""
    import datasets

    def load(path: Path) -> Any:
        return datasets.load_dataset("json", data_files=str(path),
                                     cache_dir=str(tmp_path / "hf-json-cache"))["train"]

    return load


def photo(root: Path, rel_path: str, seed: int = 0, fmt: str | None = None) -> Path:
    """A small real photo at ``root/rel_path``."""
    return make_photo(root / rel_path, size=(64, 48), seed=seed, fmt=fmt)


def qa_image(root: Path, image_id: int, rel_path: str, *entries: QAEntry) -> QAImage:
    return QAImage(image_id, root / rel_path, rel_path, entries)


def pair(n: int, **fields: Any) -> QAEntry:
    return QAEntry(f"question {n}?", f"answer {n}", **fields)


@pytest.fixture
def album(tmp_path: Path) -> list[QAImage]:
    """Three photos, two named ``a.jpg`` in different folders: five pairs in all."""
    root = tmp_path / "photos"
    for seed, rel in enumerate(["trips/a.jpg", "home/a.jpg", "b.png"]):
        photo(root, rel, seed)
    return [
        qa_image(root, 11, "trips/a.jpg", pair(1, id=101), pair(2, id=102)),
        qa_image(root, 12, "home/a.jpg", pair(3, id=103, answer_type=AnswerType.LABEL)),
        qa_image(root, 13, "b.png", pair(4, id=104, score=4, confirmed=True, tags=("x", "y"),
                                          note="checked", model="gemini-2.5-flash"),
                 pair(5, id=105)),
    ]


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_jsonl(path: Path) -> list[Any]:
    data = path.read_text(encoding="utf-8")
    assert data.endswith("\n") and "\r" not in data
    return [json.loads(line) for line in data.splitlines()]


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def assert_copies(out_dir: Path, refs: dict[str, Path]) -> None:
    """Each ref (relative to ``out_dir``) is a byte-for-byte copy of its source photo."""
    for ref, source in refs.items():
        assert (out_dir / ref).read_bytes() == source.read_bytes(), ref


# ---------------------------------------------------------------------- each style


def test_llava_is_one_record_per_image_with_the_image_token_in_the_first_turn_only(
        tmp_path: Path, album: list[QAImage], load_json: JsonLoader) -> None:
    out = tmp_path / "out" / "llava.json"
    out.parent.mkdir()
    result = export_qa(album, out, style=QAStyle.LLAVA)

    assert (result.records, result.images, result.pairs, result.skipped) == (3, 3, 5, {})
    records = read_json(out)
    assert records[0] == {
        "id": "11", "image": "images/a.jpg",
        "conversations": [
            {"from": "human", "value": "<image>\nquestion 1?"},
            {"from": "gpt", "value": "answer 1"},
            {"from": "human", "value": "question 2?"},
            {"from": "gpt", "value": "answer 2"},
        ]}
    assert [r["image"] for r in records] == ["images/a.jpg", "images/a_2.jpg", "images/b.png"]
    assert [r["id"] for r in records] == ["11", "12", "13"]
    for record in records:  # LLaVA's rules: human first, alternating; one <image>, first turn
        turns = record["conversations"]
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)
        assert [t["value"].count("<image>") for t in turns] == [1] + [0] * (len(turns) - 1)
    assert files(out.parent) == ["images/.loracap-export", "images/a.jpg", "images/a_2.jpg",
                                 "images/b.png", "llava.json"]
    assert_copies(out.parent, {r["image"]: image.path for r, image in zip(records, album, strict=True)})

    loaded = load_json(out)
    assert loaded.num_rows == 3
    assert loaded.column_names == ["id", "image", "conversations"]
    assert sum(len(c) for c in loaded["conversations"]) == 2 * 5


def test_llava_per_pair_is_one_record_per_pair_each_with_its_image(
        tmp_path: Path, album: list[QAImage], load_json: JsonLoader) -> None:
    out = tmp_path / "llava.jsonl"
    result = export_qa(album, out, style=QAStyle.LLAVA, per_pair=True, jsonl=True)

    records = read_jsonl(out)
    assert (result.records, result.pairs) == (5, 5)
    assert [r["id"] for r in records] == ["11_101", "11_102", "12_103", "13_104", "13_105"]
    assert [r["image"] for r in records] == ["images/a.jpg"] * 2 + ["images/a_2.jpg"] + [
        "images/b.png"] * 2
    assert records[1]["conversations"] == [{"from": "human", "value": "<image>\nquestion 2?"},
                                           {"from": "gpt", "value": "answer 2"}]
    assert files(tmp_path / "images") == [".loracap-export", "a.jpg", "a_2.jpg", "b.png"]
    assert load_json(out).num_rows == 5


def test_vqa_is_one_record_per_pair_with_question_and_image_ids(
        tmp_path: Path, album: list[QAImage], load_json: JsonLoader) -> None:
    root = album[0].path.parents[1]
    unsaved = qa_image(root, 14, "b.png", pair(6), pair(7))  # entries not stored yet: id 0
    out = tmp_path / "vqa.json"
    result = export_qa([*album, unsaved], out, style=QAStyle.VQA, per_pair=True)

    records = read_json(out)
    assert result.records == len(records) == 7
    assert records[2] == {"question_id": 103, "image_id": 12, "image": "images/a_2.jpg",
                          "question": "question 3?", "answer": "answer 3",
                          "answer_type": "label"}
    # Without an id, a pair's question id is its number in the export.
    assert [r["question_id"] for r in records] == [101, 102, 103, 104, 105, 6, 7]
    assert records[-1]["image"] == "images/b_2.png"
    loaded = load_json(out)
    assert loaded.num_rows == 7
    assert loaded.column_names == ["question_id", "image_id", "image", "question", "answer",
                                   "answer_type"]
    assert loaded["question"] == [f"question {n}?" for n in range(1, 8)]


def test_sharegpt_follows_llama_factory_multimodal_rules(
        tmp_path: Path, album: list[QAImage], load_json: JsonLoader) -> None:
    out = tmp_path / "sharegpt.jsonl"
    result = export_qa(album, out, style=QAStyle.SHAREGPT, jsonl=True)

    records = read_jsonl(out)
    assert result.records == 3
    assert records[2] == {
        "messages": [
            {"role": "user", "content": "<image>question 4?"},
            {"role": "assistant", "content": "answer 4"},
            {"role": "user", "content": "question 5?"},
            {"role": "assistant", "content": "answer 5"},
        ],
        "images": ["images/b.png"]}
    for record in records:
        messages = record["messages"]
        # LLaMA-Factory: user turns odd, assistant even; as many <image> tokens as images.
        assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2)
        tokens = sum(m["content"].count("<image>") for m in messages)
        assert tokens == len(record["images"]) == 1
        assert messages[0]["content"].startswith("<image>")
        assert (tmp_path / record["images"][0]).is_file()
    loaded = load_json(out)
    assert loaded.num_rows == 3 and loaded.column_names == ["messages", "images"]
    assert sum(len(m) for m in loaded["messages"]) == 2 * 5


def test_sharegpt_per_pair_gives_each_pair_its_own_image(tmp_path: Path,
                                                         album: list[QAImage]) -> None:
    out = tmp_path / "sharegpt.json"
    export_qa(album, out, style=QAStyle.SHAREGPT, per_pair=True)
    records = read_json(out)
    assert len(records) == 5
    assert all(len(r["messages"]) == 2 and r["messages"][0]["content"].startswith("<image>")
               for r in records)


def test_default_keeps_every_field_of_a_pair(tmp_path: Path, album: list[QAImage],
                                             load_json: JsonLoader) -> None:
    out = tmp_path / "all.json"
    export_qa(album, out, style=QAStyle.DEFAULT)

    records = read_json(out)
    assert len(records) == 5
    assert records[3] == {"image": "images/b.png", "question": "question 4?",
                          "answer": "answer 4", "answer_type": "text", "score": 4,
                          "confirmed": True, "tags": ["x", "y"], "note": "checked",
                          "model": "gemini-2.5-flash"}
    assert records[4]["score"] is None and records[4]["tags"] == []
    assert records[4]["model"] == ""  # a person's answer
    loaded = load_json(out)
    assert loaded.num_rows == 5
    assert loaded["score"] == [None, None, None, 4, None]
    assert loaded["tags"][3] == ["x", "y"]


def test_the_json_list_is_written_one_record_a_line(tmp_path: Path,
                                                    album: list[QAImage]) -> None:
    out = tmp_path / "vqa.json"
    export_qa(album, out, style=QAStyle.VQA)
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "[" and lines[-2:] == ["]", ""]
    assert all(line.endswith(",") for line in lines[1:-3]) and not lines[-3].endswith(",")
    assert len(lines) == 5 + 3


# ---------------------------------------------------------------------- hf


def test_hf_rows_per_pair_load_as_an_imagefolder_with_each_image_once_on_disk(
        tmp_path: Path, album: list[QAImage], load_imagefolder: Loader,  # noqa: F811
) -> None:
    out = tmp_path / "qa_hf"
    result = export_qa(album, out, style=QAStyle.HF, per_pair=True)

    assert (result.records, result.images, result.pairs) == (5, 3, 5)
    assert files(out) == [".loracap-export", "train/a.jpg", "train/a_2.jpg", "train/b.png",
                          "train/metadata.jsonl"]
    rows = read_jsonl(out / "train" / "metadata.jsonl")
    assert rows[0] == {"file_name": "a.jpg", "question": "question 1?",
                       "answer": "answer 1", "answer_type": "text"}

    loaded = load_imagefolder(out)
    assert list(loaded) == ["train"]
    train = loaded["train"]
    # datasets >= 3.4 makes an example of every metadata row, repeated images included.
    assert train.num_rows == 5
    assert train.column_names == ["image", "question", "answer", "answer_type"]
    assert image_names(train) == ["a.jpg", "a.jpg", "a_2.jpg", "b.png", "b.png"]
    assert train["question"] == [f"question {n}?" for n in range(1, 6)]
    assert train["answer_type"][2] == "label"
    sources = [album[0], album[0], album[1], album[2], album[2]]
    for row, image in zip(train, sources, strict=True):
        with Image.open(image.path) as source:
            assert row["image"].convert("RGB").tobytes() == source.convert("RGB").tobytes()


def test_hf_rows_per_image_hold_the_conversation(
        tmp_path: Path, album: list[QAImage], load_imagefolder: Loader,  # noqa: F811
) -> None:
    out = tmp_path / "qa_hf"
    result = export_qa(album, out, style=QAStyle.HF)

    assert (result.records, result.pairs) == (3, 5)
    train = load_imagefolder(out)["train"]
    assert train.num_rows == 3
    assert train.column_names == ["image", "conversations"]
    assert train[0]["conversations"] == [
        {"from": "human", "value": "question 1?"}, {"from": "gpt", "value": "answer 1"},
        {"from": "human", "value": "question 2?"}, {"from": "gpt", "value": "answer 2"}]
    assert [row["image"].size for row in train] == [(64, 48)] * 3


# ---------------------------------------------------------------------- images


def test_copies_get_safe_names_that_never_collide(tmp_path: Path,
                                                  load_json: JsonLoader) -> None:
    root = tmp_path / "photos"
    nfd = unicodedata.normalize("NFD", "café.jpg")
    rels = ["x/a.jpg", "y/a.jpg", "z/A.JPG", "x/a_2.jpg", f"w/{nfd}", "v/CON.jpg"]
    album = [qa_image(root, n, rel, pair(n)) for n, rel in enumerate(rels, 1)]
    for n, rel in enumerate(rels):
        photo(root, rel, seed=n)
    out = tmp_path / "vqa.json"
    export_qa(album, out, style=QAStyle.VQA)

    refs = [r["image"] for r in read_json(out)]
    # Compared case-insensitively (macOS, Windows): A.JPG is taken by a.jpg.
    assert refs == ["images/a.jpg", "images/a_2.jpg", "images/A_3.JPG", "images/a_2_2.jpg",
                    "images/café.jpg", "images/_CON.jpg"]
    assert unicodedata.is_normalized("NFC", refs[4])
    assert_copies(tmp_path, {ref: image.path for ref, image in zip(refs, album, strict=True)})
    assert len(set(load_json(out)["image"])) == 6


@pytest.mark.parametrize(("name", "fmt", "mime"), [
    ("a.jpg", None, "image/jpeg"), ("b.png", None, "image/png"), ("c.webp", None, "image/webp"),
    ("d.jpg", "PNG", "image/png"),  # the MIME type comes from the data, not the name
])
def test_base64_embeds_data_urls_that_decode_to_the_same_pixels(
        tmp_path: Path, name: str, fmt: str | None, mime: str, load_json: JsonLoader) -> None:
    root = tmp_path / "photos"
    source = photo(root, name, fmt=fmt)
    out = tmp_path / "sharegpt.json"
    result = export_qa([qa_image(root, 1, name, pair(1))], out, style=QAStyle.SHAREGPT,
                       base64_images=True)

    assert result.images == 1
    [url] = read_json(out)[0]["images"]
    prefix = f"data:{mime};base64,"
    assert url.startswith(prefix)
    data = base64.b64decode(url.removeprefix(prefix), validate=True)
    assert data == source.read_bytes()
    with Image.open(io.BytesIO(data)) as decoded, Image.open(source) as original:
        assert decoded.size == original.size
        assert decoded.convert("RGB").tobytes() == original.convert("RGB").tobytes()
    assert sorted(os.listdir(tmp_path)) == ["photos", "sharegpt.json"]  # nothing copied
    assert load_json(out)["images"] == [[url]]


def test_base64_leaves_out_a_file_that_is_not_an_image(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    photo(root, "good.jpg")
    (root / "fake.jpg").write_text("not a picture", encoding="utf-8")
    album = [qa_image(root, 1, "fake.jpg", pair(1), pair(2)),
             qa_image(root, 2, "good.jpg", pair(3))]
    result = export_qa(album, tmp_path / "d.jsonl", style=QAStyle.DEFAULT, jsonl=True,
                       base64_images=True)
    assert result.pairs == 1 and result.skipped == {SkipReason.IMAGE_UNREADABLE: 2}
    [skipped] = result.skipped_images
    assert (skipped.rel_path, skipped.reason) == ("fake.jpg", SkipReason.IMAGE_UNREADABLE)
    assert "not an image" in skipped.detail


# ---------------------------------------------------------------------- filters


def test_filters_leave_out_pairs_and_images_left_without_pairs(tmp_path: Path,
                                                               load_json: JsonLoader) -> None:
    root = tmp_path / "photos"
    for rel in ("keep.jpg", "none.jpg"):
        photo(root, rel)
    album = [
        qa_image(root, 1, "keep.jpg",
                 pair(1, confirmed=True, score=5),
                 pair(2, confirmed=True, score=3),  # below 4
                 pair(3, confirmed=True),  # not scored
                 pair(4, score=5),  # not confirmed
                 pair(5, confirmed=True, score=5, valid=False),  # failed its schema
                 pair(6, confirmed=True, score=4)),
        qa_image(root, 2, "none.jpg", pair(7, score=5), pair(8, confirmed=True, score=1)),
    ]
    out = tmp_path / "qa.json"
    result = export_qa(album, out, style=QAStyle.DEFAULT, confirmed_only=True, min_score=4)

    assert [r["question"] for r in read_json(out)] == ["question 1?", "question 6?"]
    assert (result.records, result.images, result.pairs) == (2, 1, 2)
    assert result.skipped == {SkipReason.LOW_SCORE: 2, SkipReason.UNSCORED: 1,
                              SkipReason.UNCONFIRMED: 2, SkipReason.INVALID: 1}
    assert result.pairs + result.skipped_pairs == 8
    assert files(tmp_path / "images") == [".loracap-export", "keep.jpg"]
    assert load_json(out).num_rows == 2


def test_invalid_answers_are_never_exported_and_score_zero_counts(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    photo(root, "a.jpg")
    album = [qa_image(root, 1, "a.jpg", pair(1, valid=False), pair(2, score=0),
                      pair(3, score=None))]
    result = export_qa(album, tmp_path / "q.json", style=QAStyle.VQA, min_score=0)
    assert [r["question"] for r in read_json(tmp_path / "q.json")] == ["question 2?"]
    assert result.skipped == {SkipReason.INVALID: 1, SkipReason.UNSCORED: 1}


def test_the_image_token_in_a_text_is_left_out_of_chat_styles_only(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    photo(root, "a.jpg")
    album = [qa_image(root, 1, "a.jpg", pair(1), QAEntry("What is <image>?", "a tag"))]
    chat = export_qa(album, tmp_path / "l.json", style=QAStyle.LLAVA)
    flat = export_qa(album, tmp_path / "v.json", style=QAStyle.VQA)
    assert chat.skipped == {SkipReason.IMAGE_TOKEN: 1} and chat.pairs == 1
    assert flat.skipped == {} and flat.pairs == 2


def test_a_missing_image_is_reported_and_the_rest_exported(tmp_path: Path,
                                                           album: list[QAImage]) -> None:
    gone = album[1].path
    gone.unlink()
    root = tmp_path / "photos"
    unused = qa_image(root, 20, "gone_too.jpg", pair(9, valid=False))  # no pair left: no report
    progress: list[int] = []
    result = export_qa([*album, unused], tmp_path / "q.jsonl", style=QAStyle.LLAVA, jsonl=True,
                       on_progress=progress.append)

    assert result.skipped_images == (SkippedImage(
        gone, "home/a.jpg", SkipReason.IMAGE_MISSING, "the file is missing (moved or deleted?)"),)
    assert result.skipped == {SkipReason.IMAGE_MISSING: 1, SkipReason.INVALID: 1}
    assert (result.records, result.images, result.pairs) == (2, 2, 4)
    assert [r["image"] for r in read_jsonl(tmp_path / "q.jsonl")] == ["images/a.jpg",
                                                                      "images/b.png"]
    assert progress == [1, 2, 3, 4]


# ---------------------------------------------------------------------- streaming


def lazy_album(root: Path, count: int, answer_size: int) -> Iterator[QAImage]:
    """``count`` images (one small file) each with four pairs whose answers are
    ``answer_size`` characters, made one image at a time."""
    source = photo(root, "one.jpg")
    for n in range(count):
        yield QAImage(n, source, f"f{n}/one.jpg",
                      tuple(QAEntry(f"q{k}", chr(65 + k) * answer_size) for k in range(4)))


@pytest.mark.parametrize("jsonl", [True, False])
def test_records_are_streamed_in_constant_memory(tmp_path: Path, jsonl: bool) -> None:
    count, size = 60, 100_000  # 60 images x 4 answers x 100 kB: 24 MB of answers in all
    out = tmp_path / ("s.jsonl" if jsonl else "s.json")
    tracemalloc.start()
    try:
        result = export_qa(lazy_album(tmp_path / "photos", count, size), out,
                           style=QAStyle.LLAVA, jsonl=jsonl)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.records == count and out.stat().st_size > count * 4 * size
    # Holding every record would take 24 MB; one image's record at a time is under 3 MB.
    assert peak < 3_000_000, f"peak {peak / 1e6:.1f} MB"
    data = out.read_text(encoding="utf-8")
    records = [json.loads(line) for line in data.splitlines()] if jsonl else json.loads(data)
    assert len(records) == count
    assert records[-1]["conversations"][-1]["value"] == "D" * size


# ---------------------------------------------------------------------- atomic writes


def failing_copy_after(monkeypatch: pytest.MonkeyPatch, good: int) -> None:
    """The disk fills up after ``good`` image copies."""
    real = shutil.copyfileobj
    calls = []

    def copy(source: Any, target: Any, *args: Any) -> None:
        calls.append(1)
        if len(calls) > good:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(source, target, *args)

    monkeypatch.setattr("loracap.core.qa.exports.shutil.copyfileobj", copy)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in files(folder)}


def test_a_failed_export_leaves_the_previous_one_untouched(
        tmp_path: Path, album: list[QAImage], monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out" / "llava.json"
    out.parent.mkdir()
    export_qa(album[:1], out, style=QAStyle.LLAVA)
    before = snapshot(out.parent)
    assert "llava.json" in before and "images/a.jpg" in before

    failing_copy_after(monkeypatch, good=1)
    with pytest.raises(ExportError) as error:
        export_qa(album, out, style=QAStyle.LLAVA)
    assert str(error.value) == (f"Cannot write {out}: No space left on device. Nothing was "
                                "written; an earlier export there is unchanged.")
    assert snapshot(out.parent) == before  # and no temporary file is left beside it
    assert sorted(os.listdir(out.parent)) == ["images", "llava.json"]


def test_a_failed_hf_export_leaves_the_previous_folder_untouched(
        tmp_path: Path, album: list[QAImage], monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "qa_hf"
    export_qa(album[:1], out, style=QAStyle.HF)
    before = snapshot(out)
    failing_copy_after(monkeypatch, good=2)
    with pytest.raises(ExportError):
        export_qa(album, out, style=QAStyle.HF)
    assert snapshot(out) == before
    assert sorted(os.listdir(tmp_path)) == ["photos", "qa_hf"]


def test_an_error_while_reading_the_images_leaves_the_previous_export(
        tmp_path: Path, album: list[QAImage]) -> None:
    out = tmp_path / "q.jsonl"
    export_qa(album, out, style=QAStyle.VQA, jsonl=True)
    before = snapshot(tmp_path)

    def broken() -> Iterator[QAImage]:
        yield album[0]
        raise RuntimeError("the project file went away")

    with pytest.raises(RuntimeError, match="went away"):
        export_qa(broken(), out, style=QAStyle.VQA, jsonl=True)
    assert snapshot(tmp_path) == before


def test_a_new_export_replaces_the_images_of_the_previous_one(tmp_path: Path,
                                                              album: list[QAImage]) -> None:
    out = tmp_path / "q.json"
    export_qa(album, out, style=QAStyle.VQA)
    export_qa(album[2:], out, style=QAStyle.VQA)
    assert files(tmp_path / "images") == [".loracap-export", "b.png"]
    assert {r["image"] for r in read_json(out)} == {"images/b.png"}


# ---------------------------------------------------------------------- refusals


def test_nothing_left_to_export_writes_nothing(tmp_path: Path, album: list[QAImage]) -> None:
    out = tmp_path / "q.json"
    with pytest.raises(NothingToExportError) as error:
        export_qa(album, out, style=QAStyle.DEFAULT, confirmed_only=True, min_score=5)
    assert str(error.value) == ("No question-answer pair is left to export (4 unconfirmed, "
                                "1 low score); nothing was written.")
    assert sorted(os.listdir(tmp_path)) == ["photos"]
    with pytest.raises(NothingToExportError, match="no images"):
        export_qa([], out, style=QAStyle.DEFAULT)


def test_an_images_folder_loracap_did_not_write_is_never_replaced(
        tmp_path: Path, album: list[QAImage]) -> None:
    mine = tmp_path / "images" / "holiday.jpg"
    photo(tmp_path, "images/holiday.jpg")
    with pytest.raises(OutputExistsError, match="LoRACap did not write it"):
        export_qa(album, tmp_path / "q.json", style=QAStyle.LLAVA)
    assert files(tmp_path / "images") == ["holiday.jpg"] and mine.is_file()
    assert not (tmp_path / "q.json").exists()
    # Embedded images need no folder: the export goes ahead beside it.
    export_qa(album, tmp_path / "q.json", style=QAStyle.LLAVA, base64_images=True)
    assert files(tmp_path / "images") == ["holiday.jpg"]


@pytest.mark.parametrize(("name", "text"), [
    ("notes.txt", "keep me"),
    # A caption export's marker (loracap.core.exports.writer): not a question-answer export.
    (".loracap-export", '{"written_by": "LoRACap 0.1.0", "format": "hf"}'),
])
def test_an_hf_folder_that_is_no_question_answer_export_is_never_replaced(
        tmp_path: Path, album: list[QAImage], name: str, text: str) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / name).write_text(text, encoding="utf-8")
    with pytest.raises(OutputExistsError, match="LoRACap did not write it"):
        export_qa(album, out, style=QAStyle.HF)
    assert files(out) == [name]


def test_an_image_inside_the_folder_the_export_replaces_stops_it(tmp_path: Path) -> None:
    out = tmp_path / "qa_hf"
    photo(tmp_path, "photos/a.jpg")
    export_qa([qa_image(tmp_path, 1, "photos/a.jpg", pair(1))], out, style=QAStyle.HF)
    inside = QAImage(2, out / "train" / "a.jpg", "a.jpg", (pair(2),))
    with pytest.raises(InputError, match="which the export replaces"):
        export_qa([inside], out, style=QAStyle.HF)
    assert (out / "train" / "a.jpg").is_file()


@pytest.mark.parametrize(("out", "options", "message"), [
    ("q.txt", {"style": QAStyle.VQA}, "a .json or .jsonl file"),
    ("hf", {"style": QAStyle.HF, "base64_images": True}, "embedding them"),
    ("q.json", {"style": QAStyle.VQA, "min_score": 6}, "must be 0 to 5, not 6"),
    ("q.json", {"style": "alpaca"}, "Unknown question-answer export style 'alpaca'"),
])
def test_options_that_do_not_fit_are_input_errors(tmp_path: Path, album: list[QAImage],
                                                  out: str, options: dict[str, Any],
                                                  message: str) -> None:
    with pytest.raises(InputError, match=message) as error:
        export_qa(album, tmp_path / out, **options)
    assert error.value.exit_code == 2
    assert sorted(os.listdir(tmp_path)) == ["photos"]


def test_a_missing_output_folder_is_an_export_error(tmp_path: Path,
                                                    album: list[QAImage]) -> None:
    with pytest.raises(ExportError, match="does not exist"):
        export_qa(album, tmp_path / "nowhere" / "q.json", style=QAStyle.VQA)


def test_a_question_without_an_answer_is_never_exported(tmp_path: Path) -> None:
    image = tmp_path / "photos" / "a.jpg"
    make_photo(image, size=(64, 48))
    entries = (QAEntry("What is this?", "A lamp.", id=1), QAEntry("How tall is it?", "", id=2))
    out = tmp_path / "out.jsonl"
    result = export_qa([QAImage(1, image, "a.jpg", entries)], out, style="default", jsonl=True)
    assert result.pairs == 1 and result.skipped == {SkipReason.UNANSWERED: 1}
    [record] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert record["question"] == "What is this?"
