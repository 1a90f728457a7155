"""The WD14 tagger backend: SmilingWolf's booru taggers, run locally with onnxruntime.

A tagger gives every tag of its list a score and keeps those above a threshold; the caption is
the kept tags joined with the project's tag separator. Nothing leaves the computer, and nothing
is billed (usage is zero).

This module holds the preprocessing, the captioner (with its micro-batcher), the ONNX session
and the registry's entry points. The tag list and tag choice are in
:mod:`loracap.core.backends.wd14_tags`, the optional dependencies and model files in
:mod:`loracap.core.backends.wd14_models`; their public names are re-exported here.

Facts this module relies on (SmilingWolf's model cards and his ``wd-tagger`` Space on Hugging
Face, summed up in PRODUCT.md):

* A model folder (or the Hugging Face repo ``SmilingWolf/<name>``) holds ``model.onnx`` and
  ``selected_tags.csv``; row *i* of the CSV names output *i*.
* The input is ``[batch, 448, 448, 3]`` float32, BGR, 0-255 (NHWC). The image is composited
  onto white, padded to a centred white square and resized with bicubic filtering. This module
  reads the size from the model's input shape rather than assuming 448.
* The output is ``[batch, n_tags]`` sigmoid scores, turned into tags by
  :func:`~loracap.core.backends.wd14_tags.select_tags`.

numpy and onnxruntime (the optional ``wd14`` extra) are imported only when a tagger is built or
run (:func:`~loracap.core.backends.wd14_models.check_dependencies`).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from loracap.core.backends.base import BackendConfig, GeneratedCaption, TokenUsage
from loracap.core.backends.wd14_models import (
    DEFAULT_MODEL,
    FROZEN_HINT,
    HF_OWNER,
    INSTALL_HINT,
    MODEL_FILE,
    MODELS,
    TAGS_FILE,
    ProgressCallback,
    _detail,
    _require,
    cached_model,
    check_dependencies,
    default_cache_dir,
    ensure_model,
    repo_id,
)
from loracap.core.backends.wd14_tags import (
    CHARACTER,
    DEFAULT_CHARACTER_THRESHOLD,
    DEFAULT_GENERAL_THRESHOLD,
    GENERAL,
    KAOMOJI,
    MCUT_CHARACTER_FLOOR,
    RATING,
    Tag,
    TaggerSettings,
    display_name,
    mcut_threshold,
    read_tags,
    select_tags,
    tags_text,
)
from loracap.core.errors import CaptionError, ImageRejectedError, InputError
from loracap.core.prompts import Instructions

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from PIL import Image

__all__ = [
    # this module: preprocessing, the captioner and the registry's entry points
    "BACKEND_NAME", "MAX_BATCH", "WD14Captioner", "create", "list_models", "to_model_input",
    # wd14_models: optional dependencies and model files
    "DEFAULT_MODEL", "FROZEN_HINT", "HF_OWNER", "INSTALL_HINT", "MODELS", "MODEL_FILE",
    "TAGS_FILE", "ProgressCallback", "cached_model", "check_dependencies", "default_cache_dir",
    "ensure_model", "repo_id",
    # wd14_tags: the tag list and tag choice
    "CHARACTER", "DEFAULT_CHARACTER_THRESHOLD", "DEFAULT_GENERAL_THRESHOLD", "GENERAL",
    "KAOMOJI", "MCUT_CHARACTER_FLOOR", "RATING", "Tag", "TaggerSettings", "display_name",
    "mcut_threshold", "read_tags", "select_tags", "tags_text",
]

logger = logging.getLogger(__name__)

BACKEND_NAME = "wd14"

#: Most images one ``session.run`` takes; concurrent calls are coalesced up to it.
MAX_BATCH = 8


# --- preprocessing ----------------------------------------------------------------------------


def to_model_input(image: Image.Image, size: int) -> NDArray[np.float32]:
    """The ``(size, size, 3)`` float32 array a WD14 model takes for ``image``, as the models
    were trained (SmilingWolf's model cards and Space): transparency composited onto white
    (:func:`loracap.core.imaging.to_rgb_on_white`), padded to a centred square with white,
    resized to ``size`` × ``size`` with bicubic filtering (when not that size already), RGB
    turned into BGR, values 0-255 (not normalised). Raises ValueError for ``size`` < 1."""
    import numpy as np
    from PIL import Image

    from loracap.core.imaging import to_rgb_on_white

    if size < 1:
        raise ValueError(f"size must be at least 1, got {size}")
    rgb = to_rgb_on_white(image)
    width, height = rgb.size
    side = max(width, height)
    square = Image.new("RGB", (side, side), (255, 255, 255))
    square.paste(rgb, ((side - width) // 2, (side - height) // 2))
    if side != size:
        square = square.resize((size, size), Image.Resampling.BICUBIC)
    pixels = np.asarray(square, dtype=np.float32)
    bgr: NDArray[np.float32] = np.ascontiguousarray(pixels[:, :, ::-1])
    return bgr


# --- the captioner ----------------------------------------------------------------------------


class _Row:
    """One image waiting in the micro-batcher, and then its result."""

    __slots__ = ("image", "scores", "error", "done")

    def __init__(self, image: NDArray[np.float32]) -> None:
        self.image = image
        self.scores: NDArray[np.float32] | None = None
        self.error: BaseException | None = None
        self.done = False


class _MicroBatcher:
    """Coalesces concurrent calls into batches of at most ``max_batch`` rows.

    A caller queues its row and, when no batch is running, runs one with the rows queued (its
    own among them, or earlier ones first); otherwise it sleeps on a condition until the
    running batch ends. So one ``run`` happens at a time, rows queued during it go together in
    the next, and nobody busy-waits.
    """

    def __init__(self, run: Callable[[NDArray[np.float32]], NDArray[np.float32]],
                 max_batch: int) -> None:
        self._run = run
        self._max = max(1, max_batch)
        self._cond = threading.Condition()
        self._queue: deque[_Row] = deque()
        self._busy = False

    @property
    def queued(self) -> int:
        """Rows waiting for a batch."""
        with self._cond:
            return len(self._queue)

    def submit(self, image: NDArray[np.float32]) -> NDArray[np.float32]:
        """The scores of ``image``; raises what the batch's ``run`` raised."""
        row = _Row(image)
        with self._cond:
            self._queue.append(row)
        while True:
            with self._cond:
                while self._busy and not row.done:
                    self._cond.wait()
                if row.done:
                    break
                self._busy = True
                batch = [self._queue.popleft()
                         for _ in range(min(self._max, len(self._queue)))]
            try:
                self._compute(batch)
            finally:
                with self._cond:
                    for item in batch:
                        item.done = True
                    self._busy = False
                    self._cond.notify_all()
        if row.error is not None:
            raise row.error
        assert row.scores is not None
        return row.scores

    def _compute(self, batch: list[_Row]) -> None:
        import numpy as np

        try:
            scores = self._run(np.stack([row.image for row in batch]))
        except BaseException as exc:  # handed to every caller of the batch
            for row in batch:
                row.error = exc
            return
        for index, row in enumerate(batch):
            row.scores = scores[index]


@dataclass(frozen=True)
class _Loaded:
    session: Any
    input_name: str
    output_name: str
    size: int


class WD14Captioner:
    """Tags images with a WD14 model in ``folder`` (``model.onnx`` and ``selected_tags.csv``);
    safe to call from several threads at once.

    The tag list is read when the captioner is built (:class:`InputError` for a bad one). The
    ONNX session is created once, on first use or by :meth:`load`, under a lock; concurrent
    :meth:`caption` calls are coalesced into one ``session.run`` over up to ``max_batch``
    images. ``model`` is the name recorded in provenance (default: the folder's name);
    ``separator`` joins the tags of a caption.

    A model that cannot be loaded is an :class:`InputError` from :meth:`load`; from
    :meth:`prepare` and :meth:`caption` it is a :class:`CaptionError` with the same message,
    which stops a batch instead of failing every image one by one.
    """

    #: :meth:`prepare` decodes every pixel at full size
    #: (:func:`~loracap.core.imaging.load_rgb_on_white`).
    prepare_decodes_whole = True

    def __init__(
        self,
        folder: Path,
        *,
        model: str = "",
        settings: TaggerSettings | None = None,
        separator: str = ", ",
        max_batch: int = MAX_BATCH,
    ) -> None:
        folder = Path(folder)
        self.backend = BACKEND_NAME
        self.model = model or folder.name
        self.folder = folder
        self.settings = settings or TaggerSettings()
        self.separator = separator
        self.tags: list[Tag] = read_tags(folder / TAGS_FILE)
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None
        self._load_error: str | None = None
        self._batcher = _MicroBatcher(self._run, max_batch)

    def __enter__(self) -> WD14Captioner:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def queued(self) -> int:
        """Images waiting for the next batch (for progress displays and tests)."""
        return self._batcher.queued

    @property
    def input_size(self) -> int:
        """The model's input side in pixels, read from its input shape (loads the model)."""
        return self._model().size

    def load(self) -> None:
        """Create the ONNX session now if not done yet (seconds for a large model; call it off
        the GUI thread). Raises :class:`InputError` for a file that is not an ONNX model, a
        model whose input is not ``[batch, S, S, 3]`` float (NHWC, as WD14 taggers take) or
        whose outputs do not match the tag list, and :class:`LoraCapError`
        (:data:`INSTALL_HINT`) without onnxruntime. A failure is remembered: later calls
        raise the same message without loading again."""
        self._load()

    def _load(self) -> _Loaded:
        with self._lock:
            if self._loaded is not None:
                return self._loaded
            if self._load_error is not None:
                raise InputError(self._load_error)
            try:
                self._loaded = _open_session(self.folder, len(self.tags))
            except InputError as exc:
                self._load_error = str(exc)
                raise
            logger.info("WD14: loaded %s (%d tags, input %d px)", self.folder / MODEL_FILE,
                        len(self.tags), self._loaded.size)
            return self._loaded

    def _model(self) -> _Loaded:
        try:
            return self._load()
        except InputError as exc:
            raise CaptionError(str(exc)) from exc

    def prepare(self, path: Path, max_side: int) -> NDArray[np.float32]:
        """The model's input for the image file at ``path``: an ``(S, S, 3)`` float32 BGR
        0-255 array, ``S`` the model's input size (:func:`to_model_input`; ``max_side`` is not
        used: the model decides the size). Raises :class:`InputError` for an image that cannot
        be read (:func:`loracap.core.imaging.load_rgb_on_white`) and :class:`CaptionError`
        for a model that cannot be loaded."""
        from loracap.core.imaging import load_rgb_on_white

        size = self._model().size
        return to_model_input(load_rgb_on_white(path), size)

    def tag(self, image: NDArray[np.float32]) -> list[tuple[str, float]]:
        """The chosen tags of a prepared image (:meth:`prepare`) with their scores (0-1),
        highest first (:func:`select_tags` with :attr:`settings`). Raises
        :class:`CaptionError` when the model cannot be loaded or run."""
        import numpy as np

        size = self._model().size
        pixels = np.asarray(image, dtype=np.float32)
        if pixels.shape != (size, size, 3):
            raise ValueError(f"expected a prepared ({size}, {size}, 3) array, got "
                             f"{pixels.shape}")
        scores = self._batcher.submit(pixels)
        return select_tags(self.tags, scores.tolist(), self.settings)

    def caption(self, image: NDArray[np.float32], instructions: Instructions, *,
                trigger: str, prefix: str) -> GeneratedCaption:
        """The caption of a prepared image: its tags (:meth:`tag`) joined with
        :attr:`separator`; ``raw`` holds them with scores (:func:`tags_text`), ``prompt`` is
        ``""`` and usage zero. ``instructions``, ``trigger`` and ``prefix`` are not used (the
        runner adds the prefix). Raises :class:`ImageRejectedError` when no tag is above the
        thresholds, :class:`CaptionError` when the model cannot be loaded or run."""
        tags = self.tag(image)
        if not tags:
            raise ImageRejectedError(
                "The WD14 tagger found no tag above its thresholds in this image (general "
                f"{self.settings.general_threshold:g}, character "
                f"{self.settings.character_threshold:g}); lower them or turn on MCut.")
        body = self.separator.join(name for name, _ in tags)
        return GeneratedCaption(body, tags_text(tags), BACKEND_NAME, self.model, "",
                                TokenUsage())

    def close(self) -> None:
        """Free the loaded model (a later call loads it again)."""
        with self._lock:
            self._loaded = None

    def _run(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        loaded = self._model()
        try:
            outputs = loaded.session.run([loaded.output_name], {loaded.input_name: batch})
        except Exception as exc:  # onnxruntime raises its own error classes
            raise CaptionError(f"The WD14 model {self.model} failed to run "
                               f"({_detail(exc)}).") from exc
        scores: NDArray[np.float32] = outputs[0]
        if getattr(scores, "shape", None) != (len(batch), len(self.tags)):
            raise CaptionError(
                f"The WD14 model {self.model} gave scores of shape "
                f"{getattr(scores, 'shape', None)} for {len(batch)} images and "
                f"{len(self.tags)} tags; its {TAGS_FILE} belongs to another model.")
        return scores


def _providers(ort: ModuleType) -> list[str]:
    """onnxruntime's execution providers to use: a GPU one when this onnxruntime has it, then
    the CPU (others, such as Azure or TensorRT, need set-up of their own)."""
    available = set(ort.get_available_providers())
    preferred = ("CUDAExecutionProvider", "DmlExecutionProvider", "CPUExecutionProvider")
    return [name for name in preferred if name in available] or ["CPUExecutionProvider"]


def _open_session(folder: Path, n_tags: int) -> _Loaded:
    """An ONNX session for ``folder``'s model, its input checked; errors as
    :meth:`WD14Captioner.load` says."""
    _require("numpy")
    ort = _require("onnxruntime")
    path = folder / MODEL_FILE
    if not path.is_file():
        raise InputError(f'The WD14 backend needs {MODEL_FILE} in "{folder}": choose the '
                         f"folder that holds a WD14 tagger's {MODEL_FILE} and {TAGS_FILE}.")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: the graph optimiser's notes are noise
    try:
        session = ort.InferenceSession(str(path), sess_options=options,
                                       providers=_providers(ort))
    except Exception as exc:  # InvalidProtobuf, Fail, ... from onnxruntime's binding
        raise InputError(
            f'The WD14 backend cannot load "{path}": it is not a valid ONNX model '
            f"({_detail(exc)}). Download {MODEL_FILE} again or choose a folder holding a "
            "WD14 tagger."
        ) from exc
    inputs = session.get_inputs()
    shape = list(inputs[0].shape) if inputs else []
    kind = inputs[0].type if inputs else "nothing"
    nhwc = (len(inputs) == 1 and kind == "tensor(float)" and len(shape) == 4
            and shape[3] == 3 and isinstance(shape[1], int) and shape[1] > 0
            and shape[1] == shape[2])
    if not nhwc:
        raise InputError(
            f'The WD14 backend needs a model taking square float images as [batch, size, size, '
            f'3] (NHWC, as WD14 taggers do); "{path}" takes {kind} {shape}. Choose a WD14 '
            "tagger's model.onnx."
        )
    outputs = session.get_outputs()
    out_shape = list(outputs[0].shape) if outputs else []
    if not outputs or (len(out_shape) == 2 and isinstance(out_shape[1], int)
                       and out_shape[1] != n_tags) or len(out_shape) != 2:
        raise InputError(
            f'The WD14 model "{path}" gives {out_shape} scores but {TAGS_FILE} lists {n_tags} '
            "tags: the two files come from different models. Copy both from the same model's "
            "page."
        )
    return _Loaded(session, inputs[0].name, outputs[0].name, int(shape[1]))


# --- the registry's entry points --------------------------------------------------------------


def create(config: BackendConfig) -> WD14Captioner:
    """The registry's factory (:mod:`loracap.core.backends.registry`); does not download.

    Uses ``config.model_dir`` when given (the model is named after the folder), else the cached
    files of ``config.model`` (default :data:`DEFAULT_MODEL`; the front end downloads them
    first with :func:`ensure_model`). Options come from ``config.options``
    (:meth:`TaggerSettings.from_options`), the separator from ``config.tag_separator``. The
    model itself loads on first use (:meth:`WD14Captioner.load`).

    Raises :class:`LoraCapError` (:data:`INSTALL_HINT`) without onnxruntime or numpy, and
    :class:`InputError` for a bad option, a folder without the two files, an unreadable tag
    list, or a model not downloaded yet.
    """
    check_dependencies()
    settings = TaggerSettings.from_options(config.options)
    if config.model_dir is not None:
        folder = Path(config.model_dir).expanduser()
        if not folder.is_dir():
            raise InputError(f'The WD14 model folder "{folder}" does not exist; give a folder '
                             f"holding {MODEL_FILE} and {TAGS_FILE}.")
        if not (folder / MODEL_FILE).is_file():
            raise InputError(f'The WD14 backend needs {MODEL_FILE} in "{folder}": choose the '
                             f"folder that holds a WD14 tagger's {MODEL_FILE} and "
                             f"{TAGS_FILE}.")
        name = folder.name
    else:
        name = (config.model or DEFAULT_MODEL).strip()
        found = cached_model(name)
        if found is None:
            raise InputError(
                f"The WD14 model '{name}' is not downloaded yet: run LoRACap once with an "
                f"internet connection to download it, or use --model-dir with a folder holding "
                f"its {MODEL_FILE} and {TAGS_FILE} (from https://huggingface.co/"
                f"{repo_id(name)})."
            )
        folder = found
    return WD14Captioner(folder, model=name, settings=settings, separator=config.tag_separator)


def list_models(config: BackendConfig) -> list[str]:
    """The WD14 models known by name (:data:`MODELS`), best first; no network is used."""
    return list(MODELS)
