"""The dataset check: every finding kind, on real project files and real photos."""

from __future__ import annotations

import random
import struct
import threading
import zlib
from array import array
from pathlib import Path

import pytest
from PIL import Image

from loracap.core import checks
from loracap.core.checks import (
    CLIP_TOKEN_LIMIT,
    Finding,
    check_project,
    count_clip_tokens,
    dhash,
    foreign_prefix_edits,
    near_duplicate_pairs,
    strip_foreign_label,
    summary_text,
)
from loracap.core.project import Project
from loracap.core.scan import scan_folder
from tests.fakes.photos import make_photo, make_photo_folder

SHORT = "entrance area, glass doors, marble floor"


def new_project(folder: Path, trigger: str = "hall", **kwargs: str) -> Project:
    project = Project.create(folder / f"{trigger}.loraproj", trigger=trigger, **kwargs)
    project.add_scanned(scan_folder(folder))
    return project


def ids_by_path(project: Project) -> dict[str, int]:
    return {rec.path: rec.id for rec in project.images()}


def kinds(findings: list[Finding]) -> set[tuple[str, str]]:
    return {(f.path, f.kind) for f in findings}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "hall"
    make_photo_folder(folder, 3, size=(800, 600))  # IMG_0001..3, all different
    return folder


def caption_all(project: Project, bodies: dict[str, str]) -> None:
    ids = ids_by_path(project)
    for path, body in bodies.items():
        project.store_generated(ids[path], body, backend="gemini", model="m", prompt="p")


# ---------------------------------------------------------------------- tokens


def test_token_count_is_exact_for_known_phrases() -> None:
    # OpenAI CLIP's tokenizer: "a person riding a motorcycle" -> [320, 2533, 6765, 320, 10297].
    assert count_clip_tokens("A person riding a motorcycle") == 5
    # Lowercased like CLIP; the trigger word splits into ide _ main _ hall.
    assert count_clip_tokens("photo of ide_main_hall, a hall") == 10
    assert count_clip_tokens("") == 0


def test_tokenizer_is_shared_across_threads() -> None:
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(count_clip_tokens("a red sofa")))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [3] * 8
    assert checks._tokenizer is not None


def test_tokenizer_works_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the tokenizer tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(checks, "_tokenizer", None)  # force a fresh tokenizer
    assert count_clip_tokens("photo of hall, a wide lobby") == 7


# ---------------------------------------------------------------------- caption findings


def test_clean_project_has_no_findings(folder: Path) -> None:
    with new_project(folder) as project:
        caption_all(project, {"IMG_0001.jpg": SHORT, "IMG_0002.jpg": "a lecture hall, red chairs",
                              "IMG_0003.jpg": "a corridor with lockers"})
        assert check_project(project) == []


def test_too_long_counts_the_full_caption(folder: Path) -> None:
    long_body = " ".join(f"word{i % 7}" for i in range(100))
    with new_project(folder) as project:
        caption_all(project, {"IMG_0001.jpg": long_body, "IMG_0002.jpg": SHORT})
        found = [f for f in check_project(project) if f.kind == "too_long"]
        assert [f.path for f in found] == ["IMG_0001.jpg"]
        tokens = count_clip_tokens("photo of hall " + long_body)
        assert tokens > CLIP_TOKEN_LIMIT
        assert f"{tokens} CLIP tokens" in found[0].message


def test_too_long_boundary_includes_the_prefix(folder: Path) -> None:
    # "photo of hall" is 3 tokens; "a" is one token each: 72 + 3 = 75 is fine, 73 + 3 is not.
    with new_project(folder) as project:
        caption_all(project, {"IMG_0001.jpg": " ".join(["a"] * 72),
                              "IMG_0002.jpg": " ".join(["a"] * 73)})
        assert kinds(check_project(project, near_duplicates=False)) == {
            ("IMG_0002.jpg", "too_long")}


def test_empty_caption(folder: Path) -> None:
    with new_project(folder) as project:
        ids = ids_by_path(project)
        project.edit_caption(ids["IMG_0001.jpg"], "   ")
        caption_all(project, {"IMG_0002.jpg": SHORT})
        # IMG_0003 has no caption at all: not "empty".
        assert kinds(check_project(project)) == {("IMG_0001.jpg", "empty")}


