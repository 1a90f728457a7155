"""The WD14 backend with the real loading, preprocessing and onnxruntime code, running the tiny
WD14-shaped model of tests/fakes/tiny_tagger.py; downloads go to a fake Hugging Face hub on
127.0.0.1 through the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from PIL import Image

from loracap.core.backends import wd14
from loracap.core.backends.base import BackendConfig, TokenUsage
from loracap.core.backends.wd14 import (
    INSTALL_HINT,
    MODELS,
    Tag,
    TaggerSettings,
    WD14Captioner,
    create,
    ensure_model,
    list_models,
    mcut_threshold,
    select_tags,
    to_model_input,
)
from loracap.core.errors import (
    CaptionError,
    ImageRejectedError,
    InputError,
    LoraCapError,
    NetworkError,
)
from loracap.core.imaging import load_rgb_on_white
from loracap.core.prompts import Profile, build_instructions
from tests.fakes.photos import make_photo
from tests.fakes.tiny_tagger import (
    DEFAULT_SIZE,
    FIXED_SCORES,
    expected_scores,
    write_tagger,
    write_tags_csv,
)

INSTRUCTIONS = build_instructions(Profile.CUSTOM, "unused by a tagger")
# The tiny model's tags above the default thresholds for an image that is neither blue, red
# nor framed in white, highest score first.
DEFAULT_TAGS = ["1girl", "hatsune miku", "long hair", "smile", "^_^", "looking at viewer",
                "(o)_(o)"]
BLUE, RED, GREY, DARK = (20, 40, 230), (230, 30, 20), (128, 128, 128), (30, 30, 30)


@pytest.fixture(scope="module")
def tagger_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tagger(tmp_path_factory.mktemp("models") / "tiny-tagger")


@pytest.fixture
def captioner(tagger_dir: Path) -> Iterator[WD14Captioner]:
    with WD14Captioner(tagger_dir) as tagger:
        yield tagger


def solid(path: Path, colour: tuple[int, ...], size: tuple[int, int] = (64, 64),
          mode: str = "RGB") -> Path:
    Image.new(mode, size, colour).save(path)
    return path


def caption_file(captioner: WD14Captioner, path: Path) -> list[str]:
    result = captioner.caption(captioner.prepare(path, 1536), INSTRUCTIONS, trigger="",
                               prefix="")
    return result.body.split(captioner.separator)


def names(tags: list[tuple[str, float]]) -> list[str]:
    return [name for name, _ in tags]


# --- preprocessing ----------------------------------------------------------------------------


def test_prepare_gives_bgr_float_array_of_the_models_input_size(tmp_path: Path) -> None:
    small = write_tagger(tmp_path / "small", size=24)
    photo = solid(tmp_path / "blue.png", BLUE, (100, 100))
    for folder, size in ((small, 24), (write_tagger(tmp_path / "default"), DEFAULT_SIZE)):
        with WD14Captioner(folder) as tagger:
            assert tagger.input_size == size
            array = tagger.prepare(photo, max_side=1536)
            assert array.shape == (size, size, 3)
            assert array.dtype == np.float32
            # Blue first: BGR, 0-255, not normalised.
            assert array[size // 2, size // 2].tolist() == [230.0, 40.0, 20.0]


def test_channel_order_blue_and_red_photos(captioner: WD14Captioner, tmp_path: Path) -> None:
    blue = caption_file(captioner, solid(tmp_path / "blue.jpg", BLUE))
    red = caption_file(captioner, solid(tmp_path / "red.png", RED))
    assert blue[0] == "blue sky" and "red theme" not in blue
    assert red[0] == "red theme" and "blue sky" not in red


def test_padding_is_white_and_centred(captioner: WD14Captioner, tmp_path: Path) -> None:
    wide = solid(tmp_path / "wide.png", DARK, (160, 40))
    array = captioner.prepare(wide, 1536)
    size = DEFAULT_SIZE
    assert array[0, 0].tolist() == [255.0] * 3  # the top band is padding
    assert array[-1, -1].tolist() == [255.0] * 3  # ... and so is the bottom band
    assert array[size // 2, 0].tolist() == [30.0] * 3  # the photo fills the middle rows
    assert "white background" in caption_file(captioner, wide)
    # A square photo has no padding: the same dark pixels give no white background.
    assert "white background" not in caption_file(captioner, solid(tmp_path / "sq.png", DARK))

    tall = captioner.prepare(solid(tmp_path / "tall.png", RED, (40, 160)), 1536)
    assert tall[size // 2, 0].tolist() == [255.0] * 3
    assert tall[size // 2, -1].tolist() == [255.0] * 3
    assert tall[size // 2, size // 2].tolist() == [20.0, 30.0, 230.0]


def test_transparency_is_composited_on_white(captioner: WD14Captioner, tmp_path: Path) -> None:
    clear = solid(tmp_path / "clear.png", (0, 0, 0, 0), mode="RGBA")
    assert captioner.prepare(clear, 1536).min() == 255.0


def test_resize_is_bicubic_from_the_padded_square(tmp_path: Path) -> None:
    photo = Image.open(make_photo(tmp_path / "photo.png", size=(90, 60), seed=3))
    square = Image.new("RGB", (90, 90), (255, 255, 255))
    square.paste(photo, (0, 15))
    expected = np.asarray(square.resize((32, 32), Image.Resampling.BICUBIC),
                          dtype=np.float32)[:, :, ::-1]
    assert np.array_equal(to_model_input(photo, 32), expected)
    bilinear = np.asarray(square.resize((32, 32), Image.Resampling.BILINEAR),
                          dtype=np.float32)[:, :, ::-1]
    assert not np.array_equal(to_model_input(photo, 32), bilinear)


def test_scores_are_the_models_for_the_prepared_image(captioner: WD14Captioner,
                                                      tmp_path: Path) -> None:
    photo = make_photo(tmp_path / "photo.jpg", size=(120, 80), seed=5)
    array = captioner.prepare(photo, 1536)
    expected = expected_scores(array)
    settings = TaggerSettings(general_threshold=0.0, character_threshold=0.0)
    tagger = WD14Captioner(captioner.folder, settings=settings)
    got = dict(tagger.tag(array))
    assert set(got) == {Tag(name, 0).display for name in expected if name not in
                        ("general", "sensitive", "questionable", "explicit")}
    for name, score in expected.items():
        if Tag(name, 0).display in got:
            assert got[Tag(name, 0).display] == pytest.approx(score, abs=1e-5)


def test_load_rgb_on_white_applies_orientation_and_refuses_corrupt_files(tmp_path: Path) -> None:
    rotated = make_photo(tmp_path / "rotated.jpg", size=(80, 40), orientation=6)
    assert load_rgb_on_white(rotated).size == (40, 80)
    clear = load_rgb_on_white(solid(tmp_path / "clear.png", (0, 0, 0, 0), mode="RGBA"))
    assert clear.mode == "RGB" and clear.getpixel((0, 0)) == (255, 255, 255)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(InputError, match="broken.jpg"):
        load_rgb_on_white(broken)


def test_prepare_of_a_corrupt_image_is_an_input_error(captioner: WD14Captioner,
                                                      tmp_path: Path) -> None:
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(InputError, match="broken.png"):
        captioner.prepare(broken, 1536)


# --- choosing tags ----------------------------------------------------------------------------


def test_default_thresholds_order_and_kaomoji(captioner: WD14Captioner, tmp_path: Path) -> None:
    tags = captioner.tag(captioner.prepare(solid(tmp_path / "grey.png", GREY), 1536))
    assert names(tags) == DEFAULT_TAGS
    scores = [score for _, score in tags]
    assert scores == sorted(scores, reverse=True)
    assert dict(tags)["hatsune miku"] == pytest.approx(FIXED_SCORES["hatsune_miku"], abs=1e-5)


def test_caption_joins_tags_with_the_separator(tagger_dir: Path, tmp_path: Path) -> None:
    config = BackendConfig(wd14.BACKEND_NAME, "", tag_separator=" | ", model_dir=tagger_dir)
    tagger = create(config)
    result = tagger.caption(tagger.prepare(solid(tmp_path / "g.png", GREY), 1536),
                            INSTRUCTIONS, trigger="ohwx", prefix="ohwx, ")
    assert result.body == " | ".join(DEFAULT_TAGS)
    assert (result.backend, result.model, result.prompt) == ("wd14", "tiny-tagger", "")
    assert result.usage == TokenUsage()
    assert result.raw.splitlines()[0] == "1girl\t0.9500"
    assert len(result.raw.splitlines()) == len(DEFAULT_TAGS)


def test_thresholds_from_options(tagger_dir: Path, tmp_path: Path) -> None:
    options = {"general_threshold": 0.5, "character_threshold": "0.5"}
    tagger = create(BackendConfig("wd14", "", options=options, model_dir=tagger_dir))
    assert caption_file(tagger, solid(tmp_path / "g.png", GREY)) == [
        "1girl", "hatsune miku", "long hair", "smile", "^_^", "kagamine rin"]


def test_mcut_cuts_at_the_largest_gap(tagger_dir: Path, tmp_path: Path) -> None:
    tagger = create(BackendConfig("wd14", "", options={"mcut": True}, model_dir=tagger_dir))
    # General scores .95 .90 .88 .85 | .45 .40 ...: the cut is at .65; characters .92 .60 | .10.
    assert caption_file(tagger, solid(tmp_path / "g.png", GREY)) == [
        "1girl", "hatsune miku", "long hair", "smile", "^_^", "kagamine rin"]


def test_mcut_threshold_and_character_floor() -> None:
    assert mcut_threshold([0.1, 0.9, 0.8, 0.2]) == pytest.approx(0.5)
    tags = [Tag("a", 0), Tag("b", 0), Tag("c", 0), Tag("x", 4), Tag("y", 4), Tag("z", 4)]
    chosen = select_tags(tags, [0.9, 0.2, 0.1, 0.12, 0.05, 0.01], TaggerSettings(mcut=True))
    # MCut alone would keep "x" (cut at 0.085); the character floor is 0.15.
    assert names(chosen) == ["a"]
    chosen = select_tags(tags, [0.9, 0.2, 0.1, 0.5, 0.05, 0.01], TaggerSettings(mcut=True))
    assert names(chosen) == ["a", "x"]
    with pytest.raises(ValueError):
        mcut_threshold([0.5])


def test_ratings_left_out_unless_asked(tagger_dir: Path, tmp_path: Path) -> None:
    grey = solid(tmp_path / "g.png", GREY)
    plain = caption_file(WD14Captioner(tagger_dir), grey)
    assert not {"general", "sensitive", "questionable", "explicit"} & set(plain)
    rated = create(BackendConfig("wd14", "", options={"include_rating": True},
                                 model_dir=tagger_dir))
    assert caption_file(rated, grey) == ["sensitive", *DEFAULT_TAGS]


def test_exclusion_list_ignores_case_and_underscores(tagger_dir: Path, tmp_path: Path) -> None:
    options = {"exclude": ["Long_Hair", "HATSUNE MIKU", "^_^", "sensitive"],
               "include_rating": True}
    tagger = create(BackendConfig("wd14", "", options=options, model_dir=tagger_dir))
    assert caption_file(tagger, solid(tmp_path / "g.png", GREY)) == [
        "1girl", "smile", "looking at viewer", "(o)_(o)"]


def test_nothing_above_the_thresholds_rejects_the_image(tagger_dir: Path, tmp_path: Path) -> None:
    settings = TaggerSettings(general_threshold=1.0, character_threshold=1.0)
    tagger = WD14Captioner(tagger_dir, settings=settings)
    with pytest.raises(ImageRejectedError, match="no tag above"):
        caption_file(tagger, solid(tmp_path / "g.png", GREY))


@pytest.mark.parametrize(("options", "message"), [
    ({"general_threshold": 1.5}, "general_threshold must be a number from 0 to 1"),
    ({"character_threshold": -0.1}, "character_threshold"),
    ({"general_threshold": "high"}, "general_threshold"),
    ({"general_threshold": True}, "general_threshold"),
    ({"general_threshold": float("nan")}, "general_threshold"),
    ({"mcut": "maybe"}, "mcut must be true or false"),
    ({"exclude": 5}, "exclude must be a list"),
    ({"exclude": ["ok", 3]}, "exclude must list tags as text"),
])
def test_bad_options_are_input_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message):
        TaggerSettings.from_options(options)


def test_options_in_text_form() -> None:
    settings = TaggerSettings.from_options(
        {"mcut": "yes", "include_rating": "0", "exclude": "a_b, c ,", "general_threshold": "0.4",
         "from_a_newer_version": 1})
    assert settings == TaggerSettings(general_threshold=0.4, mcut=True, include_rating=False,
                                      exclude=("a_b", "c"))


# --- batching ---------------------------------------------------------------------------------


def _counting_session(monkeypatch: pytest.MonkeyPatch, gate: threading.Event
                      ) -> list[int]:
    """Replaces onnxruntime.InferenceSession by one that records each run's batch size and
    holds the first run until ``gate`` is set."""
    batches: list[int] = []

    class CountingSession(onnxruntime.InferenceSession):  # type: ignore[misc]
        def run(self, output_names, input_feed, run_options=None):  # type: ignore[no-untyped-def]
            batches.append(len(next(iter(input_feed.values()))))
            if len(batches) == 1:
                assert gate.wait(10), "the test never released the first batch"
            return super().run(output_names, input_feed, run_options)

    monkeypatch.setattr(onnxruntime, "InferenceSession", CountingSession)
    return batches


@pytest.mark.parametrize("images", [8, 12])
def test_concurrent_calls_share_batches(tagger_dir: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, images: int) -> None:
    # Photos from blue to red: each has its own blue-sky and red-theme scores.
    paths = [solid(tmp_path / f"{i}.png", (int(255 * i / images), 60, int(255 * (1 - i / images))))
             for i in range(images)]
    with WD14Captioner(tagger_dir) as reference:
        expected = [reference.tag(reference.prepare(path, 1536)) for path in paths]
    gate = threading.Event()
    batches = _counting_session(monkeypatch, gate)
    tagger = WD14Captioner(tagger_dir, max_batch=8)
    arrays = [tagger.prepare(path, 1536) for path in paths]
    results: dict[int, list[tuple[str, float]]] = {}

    def work(index: int) -> None:
        results[index] = tagger.tag(arrays[index])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(images)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    # Let the first batch run once every other image waits in the queue.
    while not (batches and batches[0] + tagger.queued == images):
        assert time.monotonic() < deadline, f"only {tagger.queued} images queued"
        time.sleep(0.005)
    gate.set()
    for thread in threads:
        thread.join(10)
    assert sum(batches) == images
    assert max(batches) <= 8
    assert len(batches) == (2 if images - batches[0] <= 8 else 3)
    for index in range(images):
        assert names(results[index]) == names(expected[index])
        assert [s for _, s in results[index]] == pytest.approx([s for _, s in expected[index]],
                                                               abs=1e-5)
    assert len({tuple(names(r)) for r in results.values()}) > 1  # the rows were not mixed up


def test_a_failed_batch_fails_every_caller(tagger_dir: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    class BrokenSession(onnxruntime.InferenceSession):  # type: ignore[misc]
        def run(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            raise RuntimeError("out of memory")

    monkeypatch.setattr(onnxruntime, "InferenceSession", BrokenSession)
    tagger = WD14Captioner(tagger_dir)
    array = np.full((DEFAULT_SIZE, DEFAULT_SIZE, 3), 128, dtype=np.float32)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            tagger.tag(array)
        except CaptionError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(errors) == 4
    assert "failed to run (out of memory)" in str(errors[0])


def test_model_loads_once_for_many_threads(tagger_dir: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[int] = []

    class CountedSession(onnxruntime.InferenceSession):  # type: ignore[misc]
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            created.append(1)
            time.sleep(0.05)  # a slow load, so that the other threads arrive meanwhile
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(onnxruntime, "InferenceSession", CountedSession)
    tagger = WD14Captioner(tagger_dir)
    photo = solid(tmp_path / "g.png", GREY)
    threads = [threading.Thread(target=tagger.prepare, args=(photo, 1536)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert created == [1]


# --- model files ------------------------------------------------------------------------------


def test_model_dir_without_selected_tags(tmp_path: Path) -> None:
    folder = write_tagger(tmp_path / "model")
    (folder / "selected_tags.csv").unlink()
    with pytest.raises(InputError, match=r"WD14 backend needs selected_tags\.csv beside "
                                         r"model\.onnx"):
        create(BackendConfig("wd14", "", model_dir=folder))


def test_model_dir_without_model_or_missing(tmp_path: Path) -> None:
    folder = write_tagger(tmp_path / "model")
    (folder / "model.onnx").unlink()
    with pytest.raises(InputError, match=r"needs model\.onnx in"):
        create(BackendConfig("wd14", "", model_dir=folder))
    with pytest.raises(InputError, match="does not exist"):
        create(BackendConfig("wd14", "", model_dir=tmp_path / "nowhere"))


@pytest.mark.parametrize(("content", "message"), [
    (b"tag_id,label,category,count\n1,a,0,5\n", "it has no name column"),
    (b"tag_id,name,category,count\n1,a,general,5\n", "line 2 has the category 'general'"),
    (b"tag_id,name,category,count\n", "it lists no tag"),
    (b"tag_id,name,category,count\n1,\xff\xfe,0,5\n", "it is not UTF-8 text"),
])
def test_unreadable_selected_tags(tmp_path: Path, content: bytes, message: str) -> None:
    folder = write_tagger(tmp_path / "model")
    (folder / "selected_tags.csv").write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        create(BackendConfig("wd14", "", model_dir=folder))
    assert "The WD14 backend cannot read" in str(caught.value)


def test_corrupt_model_onnx(tmp_path: Path) -> None:
    folder = write_tagger(tmp_path / "model")
    (folder / "model.onnx").write_bytes(b"<html>404 Not Found</html>")
    tagger = create(BackendConfig("wd14", "", model_dir=folder))
    with pytest.raises(InputError, match=r"cannot load .*model\.onnx.*not a valid ONNX model"):
        tagger.load()
    # During a batch the same problem stops the batch instead of failing each image.
    with pytest.raises(CaptionError, match="not a valid ONNX model") as caught:
        tagger.prepare(solid(tmp_path / "g.png", GREY), 1536)
    assert not isinstance(caught.value, InputError)


@pytest.mark.parametrize(("layout", "channels"), [("NCHW", 3), ("NHWC", 4)])
def test_model_input_must_be_nhwc_with_three_channels(tmp_path: Path, layout: str,
                                                      channels: int) -> None:
    folder = write_tagger(tmp_path / "model", layout=layout, channels=channels)
    with pytest.raises(InputError, match=r"\[batch, size, size, 3\] \(NHWC"):
        create(BackendConfig("wd14", "", model_dir=folder)).load()


def test_tags_of_another_model(tmp_path: Path) -> None:
    folder = write_tagger(tmp_path / "model")
    write_tags_csv(folder / "selected_tags.csv", [("1girl", 0), ("solo", 0)])
    with pytest.raises(InputError, match="lists 2 tags: the two files come from different"):
        create(BackendConfig("wd14", "", model_dir=folder)).load()


def test_onnxruntime_missing_is_a_clear_error(tagger_dir: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # "import onnxruntime" fails
    with pytest.raises(LoraCapError) as caught:
        create(BackendConfig("wd14", "", model_dir=tagger_dir))
    assert str(caught.value).startswith(
        "The WD14 tagger needs the wd14 extra (onnxruntime, numpy, huggingface_hub): pip install "
        "\"loracap[wd14]\"")
    assert INSTALL_HINT in str(caught.value)


def test_module_imports_without_the_wd14_extra() -> None:
    code = (
        "import sys\n"
        "for name in ('onnxruntime', 'numpy', 'huggingface_hub'): sys.modules[name] = None\n"
        "from loracap.core.backends import registry\n"
        "from loracap.core.backends.base import BackendConfig\n"
        "print(registry.list_models(BackendConfig('wd14', ''))[0])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "wd-eva02-large-tagger-v3"


def test_list_models_and_unknown_names() -> None:
    assert list_models(BackendConfig("wd14", "")) == list(MODELS)
    assert "wd-v1-4-moat-tagger-v2" in MODELS
    with pytest.raises(InputError, match="no WD14 model called 'wd-nope'"):
        ensure_model("wd-nope")


# --- downloads --------------------------------------------------------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serves ``/<owner>/<repo>/resolve/main/<file>`` as the Hugging Face hub does for a
    file stored without Xet: HEAD and GET, with X-Repo-Commit, ETag and Content-Length."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files  # "SmilingWolf/x/model.onnx" -> bytes
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                parts = self.path.split("?")[0].strip("/").split("/")
                key = "/".join(parts[:2] + parts[4:]) if parts[2:4] == ["resolve", "main"] \
                    else ""
                data = hub.files.get(key)
                if data is None:
                    self.send_response(404)
                    repo_known = any(name.startswith("/".join(parts[:2]) + "/")
                                     for name in hub.files)
                    self.send_header("X-Error-Code",
                                     "EntryNotFound" if repo_known else "RepoNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hub(tagger_dir: Path) -> Iterator[FakeHub]:
    files = {f"SmilingWolf/wd-vit-tagger-v3/{name}": (tagger_dir / name).read_bytes()
             for name in ("model.onnx", "selected_tags.csv")}
    with FakeHub(files) as fake:
        yield fake


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """LoRACap's cache in tmp_path, and an empty Hugging Face cache."""
    import huggingface_hub.constants

    monkeypatch.setenv("LORACAP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path / "home"


def test_download_reports_progress_and_is_reused(hub: FakeHub, home: Path, tagger_dir: Path,
                                                 tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not downloaded yet.*--model-dir"):
        create(BackendConfig("wd14", "wd-vit-tagger-v3"))
    seen: list[tuple[int, int]] = []
    folder = ensure_model("wd-vit-tagger-v3", progress=lambda d, t: seen.append((d, t)),
                          endpoint=hub.url)
    assert folder.is_relative_to(home / "cache" / "wd14")
    for name in ("model.onnx", "selected_tags.csv"):
        assert (folder / name).read_bytes() == (tagger_dir / name).read_bytes()
    total = sum((tagger_dir / name).stat().st_size for name in ("model.onnx",
                                                                "selected_tags.csv"))
    assert seen[0] == (0, total) and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert {t for _, t in seen} == {total}
    assert len(seen) > 2  # bytes as they arrive, not only the start and the end
    gets = [path for method, path in hub.requests if method == "GET"]
    assert len(gets) == 2

    # Afterwards: no request at all, and the captioner is built from the cache.
    hub.requests.clear()
    assert ensure_model("wd-vit-tagger-v3", endpoint=hub.url) == folder
    tagger = create(BackendConfig("wd14", "wd-vit-tagger-v3"))
    assert hub.requests == []
    assert tagger.model == "wd-vit-tagger-v3"
    assert caption_file(tagger, solid(tmp_path / "g.png", GREY)) == DEFAULT_TAGS


def test_download_cancelled_by_the_progress_callback(hub: FakeHub, home: Path) -> None:
    class Stop(Exception):
        pass

    def cancel(done: int, total: int) -> None:
        if done:
            raise Stop

    with pytest.raises(Stop):
        ensure_model("wd-vit-tagger-v3", progress=cancel, endpoint=hub.url)


def test_download_of_a_missing_repo_is_an_input_error(hub: FakeHub, home: Path) -> None:
    with pytest.raises(InputError, match="no WD14 tagger files .* https://huggingface.co/someone/missing"):
        ensure_model("someone/missing", endpoint=hub.url)


def test_download_without_network_says_what_to_do(home: Path) -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as closed:
        url = f"http://127.0.0.1:{closed.server_address[1]}"
    with pytest.raises(NetworkError) as caught:
        ensure_model("wd-vit-tagger-v3", endpoint=url)
    message = str(caught.value)
    assert "Could not download the WD14 model 'wd-vit-tagger-v3'" in message
    assert "https://huggingface.co/SmilingWolf/wd-vit-tagger-v3" in message
    assert "--model-dir" in message
