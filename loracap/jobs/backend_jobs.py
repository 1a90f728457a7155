"""Background work around the captioning backends: listing a backend's models, getting a
captioner ready (a WD14 model downloaded and loaded), one preview caption, and one request with
a ready captioner (a person described again, an answer written again).

QtCore only, built like :mod:`loracap.jobs.background`: each job is a ``QObject`` in the GUI
thread whose work runs once on a pool thread; its signals arrive in the GUI thread; exactly one
ending signal (``finished`` / ``failed`` / ``cancelled``) is emitted. A failure's message is
the ``str()`` of the core's :class:`~loracap.core.errors.LoraCapError`.

The captioner is made by a factory given to the job (``factory(config) -> Captioner``, by
default :func:`loracap.core.backends.registry.create_captioner`), so the window's tests can give
their own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QObject, QThreadPool, pyqtSignal, pyqtSlot

from loracap.core.backends.base import BackendConfig, Captioner, CaptionResult, TokenUsage
from loracap.core.errors import CancelledError
from loracap.core.prompts import Instructions
from loracap.jobs.background import _CancellableJob, _Job, _Task, _Throttle

log = logging.getLogger(__name__)

#: Makes the captioner of a configuration (may raise the core's errors).
CaptionerFactory = Callable[[BackendConfig], Captioner]


def _default_factory(config: BackendConfig) -> Captioner:
    from loracap.core.backends.registry import create_captioner

    return create_captioner(config)


def tagger_models(config: BackendConfig) -> list[str]:
    """The WD14 models ``config`` needs on this machine before its captioner can be made: the
    tagger itself (``wd14`` without a model folder), or the tagger whose tags a vision model is
    given as hints (option ``tagger_hints``, model ``tagger_model``)."""
    if config.backend == "wd14":
        if config.model_dir is not None:
            return []
        from loracap.core.backends.wd14 import DEFAULT_MODEL

        return [config.model or DEFAULT_MODEL]
    if config.options.get("tagger_hints"):
        from loracap.core.backends.wd14 import DEFAULT_MODEL

        return [str(config.options.get("tagger_model") or DEFAULT_MODEL)]
    return []


def needs_preparation(config: BackendConfig) -> bool:
    """True when making ``config``'s captioner may take long (a model to download or load),
    so it belongs on a pool thread: the WD14 tagger, or a vision backend with tagger hints."""
    return bool(tagger_models(config)) or config.backend == "wd14"


class BackendModelsJob(_Job):
    """The models a backend offers (:func:`loracap.core.backends.registry.list_models`), on a
    pool thread. Signals: ``finished(list[str])`` or ``failed(message)``."""

    finished = pyqtSignal(object)
    failed = pyqtSignal(str)

    def __init__(self, config: BackendConfig, parent: QObject | None = None, *,
                 pool: QThreadPool | None = None) -> None:
        super().__init__(pool, parent)
        self.config = config

    def start(self) -> None:
        """Start the request; call once."""
        config = self.config

        def work(_task: _Task) -> list[str]:
            from loracap.core.backends.registry import list_models

            return list_models(config)

        self._start_task(work, f"listing the models of {config.backend}")


class CaptionerJob(_CancellableJob):
    """Gets the captioner of ``config`` ready on a pool thread: downloads the WD14 models it
    needs (:func:`tagger_models`) that are not on this machine yet
    (:func:`loracap.core.backends.wd14.ensure_model`), makes the captioner with ``factory``
    and loads its model (``load()``, when it has one), so a model that cannot be used fails
    here with one message instead of once per image.

    Signals (GUI thread):

    * ``progress(model, done_bytes, total_bytes)`` -- a download's progress (total 0 while
      unknown); at most ~20 per second;
    * ``loading(text)`` -- the step now under way, e.g. "Loading the WD14 model…";
    * ``finished(captioner)``, ``failed(message)`` or ``cancelled()`` -- exactly one. After a
      cancel a captioner made meanwhile is closed.
    """

    progress = pyqtSignal(str, int, int)
    loading = pyqtSignal(str)

    def __init__(self, config: BackendConfig, factory: CaptionerFactory | None = None,
                 parent: QObject | None = None, *, pool: QThreadPool | None = None) -> None:
        super().__init__(pool, parent)
        self.config = config
        self._factory = factory or _default_factory

    def start(self) -> None:
        """Start; call once."""
        config, factory, cancel = self.config, self._factory, self._cancel

        def work(task: _Task) -> Captioner:
            for name in tagger_models(config):
                _download(task, name, cancel)
            if cancel.is_set():
                raise CancelledError("Cancelled.")
            task.signals.progress.emit(-1, "Getting the captioning backend ready…")
            captioner = factory(config)
            load = getattr(captioner, "load", None)
            if callable(load):
                task.signals.progress.emit(-1, "Loading the WD14 model…")
                try:
                    load()
                except BaseException:
                    captioner.close()
                    raise
            return captioner

        self._start_task(work, f"getting {config.backend} ready", cancel=self._cancel,
                         progress=self._on_progress)

    def on_dropped(self, result: object) -> None:
        close = getattr(result, "close", None)
        if callable(close):
            close()

    @pyqtSlot(int, object)
    def _on_progress(self, done: int, detail: Any) -> None:
        if self._ended:
            return
        if done < 0:
            self.loading.emit(str(detail))
        else:
            name, total = detail
            self.progress.emit(str(name), done, int(total))


def _download(task: _Task, name: str, cancel: threading.Event) -> None:
    """Download the WD14 model ``name`` unless it is cached; progress on ``task``."""
    from loracap.core.backends.wd14 import cached_model, ensure_model

    if cached_model(name) is not None:
        return
    throttle = _Throttle()

    def on_progress(done: int, total: int) -> None:
        if cancel.is_set():
            raise CancelledError("The download was cancelled.")
        if (total and done >= total) or throttle.ready():
            task.signals.progress.emit(done, (name, total))

    task.signals.progress.emit(0, (name, 0))
    ensure_model(name, progress=on_progress)


@dataclass(frozen=True)
class Preview:
    """One preview caption: ``body`` (cleaned, without the prefix), ``backend``, ``model``
    and the tokens it cost (``usage``)."""

    body: str
    backend: str
    model: str
    usage: TokenUsage


class PreviewJob(_CancellableJob):
    """Captions one image with ``instructions`` through ``config``'s backend, on a pool thread,
    without storing anything: makes the captioner (``factory``), prepares the image at
    ``path`` (long side ``max_side`` px), asks once (no retries) and closes the captioner.

    Signals: ``finished(Preview)``, ``failed(message)`` or ``cancelled()`` (at once on
    :meth:`cancel`; the answer still on its way is dropped).
    """

    def __init__(self, config: BackendConfig, path: Path, instructions: Instructions, *,
                 trigger: str, prefix: str, max_side: int,
                 factory: CaptionerFactory | None = None, parent: QObject | None = None,
                 pool: QThreadPool | None = None) -> None:
        super().__init__(pool, parent)
        self.config = config
        self.path = Path(path)
        self.instructions = instructions
        self.trigger = trigger
        self.prefix = prefix
        self.max_side = max_side
        self._factory = factory or _default_factory

    def start(self) -> None:
        """Start; call once."""
        config, factory, path = self.config, self._factory, self.path
        instructions, trigger, prefix, max_side = (self.instructions, self.trigger,
                                                   self.prefix, self.max_side)

        def work(_task: _Task) -> Preview:
            captioner = factory(config)
            try:
                image = captioner.prepare(path, max_side)
                result: CaptionResult = captioner.caption(image, instructions, trigger=trigger,
                                                          prefix=prefix)
            finally:
                captioner.close()
            return Preview(result.body, result.backend, result.model, result.usage)

        self._start_task(work, f"previewing a caption of {path.name}", cancel=self._cancel)


class CaptionerWorkJob(_Job):
    """One piece of work with ``config``'s captioner on a pool thread: gets the captioner
    ready (a WD14 model it needs downloaded and loaded), runs ``work(captioner)`` -- e.g.
    describing one person of a multi-person image again
    (:func:`loracap.core.captioning_people.describe_person_again`) or answering one question
    again (:func:`loracap.core.qa.generate.answer_again`) -- and closes the captioner.

    Signals: ``finished(result)`` (what ``work`` returned) or ``failed(message)``. Not
    cancellable: it is one request, and its answer is stored as it arrives.
    """

    def __init__(self, config: BackendConfig, work: Callable[[Captioner], object], what: str,
                 *, factory: CaptionerFactory | None = None, parent: QObject | None = None,
                 pool: QThreadPool | None = None) -> None:
        super().__init__(pool, parent)
        self.config = config
        self.what = what
        self._work = work
        self._factory = factory or _default_factory

    def start(self) -> None:
        """Start; call once."""
        config, factory, do = self.config, self._factory, self._work

        def work(task: _Task) -> object:
            for name in tagger_models(config):
                _download(task, name, threading.Event())
            captioner = factory(config)
            try:
                load = getattr(captioner, "load", None)
                if callable(load):
                    load()
                return do(captioner)
            finally:
                captioner.close()

        self._start_task(work, self.what)


__all__ = ["BackendModelsJob", "CaptionerFactory", "CaptionerJob", "CaptionerWorkJob",
           "Preview", "PreviewJob", "needs_preparation", "tagger_models"]