def test_duplicate_captions_one_finding_per_image(folder: Path) -> None:
    make_photo(folder / "IMG_0004.jpg", size=(800, 600), seed=4)
    with new_project(folder) as project:
        caption_all(project, {"IMG_0001.jpg": SHORT, "IMG_0002.jpg": "  " + SHORT.upper(),
                              "IMG_0003.jpg": SHORT, "IMG_0004.jpg": "something else"})
        found = [f for f in check_project(project) if f.kind == "duplicate"]
        assert [f.path for f in found] == ["IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg"]
        assert "IMG_0002.jpg" in found[0].message and "IMG_0003.jpg" in found[0].message
        assert "IMG_0001.jpg" not in found[0].message


def test_prefix_twice(folder: Path) -> None:
    with new_project(folder) as project:
        caption_all(project, {
            "IMG_0001.jpg": "Photo of  hall, entrance area",  # starts with the prefix
            "IMG_0002.jpg": "a lobby; another photo of hall from the stairs",  # contains it
            "IMG_0003.jpg": "a photo of halls and hallways",  # a different word: fine
        })
        found = check_project(project)
        assert kinds(found) == {("IMG_0001.jpg", "prefix_twice"), ("IMG_0002.jpg", "prefix_twice")}


def test_prefix_missing_only_without_trigger_in_template(folder: Path) -> None:
    with new_project(folder) as project:
        caption_all(project, {"IMG_0001.jpg": "a hall lobby", "IMG_0002.jpg": "a lobby",
                              "IMG_0003.jpg": "a lobby, hallway"})
        assert check_project(project) == []  # the default prefix carries the trigger word
        project.update_settings(prefix_template="")
        found = check_project(project)
        assert kinds(found) == {("IMG_0002.jpg", "prefix_missing"),
                                ("IMG_0003.jpg", "prefix_missing")}
        project.update_settings(prefix_template="a photo, ")
        assert kinds(check_project(project)) == kinds(found)


def test_prefix_other_in_imported_sidecar_captions(folder: Path) -> None:
    (folder / "IMG_0001.txt").write_text("photo of other_name a hall, tall windows",
                                         encoding="utf-8")
    (folder / "IMG_0002.txt").write_text("photo of hall photo of TOK, a lobby", encoding="utf-8")
    (folder / "IMG_0003.txt").write_text("photo of a corridor", encoding="utf-8")
    with new_project(folder) as project:
        found = check_project(project, near_duplicates=False)
        assert kinds(found) == {("IMG_0001.jpg", "prefix_other"),
                                ("IMG_0002.jpg", "prefix_other")}
        first = next(f for f in found if f.path == "IMG_0001.jpg")
        assert first.message == (
            'The caption starts with "photo of other_name": another trigger word\'s prefix; '
            'the export would read "photo of hall photo of other_name …".')
        # the project's own prefix is prefix_twice, never prefix_other
        project.edit_caption(ids_by_path(project)["IMG_0003.jpg"], "photo of hall a corridor")
        found = check_project(project, near_duplicates=False)
        assert ("IMG_0003.jpg", "prefix_twice") in kinds(found)
        assert ("IMG_0003.jpg", "prefix_other") not in kinds(found)
        # a template without {trigger} has no foreign prefix
        project.update_settings(prefix_template="a photo, ")
        assert not any(f.kind == "prefix_other" for f in check_project(project))
        assert summary_text(found, 3).startswith(
            "3 findings in 3 images: 1 doubled prefix, 2 foreign prefixes")


def test_foreign_prefix_edits_strip_it_and_nothing_else(folder: Path) -> None:
    (folder / "IMG_0001.txt").write_text("photo of other_name, a hall", encoding="utf-8")
    (folder / "IMG_0002.txt").write_text("photo of other_name", encoding="utf-8")  # only that
    (folder / "IMG_0003.txt").write_text("photo of a corridor", encoding="utf-8")
    with new_project(folder) as project:
        ids = ids_by_path(project)
        assert foreign_prefix_edits(project, ids.values()) == {ids["IMG_0001.jpg"]: "a hall"}
        assert project.image(ids["IMG_0001.jpg"]).caption.body == "photo of other_name, a hall"
    assert strip_foreign_label(1) == "Strip another trigger word's prefix from 1 caption"
    assert strip_foreign_label(3) == "Strip another trigger word's prefix from 3 captions"


# ---------------------------------------------------------------------- image findings


def test_small_image(folder: Path) -> None:
    make_photo(folder / "tiny.jpg", size=(400, 300), seed=7)
    make_photo(folder / "edge.jpg", size=(512, 900), seed=8)
    with new_project(folder) as project:
        found = check_project(project)
        assert kinds(found) == {("tiny.jpg", "small")}
        assert "400x300" in found[0].message


