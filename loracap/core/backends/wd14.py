"""The WD14 tagger backend: SmilingWolf's booru taggers, run locally with onnxruntime.

A tagger gives every tag of its list a score and keeps those above a threshold; the caption is
the kept tags joined with the project's tag separator. Nothing leaves the computer, and nothing
is billed (usage is zero).

Facts this module relies on (SmilingWolf's model cards and his ``wd-tagger`` Space on Hugging
Face, summed up in PRODUCT.md):

* Each model is the Hugging Face repo ``SmilingWolf/<name>`` holding ``model.onnx`` and
  ``selected_tags.csv`` (:data:`MODELS`).
* ``selected_tags.csv`` has the columns ``tag_id,name,category,count``; row *i* names output
  *i*. Category 9 is a rating (general, sensitive, questionable, explicit), 0 a general tag,
  4 a character. Names use underscores for spaces; kaomoji (``^_^``) are written with them.
* The input is ``[batch, 448, 448, 3]`` float32, BGR, 0-255 (NHWC). The image is composited
  onto white, padded to a centred white square and resized with bicubic filtering. This module
  reads the size from the model's input shape rather than assuming 448.
* The output is ``[batch, n_tags]`` sigmoid scores. The suggested thresholds are 0.35 for
  general tags and 0.85 for characters; a tag is kept when its score is *above* the threshold.
* MCut (Largeron et al., "MCut: a thresholding strategy for multi-label classification",
  2012) puts the threshold in the middle of the largest gap between the sorted scores; for
  characters the Space keeps a floor of 0.15.

onnxruntime, numpy and huggingface_hub are the optional ``wd14`` extra (the packaged app does
not ship them): this module imports them only when a tagger is built or a model downloaded,
and says how to install them when they are missing.
"""

from __future__ import annotations

import csv
import logging
import math
import re
import sys
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from loracap.core.backends.base import BackendConfig, GeneratedCaption, TokenUsage
from loracap.core.errors import (
    CaptionError,
    ImageRejectedError,
    InputError,
    LoraCapError,
    NetworkError,
)
from loracap.core.prompts import Instructions

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from PIL import Image

logger = logging.getLogger(__name__)

BACKEND_NAME = "wd14"

#: The taggers offered by name, best first; each is the Hugging Face repo
#: ``SmilingWolf/<name>`` (SmilingWolf's model cards).
MODELS: tuple[str, ...] = (
    "wd-eva02-large-tagger-v3",
    "wd-vit-large-tagger-v3",
    "wd-swinv2-tagger-v3",
    "wd-convnext-tagger-v3",
    "wd-vit-tagger-v3",
    "wd-v1-4-moat-tagger-v2",
)
DEFAULT_MODEL = MODELS[0]
HF_OWNER = "SmilingWolf"

#: The two files of a tagger, in its repo or in a model folder.
MODEL_FILE = "model.onnx"
TAGS_FILE = "selected_tags.csv"

#: Category numbers of ``selected_tags.csv`` (SmilingWolf's model cards).
RATING, GENERAL, CHARACTER = 9, 0, 4

#: Suggested thresholds of the v3 model cards (scores 0-1; kept when above).
DEFAULT_GENERAL_THRESHOLD = 0.35
DEFAULT_CHARACTER_THRESHOLD = 0.85
#: Lowest character threshold MCut may give (SmilingWolf's wd-tagger Space).
MCUT_CHARACTER_FLOOR = 0.15

#: Tag names kept with their underscores: kaomoji, whose underscore is a mouth or a nose, not
#: a space. The list of SmilingWolf's wd-tagger Space, plus ``(^_^)``.
KAOMOJI: frozenset[str] = frozenset({
    "0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3",
    "6_9", ">_o", "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||", "(^_^)",
})

#: Most images one ``session.run`` takes; concurrent calls are coalesced up to it.
MAX_BATCH = 8

INSTALL_HINT = ('The WD14 tagger needs the wd14 extra (onnxruntime, numpy, huggingface_hub): '
                'pip install "loracap[wd14]"')
