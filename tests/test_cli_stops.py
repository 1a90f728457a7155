"""How ``loracap caption`` stops, run as a user runs it (a subprocess): Ctrl+C while requests
hang, a service that stops answering, bad answers, a full disk. Each ends with one clear line
and the documented exit code, and loses no caption it reported. Every test is bounded in time:
short timeouts, and a hanging fake server that the test stops.

The disk-full tests use a 2 MB tmpfs in a private mount namespace (``unshare``; skipped where
that is not allowed) and, everywhere, a file size limit (``RLIMIT_FSIZE``).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from loracap.core.project import Project
from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.photos import make_photo_folder
from tests.test_cli import REPO, cli_env, loracap

pytestmark = pytest.mark.slow

#: A structured answer of the space profile (the projects here use it).
FIELDS = {"key_objects": ["chairs"], "lighting": "daylight", "contextual_details": "quiet"}

#: What a stop must never print: library text, tracebacks, terminal control characters.
NEVER = ("Traceback", "sqlalchemy", "[SQL", "sqlite3.", "OperationalError", "Logging error",
         "\x1b", "\x00")


def new_project(tmp_path: Path, images: int = 6) -> Path:
    folder = tmp_path / "hall"
    make_photo_folder(folder, images, size=(320, 240))
    made = loracap("new", folder, "--trigger", "hall")
    assert made.returncode == 0, made.stderr
    return folder / "hall.loraproj"


def start_caption(project: Path, server: FakeGeminiServer, stderr: IO[str],
                  *options: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loracap", "caption", str(project), *options],
        cwd=REPO, env=cli_env(server), stdout=subprocess.PIPE, stderr=stderr, text=True,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def stats(project: Path) -> dict[str, int]:
    with Project.open(project, read_only=True) as proj:
        found = proj.stats()
        return {"captioned": found.captioned, "failed": found.failed}


def clean(text: str) -> None:
    for bad in NEVER:
        assert bad not in text, f"{bad!r} in:\n{text}"


# --- Ctrl+C -----------------------------------------------------------------------------------


def test_ctrl_c_stops_at_once_while_requests_hang(tmp_path: Path,
                                                  server: FakeGeminiServer) -> None:
    project = new_project(tmp_path)
    server.reply_always(Reply.hang(60))
    server.queue_replies(Reply.json({"room_type": "first", **FIELDS}),
                         Reply.json({"room_type": "second", **FIELDS}))
    with (tmp_path / "stderr.txt").open("w+", encoding="utf-8") as err:
        proc = start_caption(project, server, err, "--workers", "2", "--rpm", "1000",
                             "--timeout", "60")
        assert proc.stdout is not None
        reported = [proc.stdout.readline(), proc.stdout.readline()]
        wait_for(lambda: len(server.generate_requests) >= 4)  # two requests now hang
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        elapsed = time.monotonic() - sent
        err.seek(0)
        stderr = err.read()
    assert proc.returncode == 130, stderr
    assert elapsed < 5, elapsed  # not the 60 s timeout of the hanging requests
    # Which two: the first two requests sent; images are prepared ahead on several threads, so
    # under load the third image's request may go before the first's.
    names = {line.split("\t")[0] for line in reported}
    assert len(names) == 2 and all(name.startswith("IMG_") for name in names), reported
    assert rest == ""
    assert ("Cancelling: no new requests, no more waiting for answers (Ctrl+C again quits at "
            "once)…") in stderr
    assert "Cancelled; 4 image(s) left for the next run." in stderr
    clean(stderr)
    assert stats(project) == {"captioned": 2, "failed": 0}


def test_a_second_ctrl_c_quits_at_once(tmp_path: Path, server: FakeGeminiServer) -> None:
    # The first Ctrl+C still saves an answer that has arrived. Here saving it is held up (the
    # test holds the project's write lock, as a slow disk would), so the command is still
    # running; the second Ctrl+C ends it at once.
    project = new_project(tmp_path)
    server.reply_always(Reply.hang(1.0, then=Reply.json({"room_type": "late", **FIELDS})))
    with (tmp_path / "stderr.txt").open("w+", encoding="utf-8") as err:
        proc = start_caption(project, server, err, "--workers", "1", "--rpm", "1000")
        wait_for(lambda: len(server.generate_requests) >= 1)
        holder = sqlite3.connect(project, timeout=10)
        holder.execute("BEGIN IMMEDIATE")
        try:
            time.sleep(1.5)  # the answer has come; storing it waits for the lock
            proc.send_signal(signal.SIGINT)
            wait_for(lambda: "Cancelling" in (tmp_path / "stderr.txt").read_text(
                encoding="utf-8"), timeout=10)
            time.sleep(0.5)
            assert proc.poll() is None  # still saving the answer that arrived
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
            elapsed = time.monotonic() - sent
        finally:
            holder.rollback()
            holder.close()
        assert proc.stdout is not None
        reported = proc.stdout.read()
        proc.stdout.close()
    # Ended by the signal itself (a shell reports 130), not after the 10 s the save would wait.
    assert proc.returncode == -signal.SIGINT
    assert elapsed < 3, elapsed
    assert reported == ""
    with Project.open(project) as proj:  # the lock of the killed process is taken over
        assert proj.stats().captioned == 0


# --- a service that stops answering -----------------------------------------------------------


def test_a_service_that_stops_answering_stops_the_batch(tmp_path: Path,
                                                        server: FakeGeminiServer) -> None:
    project = new_project(tmp_path)
    server.reply_always(Reply.hang(60))
    started = time.monotonic()
    result = loracap("caption", project, "--timeout", "1", server=server)  # 4 workers, 10 rpm
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert elapsed < 30, elapsed  # three timeouts, not 6 images x 5 attempts, paced
    assert result.stderr.count("loracap: stopped:") == 1
    assert ("loracap: stopped: The captioning service is not answering: 3 requests in a row got "
            "no answer in time (Gemini did not answer within 1 s).\n"
            "6 image(s) not captioned yet. Check the internet connection, then run the same "
            "command again; finished captions are kept.\n") in result.stderr, result.stderr
    assert "failed:" not in result.stderr
    clean(result.stderr)
    assert len(server.generate_requests) <= 4
    assert stats(project) == {"captioned": 0, "failed": 0}


# --- bad answers ------------------------------------------------------------------------------


def test_bad_answers_fail_only_their_image(tmp_path: Path, server: FakeGeminiServer) -> None:
    project = new_project(tmp_path)
    server.queue_replies(
        Reply.json({"room_type": "atrium \ud800", **FIELDS}),
        Reply.json({"room_type": "atrium\x00\x1b[2J\x1b]0;pwned\x07", **FIELDS}),
        Reply.caption("a chair, " * 1_200_000),
    )
    result = loracap("caption", project, "--workers", "1", server=server)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [
        "IMG_0001.jpg\tphoto of hall atrium \ufffd, chairs, daylight, quiet",
        "IMG_0002.jpg\tphoto of hall atrium, chairs, daylight, quiet",
    ]
    assert len(lines) == 5
    assert ("failed: IMG_0003.jpg: The answer was too long to be a caption (10,800,000 "
            "characters; at most 1,500 are kept), so it was not used. Caption this image again, "
            "or write its caption by hand.") in result.stderr
    assert "Captioned 5 of 6 image(s)" in result.stderr and "; 1 failed." in result.stderr
    clean(result.stdout + result.stderr)
    assert stats(project) == {"captioned": 5, "failed": 1}


# --- a full disk ------------------------------------------------------------------------------


def _namespace(probe_dir: Path) -> list[str] | None:
    """The ``unshare`` command that gives a private mount namespace where tmpfs can be
    mounted (as root, or as a user in a user namespace), or None."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return None
    probe_dir.mkdir(exist_ok=True)
    for command in (["unshare", "--mount", "--propagation", "private"],
                    ["unshare", "--user", "--map-root-user", "--mount", "--propagation",
                     "private"]):
        done = subprocess.run([*command, "mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                               str(probe_dir)], capture_output=True, timeout=30)
        if done.returncode == 0:
            return command
    return None


#: Run in the namespace: a 2 MB tmpfs on $DISK holding a copy of the project folder, filled up
#: to $ROOM bytes free; then the command; then, with the room back, `loracap info`.
_FULL_DISK = r"""
set -e
mount -t tmpfs -o size=2m tmpfs "$DISK"
cp -a "$SRC/." "$DISK/"
cat /dev/zero > "$DISK/filler" 2>/dev/null || true
truncate -s "-$ROOM" "$DISK/filler"
set +e
"$@" > "$OUT/stdout" 2> "$OUT/stderr"
echo $? > "$OUT/rc"
rm -f "$DISK/filler"
"$PY" -m loracap info "$DISK/hall.loraproj" --json > "$OUT/info.json"
"""


def run_on_a_full_disk(tmp_path: Path, server: FakeGeminiServer, *command: str,
                       room: str = "96K") -> dict[str, str]:
    namespace = _namespace(tmp_path / "probe")
    if namespace is None:
        pytest.skip("no private mount namespace here (unshare/mount not allowed)")
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    out.mkdir()
    env = dict(cli_env(server), DISK=str(disk), SRC=str(tmp_path / "hall"), ROOM=room,
               OUT=str(out), PY=sys.executable, LORACAP_HOME=str(tmp_path / "home"),
               PYTHONDONTWRITEBYTECODE="1")
    subprocess.run([*namespace, "sh", "-c", _FULL_DISK, "sh", *command], cwd=REPO, env=env,
                   check=True, timeout=120)
    return {name: (out / name).read_text(encoding="utf-8")
            for name in ("rc", "stdout", "stderr", "info.json")}


def test_a_full_disk_stops_with_one_line_and_keeps_the_captions(
    tmp_path: Path, server: FakeGeminiServer
) -> None:
    new_project(tmp_path, images=10)
    found = run_on_a_full_disk(tmp_path, server, sys.executable, "-m", "loracap", "caption",
                               str(tmp_path / "disk" / "hall.loraproj"), "--workers", "1",
                               "--rpm", "1000")
    assert found["rc"].strip() == "1", found["stderr"]
    reported = [line.split("\t")[0] for line in found["stdout"].splitlines()]
    assert 1 <= len(reported) < 10
    stopped = [line for line in found["stderr"].splitlines() if line.startswith("loracap:")]
    nxt = f"IMG_{len(reported) + 1:04d}.jpg"
    assert stopped == [f"loracap: stopped: The disk is full: the caption of {nxt} could not be "
                       "saved in hall.loraproj. Free some space on the disk."]
    assert (f"{10 - len(reported)} image(s) not captioned yet. Finished captions are kept; run "
            "the same command again to continue.") in found["stderr"]
    clean(found["stderr"])
    info = json.loads(found["info.json"])
    assert (info["captioned"], info["failed"]) == (len(reported), 0)  # nothing reported lost


def test_a_file_size_limit_stops_with_one_line(tmp_path: Path,
                                               server: FakeGeminiServer) -> None:
    # RLIMIT_FSIZE: a write past the limit fails with EFBIG (SIGXFSZ ignored, as a shell's
    # `ulimit -f` user would see it); SQLite reports a disk I/O error, or "full" for a short
    # write. Works without privileges, so it runs everywhere.
    project = new_project(tmp_path, images=10)
    limit = project.stat().st_size + 12 * 1024
    launcher = (
        "import os, resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'loracap', *sys.argv[1:]])\n"
    )
    env = dict(cli_env(server), LORACAP_HOME=str(tmp_path / "home"),
               PYTHONDONTWRITEBYTECODE="1")
    result = subprocess.run(
        [sys.executable, "-c", launcher, "caption", str(project), "--workers", "1", "--rpm",
         "1000"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr
    reported = [line.split("\t")[0] for line in result.stdout.splitlines()]
    assert len(reported) < 10
    stopped = [line for line in result.stderr.splitlines() if line.startswith("loracap:")]
    nxt = re.escape(f"IMG_{len(reported) + 1:04d}.jpg")
    assert len(stopped) == 1 and re.fullmatch(
        rf"loracap: stopped: (The disk is full: the caption of {nxt} could not be saved in "
        rf"hall\.loraproj\. Free some space on the disk\.|The project file hall\.loraproj could "
        rf"not be written \(the caption of {nxt} was not saved\): disk I/O error; the disk may "
        rf"be full, over its quota or failing\.)", stopped[0]), stopped
    clean(result.stderr)
    assert stats(project) == {"captioned": len(reported), "failed": 0}


#: The window, offscreen, captioning a project on the full disk; prints what it showed.
_WINDOW = r"""
import json, os, sys
from pathlib import Path
from PyQt6.QtCore import QSettings, QTimer
from PyQt6.QtWidgets import QApplication, QMessageBox
from loracap.core.backends.gemini import GeminiCaptioner
from loracap.core.project import CaptionMode
from loracap.ui import dialogs
from loracap.ui.main_window import MainWindow
from loracap.ui.settings import AppSettings
from loracap.ui.thumbnails import ThumbnailProvider

project, home, base_url = sys.argv[1:4]
shown = []
dialogs.show_stop = lambda _parent, text, advice, **kw: shown.append([text, advice]) and False
def box(_parent, _title, text, *args, **kwargs):
    shown.append([text])
    return QMessageBox.StandardButton.Ok
for name in ("warning", "critical", "information"):
    setattr(QMessageBox, name, staticmethod(box))
app = QApplication(sys.argv[:1])
settings = AppSettings(QSettings(os.path.join(home, "settings.ini"), QSettings.Format.IniFormat))
window = MainWindow(settings, ThumbnailProvider(Path(home) / "thumbs"),
                    lambda config: GeminiCaptioner("test-key", config.model, base_url=base_url))
window.show()
window.open_project(Path(project))
def finished(summary):
    QTimer.singleShot(500, lambda: report(summary))  # anything shown late is seen too
def report(summary):
    print(json.dumps({"shown": shown, "done": summary.done}), flush=True)
    os._exit(0)
window.batch_finished.connect(finished)
QTimer.singleShot(0, lambda: window.generate(CaptionMode.MISSING))
QTimer.singleShot(60_000, lambda: os._exit(3))
app.exec()
"""


def test_the_window_shows_a_full_disk_once(tmp_path: Path, server: FakeGeminiServer) -> None:
    new_project(tmp_path, images=10)
    home = tmp_path / "home"
    home.mkdir()
    found = run_on_a_full_disk(tmp_path, server, sys.executable, "-c", _WINDOW,
                               str(tmp_path / "disk" / "hall.loraproj"), str(home),
                               server.base_url)
    assert found["rc"].strip() == "0", found["stderr"]
    report = json.loads(found["stdout"].strip().splitlines()[-1])
    done = report["done"]
    assert 1 <= done < 10
    ((text, advice),) = report["shown"]  # one message, and no other box
    assert re.fullmatch(r"Captioning stopped: The disk is full: the caption of IMG_\d{4}\.jpg "
                        r"could not be saved in hall\.loraproj\. Free some space on the disk\.",
                        text), text
    assert advice == (f"{10 - done} image(s) were not captioned yet. Finished captions are kept; "
                      "choose Generate Captions again to continue.")
    clean(found["stderr"])
    assert json.loads(found["info.json"])["captioned"] == done