def test_an_image_too_small_to_train_on_is_untrainable_not_just_small(folder: Path) -> None:
    make_photo(folder / "thumb.jpg", size=(160, 100), seed=7)
    with new_project(folder) as project:
        found = [f for f in check_project(project, near_duplicates=False)
                 if f.path == "thumb.jpg"]
    assert [f.kind for f in found] == ["untrainable"]
    assert found[0].message == (
        "The image is 160x100 px: its short side is below 128 px, which would abort Replicate "
        "training (ai-toolkit gives it a 0 × 0 bucket). Exports stop on it (or leave it out "
        "with --skip-untrainable).")


def test_near_duplicates_resized_and_reencoded_copies(folder: Path) -> None:
    original = folder / "IMG_0001.jpg"
    with Image.open(original) as im:
        im.resize((1000, 750)).save(folder / "copy_big.png")  # larger, PNG
        im.save(folder / "copy_q40.jpg", quality=40)
    with new_project(folder) as project:
        found = [f for f in check_project(project) if f.kind == "near_duplicate"]
        assert [f.path for f in found] == ["IMG_0001.jpg", "copy_big.png", "copy_q40.jpg"]
        assert "copy_q40.jpg" in found[0].message and "copy_big.png" in found[0].message
        assert "IMG_0002.jpg" not in " ".join(f.message for f in found)
        assert check_project(project, near_duplicates=False) == []


def test_dhash_applies_exif_orientation(tmp_path: Path) -> None:
    upright = make_photo(tmp_path / "upright.jpg", size=(800, 600), seed=3)
    with Image.open(upright) as im:
        stored = im.rotate(90, expand=True)  # pixels stored turned; EXIF 6 turns them back
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "tagged.jpg", exif=exif)
    stored.save(tmp_path / "untagged.jpg")
    base = dhash(upright)
    assert (base ^ dhash(tmp_path / "tagged.jpg")).bit_count() <= 2
    assert (base ^ dhash(tmp_path / "untagged.jpg")).bit_count() > 6


