"""The WD14 tagger's optional dependencies and model files: onnxruntime, numpy and
huggingface_hub imported only when needed (with how to install them), the models offered by
name, and their download from Hugging Face into LoRACap's cache.

Facts this module relies on (SmilingWolf's model cards, summed up in PRODUCT.md, and
huggingface_hub's documentation):

* Each model is the Hugging Face repo ``SmilingWolf/<name>`` holding ``model.onnx`` and
  ``selected_tags.csv`` (:data:`MODELS`).
* ``hf_hub_download`` keeps files in a hub cache folder, finds them there again with
  ``local_files_only`` (no network) and reports bytes through its ``tqdm_class`` hook.

onnxruntime, numpy and huggingface_hub are the optional ``wd14`` extra (the packaged app does
not ship them): this module imports them only when a tagger is built or a model downloaded,
and says how to install them when they are missing.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from loracap.core.errors import InputError, LoraCapError, NetworkError

logger = logging.getLogger(__name__)

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

INSTALL_HINT = ('The WD14 tagger needs the wd14 extra (onnxruntime, numpy, huggingface_hub): '
                'pip install "loracap[wd14]"')
#: Added in the packaged app, which leaves onnxruntime out to stay within its size budget.
FROZEN_HINT = ("The packaged app does not include them (about 60 MB); install LoRACap with "
               "pip to tag with WD14, or choose another backend.")

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


def _detail(exc: BaseException) -> str:
    """An exception as one short line for an error message (also used by the tag list and the
    captioner)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."



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