#: Added in the packaged app, which leaves onnxruntime out to stay within its size budget.
FROZEN_HINT = ("The packaged app does not include them (about 60 MB); install LoRACap with "
               "pip to tag with WD14, or choose another backend.")

_OPTION_KEYS = frozenset({
    "general_threshold", "character_threshold", "mcut", "include_rating", "exclude",
})
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_MAX_DETAIL = 200
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")

#: A download's progress: ``progress(done_bytes, total_bytes)``.
ProgressCallback = Callable[[int, int], None]


# --- optional dependencies --------------------------------------------------------------------


def _require(module: str) -> ModuleType:
    """The optional module ``module``; :class:`LoraCapError` with :data:`INSTALL_HINT` when it
    is not installed."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if getattr(sys, "frozen", False):
            raise LoraCapError(f"{INSTALL_HINT} ({module} is missing). {FROZEN_HINT}") from exc
        raise LoraCapError(f"{INSTALL_HINT} ({module} is missing).") from exc


def check_dependencies() -> None:
    """Raise :class:`LoraCapError` (:data:`INSTALL_HINT`) unless numpy and onnxruntime import."""
    _require("numpy")
    _require("onnxruntime")


# --- tags -------------------------------------------------------------------------------------


def display_name(name: str) -> str:
    """A CSV tag name as written in captions: underscores become spaces, except in the
    :data:`KAOMOJI` (``long_hair`` -> ``long hair``, ``^_^`` stays)."""
    return name if name in KAOMOJI else name.replace("_", " ")


@dataclass(frozen=True)
class Tag:
    """One row of ``selected_tags.csv``: ``name`` as in the file, ``category`` (:data:`RATING`,
    :data:`GENERAL`, :data:`CHARACTER`; other numbers are never kept), ``display`` as written in
    captions (:func:`display_name`)."""

    name: str
    category: int
    display: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "display", display_name(self.name))


def read_tags(path: Path) -> list[Tag]:
    """The tags of a ``selected_tags.csv`` at ``path``, in file order (= the model's outputs).

    Reads the ``name`` and ``category`` columns (``tag_id`` and ``count`` are not needed); a
    UTF-8 byte-order mark is allowed. Raises :class:`InputError` naming the WD14 backend when
    the file is missing, not UTF-8 CSV, lacks those columns, has a category that is not a
    whole number, or lists no tag.
    """
    path = Path(path)
    where = path.parent
    try:
        with open(path, encoding="utf-8-sig", newline="") as fp:
            reader = csv.DictReader(fp)
            columns = {str(c).strip() for c in reader.fieldnames or ()}
            missing = {"name", "category"} - columns
            if missing:
                raise _TagsError(f"it has no {' or '.join(sorted(missing))} column")
            tags: list[Tag] = []
            for line, row in enumerate(reader, start=2):
                name = (row.get("name") or "").strip()
                category = (row.get("category") or "").strip()
                if not name:
                    raise _TagsError(f"line {line} has no tag name")
                try:
                    tags.append(Tag(name, int(category)))
                except ValueError:
                    raise _TagsError(
                        f"line {line} has the category '{category[:20]}', not a number"
                    ) from None
    except FileNotFoundError:
        raise InputError(
            f'The WD14 backend needs {TAGS_FILE} beside {MODEL_FILE} in "{where}": copy it '
            f"from the model's Hugging Face page (https://huggingface.co/{HF_OWNER}/<model>) "
            "or choose the folder that holds both files."
        ) from None
    except _TagsError as exc:
        raise _unreadable_tags(path, str(exc)) from None
    except UnicodeDecodeError:
        raise _unreadable_tags(path, "it is not UTF-8 text") from None
    except (csv.Error, OSError) as exc:
        raise _unreadable_tags(path, _detail(exc)) from None
    if not tags:
        raise _unreadable_tags(path, "it lists no tag")
    return tags


class _TagsError(Exception):
    """Internal: what is wrong with a selected_tags.csv."""


def _unreadable_tags(path: Path, reason: str) -> InputError:
    return InputError(
        f'The WD14 backend cannot read "{path}": {reason}. It must be the {TAGS_FILE} of a WD14 '
        "tagger (columns tag_id,name,category,count); copy it again from the model's page."
    )


def _detail(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


# --- settings and tag selection ---------------------------------------------------------------


@dataclass(frozen=True)
class TaggerSettings:
    """How tags are chosen from a tagger's scores.

    ``general_threshold`` / ``character_threshold`` -- scores 0-1; a general tag or a character
    is kept when its score is above it (defaults 0.35 and 0.85, the model cards' suggestion).
    ``mcut`` -- choose both thresholds by MCut instead (:func:`mcut_threshold`; the character
    threshold never below :data:`MCUT_CHARACTER_FLOOR`); the fixed thresholds are then unused.
    ``include_rating`` -- begin the tags with the most likely rating (``general``,
    ``sensitive``, ``questionable``, ``explicit``); left out by default, as a rating describes
    the image's content level rather than something in it. ``exclude`` -- tags never written,
    compared without regard to case and with underscores as spaces (``Long_Hair`` leaves out
    ``long hair``).

    Raises :class:`InputError` for a threshold outside 0-1.
    """

    general_threshold: float = DEFAULT_GENERAL_THRESHOLD
    character_threshold: float = DEFAULT_CHARACTER_THRESHOLD
    mcut: bool = False
    include_rating: bool = False
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for key in ("general_threshold", "character_threshold"):
            value = getattr(self, key)
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and 0.0 <= value <= 1.0):
                raise InputError(f"The WD14 option {key} must be a number from 0 to 1, "
                                 f"not {value!r}.")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TaggerSettings:
        """Settings from a backend's stored options (:attr:`BackendConfig.options`), keys as the
        fields' names. Thresholds may be numbers or numeric text; ``mcut`` and
        ``include_rating`` booleans or ``"true"``/``"false"``/``"1"``/``"0"``/``"yes"``/
        ``"no"``; ``exclude`` a list of tags or one text of comma-separated tags. Missing keys
        take the defaults; unknown keys are ignored (a newer LoRACap's) and logged.

        Raises :class:`InputError` naming the option for a value of the wrong kind or out of
        range.
        """
        unknown = sorted(set(options) - _OPTION_KEYS)
        if unknown:
            logger.info("WD14: ignoring unknown options %s", ", ".join(map(str, unknown)))
        values: dict[str, Any] = {}
        for key in ("general_threshold", "character_threshold"):
            if key in options and options[key] is not None:
                values[key] = _threshold(key, options[key])
        for key in ("mcut", "include_rating"):
            if key in options and options[key] is not None:
                values[key] = _flag(key, options[key])
        if options.get("exclude") is not None:
            values["exclude"] = _tag_list(options["exclude"])
        return cls(**values)


def _threshold(key: str, value: Any) -> float:
    problem = InputError(f"The WD14 option {key} must be a number from 0 to 1, not {value!r}.")
    if isinstance(value, bool):
        raise problem
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise problem from None
    if not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0.0 <= value <= 1.0:
        raise problem
    return float(value)


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise InputError(f"The WD14 option {key} must be true or false, not {value!r}.")


def _tag_list(value: Any) -> tuple[str, ...]:
    items: list[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise InputError("The WD14 option exclude must be a list of tags, not "
                         f"{type(value).__name__}.")
    if not all(isinstance(item, str) for item in items):
        raise InputError("The WD14 option exclude must list tags as text.")
    return tuple(item.strip() for item in items if item.strip())


def _match_key(tag: str) -> str:
    """How excluded tags are compared: underscores as spaces, case folded, spaces collapsed."""
    return " ".join(tag.replace("_", " ").casefold().split())


def mcut_threshold(scores: Sequence[float]) -> float:
    """The MCut threshold of ``scores`` (0-1): the middle of the largest gap between two
    neighbours once sorted (Largeron et al. 2012; SmilingWolf's wd-tagger Space). Raises
    ValueError for fewer than two scores (there is no gap)."""
    ordered = sorted((float(s) for s in scores), reverse=True)
    if len(ordered) < 2:
        raise ValueError("MCut needs at least two scores")
    gaps = [ordered[i] - ordered[i + 1] for i in range(len(ordered) - 1)]
    cut = max(range(len(gaps)), key=gaps.__getitem__)  # the first of equal gaps
    return (ordered[cut] + ordered[cut + 1]) / 2.0


def select_tags(tags: Sequence[Tag], scores: Sequence[float], settings: TaggerSettings
                ) -> list[tuple[str, float]]:
    """The tags to write for one image, as ``(display name, score)`` pairs.

    ``scores`` are the model's outputs for one image, one per tag (same order). General tags
    and characters above their thresholds (``settings``; MCut if asked) are kept, excluded tags
    dropped, and the rest ordered by score, highest first (ties in file order). With
    ``include_rating`` the most likely rating comes first, whatever its score. Raises
    ValueError when the two lengths differ.
    """
    if len(scores) != len(tags):
        raise ValueError(f"{len(scores)} scores for {len(tags)} tags")
    general = [(tag, float(s)) for tag, s in zip(tags, scores, strict=True)
               if tag.category == GENERAL]
    characters = [(tag, float(s)) for tag, s in zip(tags, scores, strict=True)
                  if tag.category == CHARACTER]
    general_threshold = settings.general_threshold
    character_threshold = settings.character_threshold
    if settings.mcut:
        if len(general) >= 2:
            general_threshold = mcut_threshold([s for _, s in general])
        if len(characters) >= 2:
            character_threshold = max(MCUT_CHARACTER_FLOOR,
                                      mcut_threshold([s for _, s in characters]))
    excluded = {_match_key(tag) for tag in settings.exclude}
    kept = [(tag, s) for tag, s in general if s > general_threshold]
    kept += [(tag, s) for tag, s in characters if s > character_threshold]
    kept = [(tag, s) for tag, s in kept if _match_key(tag.display) not in excluded]
    kept.sort(key=lambda pair: -pair[1])
    chosen = [(tag.display, s) for tag, s in kept]
    if settings.include_rating:
        ratings = [(tag, float(s)) for tag, s in zip(tags, scores, strict=True)
                   if tag.category == RATING]
        if ratings:
            best, score = max(ratings, key=lambda pair: pair[1])
            if _match_key(best.display) not in excluded:
                chosen.insert(0, (best.display, score))
    return chosen


def tags_text(tags: Sequence[tuple[str, float]]) -> str:
    """Tags with scores as text, one ``tag<TAB>score`` line each (scores to 4 decimals): the
    ``raw`` answer of a WD14 caption."""
    return "\n".join(f"{name}\t{score:.4f}" for name, score in tags)


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


# --- model files and downloads ----------------------------------------------------------------


def repo_id(name: str) -> str:
    """The Hugging Face repo of the model ``name`` (``SmilingWolf/<name>``; a name holding a
    ``/`` is taken as a repo already). Raises :class:`InputError` for an unknown bare name."""
    name = name.strip()
    if "/" in name:
        if not _REPO_ID.fullmatch(name):
            raise InputError(f"'{name}' is not a Hugging Face repo name (owner/name).")
        return name
    if name not in MODELS:
        raise InputError(f"There is no WD14 model called '{name}' (choose one of: "
                         f"{', '.join(MODELS)}, or give a model folder with --model-dir).")
    return f"{HF_OWNER}/{name}"


def default_cache_dir() -> Path:
    """Where downloaded models are kept: ``wd14`` in LoRACap's cache folder
    (:func:`loracap.core.userdirs.user_dirs`), laid out as a Hugging Face hub cache."""
    from loracap.core.userdirs import user_dirs

    return user_dirs().cache / "wd14"


def _lookup_dirs(cache_dir: Path | None) -> list[Path]:
    """Caches searched for a model: ``cache_dir`` alone when given, else LoRACap's and then
    the Hugging Face hub's default cache (a model another tool downloaded is used in place)."""
    if cache_dir is not None:
        return [Path(cache_dir)]
    folders = [default_cache_dir()]
    try:
        from huggingface_hub import constants

        folders.append(Path(constants.HF_HUB_CACHE))
    except (ImportError, AttributeError):
        pass
    return folders


def cached_model(name: str, *, cache_dir: Path | None = None) -> Path | None:
    """The folder holding both files of the model ``name`` if a cache has them, else None; no
    network is used. ``cache_dir`` as for :func:`ensure_model`. Raises :class:`InputError` for
    an unknown name and :class:`LoraCapError` when huggingface_hub is not installed."""
    repo = repo_id(name)
    hub = _require("huggingface_hub")
    for folder in _lookup_dirs(cache_dir):
        if not folder.is_dir():
            continue
        paths: list[Path] = []
        for filename in (MODEL_FILE, TAGS_FILE):
            try:
                found = hub.hf_hub_download(repo, filename, cache_dir=str(folder),
                                            local_files_only=True)
            except (FileNotFoundError, OSError, ValueError) as exc:  # not cached
                logger.debug("WD14: %s of %s not in %s (%s)", filename, repo, folder, exc)
                break
            paths.append(Path(found))
        if len(paths) == 2 and paths[0].parent == paths[1].parent:
            return paths[0].parent
    return None


def ensure_model(
    name: str,
    *,
    cache_dir: Path | None = None,
    progress: ProgressCallback | None = None,
    endpoint: str | None = None,
) -> Path:
    """The folder holding ``model.onnx`` and ``selected_tags.csv`` of the model ``name``
    (:data:`MODELS`, or a repo ``owner/name``), downloaded from Hugging Face with
    huggingface_hub when no cache has them yet; once downloaded, no network is used.

    ``cache_dir`` -- a Hugging Face hub cache folder (default :func:`default_cache_dir`; the
    hub's own default cache is searched too). ``progress(done_bytes, total_bytes)`` is called
    from this thread as bytes arrive (through huggingface_hub's ``tqdm_class`` hook); an
    exception it raises stops the download and is raised as it is (a cancel), and the part
    downloaded is resumed next time. ``endpoint`` -- another hub (default ``HF_ENDPOINT`` or
    huggingface.co).

    Raises :class:`InputError` for an unknown model or a repo without those files,
    :class:`NetworkError` when Hugging Face cannot be reached (with how to use a model folder
    instead), :class:`LoraCapError` when huggingface_hub is not installed.
    """
    repo = repo_id(name)
    found = cached_model(name, cache_dir=cache_dir)
    if found is not None:
        return found
    hub = _require("huggingface_hub")
    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    reporter = _Reporter(progress)
    try:
        sizes = [_remote_size(hub, repo, filename, endpoint)
                 for filename in (TAGS_FILE, MODEL_FILE)]
        reporter.start(sizes)
        tags_path = _download(hub, repo, TAGS_FILE, target, endpoint, reporter)
        model_path = _download(hub, repo, MODEL_FILE, target, endpoint, reporter)
        if tags_path.parent != model_path.parent:
            # The repo got a new commit between the two downloads: take its tags list too.
            tags_path = _download(hub, repo, TAGS_FILE, target, endpoint, reporter)
    except LoraCapError:
        raise
    except Exception as exc:
        if reporter.error is exc:
            raise  # the callback's own exception (a cancel), unchanged
        raise _download_error(hub, name, repo, exc) from exc
    if tags_path.parent != model_path.parent:
        raise NetworkError(f"The WD14 model '{name}' changed on Hugging Face while it was "
                           "downloading; try again.")
    reporter.finish()
    return model_path.parent


def _remote_size(hub: ModuleType, repo: str, filename: str, endpoint: str | None) -> int | None:
    url = hub.hf_hub_url(repo, filename, endpoint=endpoint)
    meta = hub.get_hf_file_metadata(url)
    size = getattr(meta, "size", None)
    return int(size) if isinstance(size, int) else None


def _download(hub: ModuleType, repo: str, filename: str, target: Path, endpoint: str | None,
              reporter: _Reporter) -> Path:
    reporter.next_file()
    path = Path(hub.hf_hub_download(repo, filename, cache_dir=str(target), endpoint=endpoint,
                                    tqdm_class=reporter.bar_class(hub)))
    reporter.file_done(path)
    return path


def _download_error(hub: ModuleType, name: str, repo: str, exc: Exception) -> LoraCapError:
    """The LoRACap error of a failed download (huggingface_hub's error classes by name, as
    they moved between modules across its versions)."""
    kinds = {cls.__name__ for cls in type(exc).__mro__}
    page = f"https://huggingface.co/{repo}"
    if kinds & {"RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError",
                "RemoteEntryNotFoundError"} or (
            "EntryNotFoundError" in kinds and "LocalEntryNotFoundError" not in kinds):
        return InputError(f"Hugging Face has no WD14 tagger files ({MODEL_FILE} and "
                          f"{TAGS_FILE}) at {page}: choose one of {', '.join(MODELS)}.")
    logger.info("WD14: download of %s failed: %r", repo, exc)
    return NetworkError(
        f"Could not download the WD14 model '{name}' from Hugging Face ({_detail(exc)}). "
        f"Check the internet connection and try again, or download {MODEL_FILE} and "
        f"{TAGS_FILE} from {page} into a folder and use it with --model-dir."
    )


class _Reporter:
    """Turns huggingface_hub's per-file progress bars into ``progress(done, total)`` calls."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self.callback = callback
        self.error: BaseException | None = None
        self.total = 0
        self.done = 0  # bytes of the files finished
        self.bars: list[Any] = []  # the current file's bars
        self._unknown = False

    def start(self, sizes: Sequence[int | None]) -> None:
        self.total = sum(size or 0 for size in sizes)
        self._unknown = any(size is None for size in sizes)
        self._report(0)

    def next_file(self) -> None:
        self.bars = []

    def file_done(self, path: Path) -> None:
        self.done += self._current()
        self.bars = []
        if self._unknown:
            self.total = max(self.total, self.done)

    def finish(self) -> None:
        self.total = max(self.total, self.done)
        self._report(0)

    def _current(self) -> int:
        # Xet downloads may use two bars for one file (bytes received, bytes written):
        # the larger one counts, never more than its file's size.
        return max((min(bar.loracap_done, bar.total or bar.loracap_done) for bar in self.bars),
                   default=0)

    def update(self) -> None:
        self._report(self._current())

    def _report(self, current: int) -> None:
        if self.callback is None:
            return
        done = self.done + current
        if self._unknown:
            bar_total = max((bar.total or 0 for bar in self.bars), default=0)
            self.total = max(self.total, self.done + bar_total, done)
        try:
            self.callback(done, max(self.total, done))
        except BaseException as exc:
            self.error = exc
            raise

    def bar_class(self, hub: ModuleType) -> type[Any]:
        """A silent ``tqdm`` subclass of huggingface_hub's whose bars report to this."""
        reporter = self
        base: type[Any] = _require("huggingface_hub.utils").tqdm

        class Bar(base):  # type: ignore[misc]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                kwargs["disable"] = True  # no text on stderr; the front end shows progress
                self.loracap_done = int(kwargs.get("initial") or 0)
                super().__init__(*args, **kwargs)
                reporter.bars.append(self)

            def update(self, n: float | None = 1) -> bool | None:
                self.loracap_done += int(n or 0)
                reporter.update()
                result: bool | None = super().update(n)
                return result

            def update_transfer(self, n: float | None = 1) -> None:
                """Network bytes of a Xet download: counted through ``update`` already."""

        return Bar


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