def write_png16(path: Path, image: Image.Image, seed: int = 0) -> Path:
    """Write ``image`` (mode L or RGB) as a real 16-bit PNG (greyscale or 48-bit RGB), built
    byte by byte (PNG spec: IHDR bit depth 16, big-endian samples, filter 0 per row). Each 8-bit
    sample ``v`` becomes ``v * 257`` plus noise of up to half an 8-bit step that leaves the high
    byte ``v``, so the file has detail an 8-bit copy does not, and its 8-bit copy (rounded, or
    the high byte) is ``image`` again."""
    rng = random.Random(seed)
    samples = array("H", (v * 257 + rng.randint(-min(v, 128), min(255 - v, 128))
                          for v in image.tobytes()))
    samples.byteswap()  # to big-endian (this machine is little-endian)
    raw = samples.tobytes()
    width, height = image.size
    stride = width * len(image.getbands()) * 2
    rows = b"".join(b"\0" + raw[y * stride:(y + 1) * stride] for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colour_type = 2 if image.mode == "RGB" else 0
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def test_dhash_of_16_bit_images_matches_their_8_bit_copy(tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "photo.png", size=(640, 480), seed=4)  # 8-bit RGB
    with Image.open(photo) as im:
        rgb = im.convert("RGB")
    gray = rgb.convert("L")
    gray.save(tmp_path / "gray8.png")
    wide = gray.convert("I").point(lambda v: v * 257)  # 0..65535
    grays = {
        "gray16.png": write_png16(tmp_path / "gray16.png", gray, seed=1),
        "pillow_i16.png": tmp_path / "pillow_i16.png",
        "i16b.tif": tmp_path / "i16b.tif",
        "int32.tif": tmp_path / "int32.tif",
        "float.tif": tmp_path / "float.tif",
    }
    wide.convert("I;16").save(grays["pillow_i16.png"])
    wide.convert("I;16B").save(grays["i16b.tif"])
    wide.save(grays["int32.tif"])
    gray.convert("F").point(lambda v: v / 255).save(grays["float.tif"])  # 0.0..1.0
    with Image.open(grays["gray16.png"]) as im:
        assert im.mode in ("I;16", "I") and im.getextrema()[1] > 255  # really 16-bit
    with Image.open(grays["i16b.tif"]) as im:
        assert im.mode == "I;16B"
    with Image.open(grays["float.tif"]) as im:
        assert im.mode == "F"

    base = dhash(tmp_path / "gray8.png")
    assert bin(base).count("1") > 10  # a real hash, not a blank image's
    distances = {name: (dhash(path) ^ base).bit_count() for name, path in grays.items()}
    assert distances == dict.fromkeys(grays, 0)  # scaled and rounded as an 8-bit export does
    # 48-bit RGB: Pillow reads it as 8-bit RGB (the high byte of each sample).
    rgb48 = write_png16(tmp_path / "rgb48.png", rgb, seed=2)
    assert dhash(rgb48) == dhash(photo)


def test_near_duplicates_include_16_bit_copies(folder: Path) -> None:
    with Image.open(folder / "IMG_0001.jpg") as im:
        rgb = im.convert("RGB")
    write_png16(folder / "copy_gray16.png", rgb.convert("L"))
    write_png16(folder / "copy_rgb48.png", rgb)
    with new_project(folder) as project:
        found = [f for f in check_project(project) if f.kind == "near_duplicate"]
        assert [f.path for f in found] == ["IMG_0001.jpg", "copy_gray16.png", "copy_rgb48.png"]
        assert "copy_gray16.png" in found[0].message and "copy_rgb48.png" in found[0].message


def test_missing_and_unreadable_files_are_skipped(folder: Path) -> None:
    with new_project(folder) as project:
        (folder / "IMG_0002.jpg").unlink()
        (folder / "IMG_0003.jpg").write_bytes(b"garbage now")
        seen: list[tuple[int, int]] = []
        assert check_project(project, progress=lambda d, t: seen.append((d, t))) == []
        assert seen == [(1, 3), (2, 3), (3, 3)]


def test_near_duplicate_pairs_matches_brute_force() -> None:
    import random

    rng = random.Random(5)
    hashes: list[tuple[int, int]] = []
    for i in range(300):
        base = rng.getrandbits(64) if i % 3 == 0 else hashes[-1][1]
        for _ in range(rng.randrange(0, 9)):
            base ^= 1 << rng.randrange(64)
        hashes.append((i, base))
    expected = {(a, b) for (a, ha) in hashes for (b, hb) in hashes
                if a < b and (ha ^ hb).bit_count() <= 6}
    got = {(a, b) for a, b, _ in near_duplicate_pairs(hashes, 6)}
    assert expected and got == expected


def test_findings_sorted_by_path_then_kind(folder: Path) -> None:
    make_photo(folder / "a_tiny.jpg", size=(400, 300), seed=9)
    with new_project(folder, prefix_template="") as project:
        ids = ids_by_path(project)
        project.edit_caption(ids["a_tiny.jpg"], "a lobby")
        project.edit_caption(ids["IMG_0001.jpg"], "a lobby")
        found = check_project(project)
        assert [(f.path, f.kind) for f in found] == [
            ("IMG_0001.jpg", "duplicate"), ("IMG_0001.jpg", "prefix_missing"),
            ("a_tiny.jpg", "duplicate"), ("a_tiny.jpg", "prefix_missing"),
            ("a_tiny.jpg", "small"),
        ]


def test_summary_text() -> None:
    assert summary_text([], 32) == "No problems found in 32 images."
    found = [Finding("too_long", 1, "a", ""), Finding("too_long", 2, "b", ""),
             Finding("duplicate", 3, "c", "")]
    assert summary_text(found, 32) == "3 findings in 32 images: 1 duplicate, 2 too long."


def test_multi_line_captions_are_flagged_for_a_one_line_export(folder: Path) -> None:
    from loracap.core.exports.registry import get_format

    multi = "sksA: A woman in a blue dress.\nsksB: A man in a suit.\nScene: A quiet office."
    with new_project(folder) as project:
        caption_all(project, {"IMG_0001.jpg": multi, "IMG_0002.jpg": SHORT})
        # No export yet: checked for Replicate's zip, which joins the lines.
        found = [f for f in check_project(project, near_duplicates=False)
                 if f.kind == "multi_line"]
        assert [f.path for f in found] == ["IMG_0001.jpg"]
        assert "3 lines" in found[0].message and "Replicate" in found[0].message
        # A Hugging Face dataset keeps the lines: nothing to flag.
        assert not [f for f in check_project(project, near_duplicates=False,
                                             export_format=get_format("hf"))
                    if f.kind == "multi_line"]
        # The latest export's format is the one checked.
        project.record_export(folder / "out", "hf", size=1, sha256="0" * 64)
        assert "multi_line" not in {f.kind for f in check_project(project,
                                                                   near_duplicates=False)}
        project.record_export(folder / "kohya", "kohya", size=1, sha256="0" * 64)
        [again] = [f for f in check_project(project, near_duplicates=False)
                   if f.kind == "multi_line"]
        assert "kohya" in again.message.lower()
