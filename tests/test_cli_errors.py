"""Errors of the command line as a user meets them: one clear line on stderr and the documented
exit code, run as ``python -m loracap`` in a subprocess (issue 11, items 1, 5 and 7)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from loracap.core.project import Project
from tests.fakes.gemini_server import FakeGeminiServer
from tests.fakes.photos import make_photo_folder

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]

#: Root ignores file permissions; without CAP_DAC_OVERRIDE (dropped from the bounding set by
#: util-linux's setpriv, so the child and its children never have it) it does not.
_AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
_SETPRIV = shutil.which("setpriv")
_PERMISSIONS = ["--bounding-set=-dac_override,-dac_read_search"]


def cli_env(home: Path, server: FakeGeminiServer | None = None,
            key: str | None = "test-key") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL")}
    env.update(PYTHON_KEYRING_BACKEND="tests.fakes.memory_keyring.MemoryKeyring",
               QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(REPO), LORACAP_HOME=str(home))
    if server is not None:
        env["GOOGLE_GEMINI_BASE_URL"] = server.base_url
    if key is not None:
        env["GEMINI_API_KEY"] = key
    return env


def run(home: Path, *args: str | bytes | Path, server: FakeGeminiServer | None = None,
        key: str | None = "test-key", stdin: bytes | None = None,
        permissions: bool = False) -> subprocess.CompletedProcess[bytes]:
    """``python -m loracap ARGS`` with its own LORACAP_HOME (so its log is its own); with
    ``permissions`` file permissions apply even to root. Output as bytes."""
    prefix: list[str] = []
    if permissions and _AS_ROOT:
        if _SETPRIV is None:
            pytest.skip("running as root without setpriv: permissions cannot be tested")
        prefix = [_SETPRIV, *_PERMISSIONS]
    argv: list[str | bytes] = [*prefix, sys.executable, "-m", "loracap"]
    argv += [str(a) if isinstance(a, Path) else a for a in args]
    return subprocess.run(argv, cwd=REPO, env=cli_env(home, server, key), input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, timeout=120)


def one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    """The single line on stderr (failing when there is not exactly one)."""
    text = result.stderr.decode("utf-8")
    assert text.endswith("\n") and text.count("\n") == 1, text
    return text[:-1]


def log_text(home: Path) -> str:
    path = home / "logs" / "loracap.log"
    return path.read_text(encoding="utf-8") if path.exists() else ""


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project of three photos, every one captioned by hand (so exports get to the target)."""
    folder = tmp_path / "hall"
    make_photo_folder(folder, 3, size=(800, 600))
    path = folder / "hall.loraproj"
    from loracap.core.scan import scan_folder

    with Project.create(path, trigger="hall") as proj:
        proj.add_scanned(scan_folder(folder))
        for rec in proj.images():
            proj.edit_caption(rec.id, f"caption of {rec.file_name}")
    return path


@pytest.fixture
def writable_again(tmp_path: Path) -> Iterator[list[Path]]:
    """Paths a test made read-only; made writable again afterwards so tmp_path can go."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def read_only(paths: list[Path], *targets: Path) -> None:
    for target in targets:
        target.chmod(target.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        paths.append(target)


# ---------------------------------------------------------------------- usage errors


@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "0", "-1"])
def test_a_timeout_that_is_not_a_sensible_number_of_seconds_is_a_usage_error(
        home: Path, tmp_path: Path, value: str) -> None:
    result = run(home, "caption", tmp_path / "x.loraproj", "--timeout", value)
    assert result.returncode == 2
    assert one_line(result) == (
        "loracap caption: error: argument --timeout: must be a number of seconds above 0 and at "
        "most 3600 (see `loracap caption --help`)")


def test_a_word_that_is_not_a_command_is_a_usage_error_not_a_window(home: Path) -> None:
    for argv in (["help"], ["help", "run"], ["-v", "help"]):
        result = run(home, *argv)
        assert result.returncode == 2, argv
        assert one_line(result) == (
            "loracap: error: help is not a command or an existing folder; the commands are run, "
            "new, caption, export, info, check, tags, models, prices, key, qa, batch (see "
            "`loracap --help`).")
    result = run(home, "photos/ide_hall.loraproj")
    assert result.returncode == 2
    assert one_line(result) == (
        "loracap: error: photos/ide_hall.loraproj: no such folder or project file (`loracap "
        "FOLDER` and `loracap PROJECT.loraproj` open the window; `loracap --help` lists the "
        "commands).")


@pytest.mark.parametrize("kind", ["folder", "project"])
def test_an_existing_folder_or_project_still_opens_the_window(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    import loracap.__main__ as entry
    import loracap.ui.app

    target = tmp_path / "hall"
    target.mkdir()
    if kind == "project":
        target = target / "hall.loraproj"
        target.write_bytes(b"")
    opened: list[Path | None] = []
    monkeypatch.setattr(loracap.ui.app, "run_gui", lambda path=None, **_: opened.append(path) or 0)
    monkeypatch.setattr(sys, "argv", ["loracap", str(target)])
    assert entry.main() == 0
    assert opened == [target]


@pytest.mark.skipif(sys.platform == "win32", reason="arguments are Unicode on Windows")
def test_an_argument_that_is_not_utf8_gives_one_line(home: Path, tmp_path: Path) -> None:
    name = os.fsencode(tmp_path) + b"/caf\xe9.loraproj"
    result = run(home, b"info", name)
    assert result.returncode == 2
    assert one_line(result) == f"loracap: error: No project file at {tmp_path}/caf\\xe9.loraproj."
    log = log_text(home)
    assert "Logging error" not in log and "caf\\udce9.loraproj" in log  # written, escaped


# ---------------------------------------------------------------------- standard output closed


def run_into_closed_pipe(home: Path, *args: str | Path,
                         server: FakeGeminiServer | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run with standard output a pipe whose reading end is already closed (``| head`` that
    has finished)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run([sys.executable, "-m", "loracap", *map(str, args)], cwd=REPO,
                              env=cli_env(home, server), stdin=subprocess.DEVNULL,
                              stdout=write_end, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGPIPE is POSIX")
def test_a_closed_standard_output_ends_quietly(home: Path, project: Path) -> None:
    for args in (["info", project, "--list"], ["tags", project], ["check", project, "--json"]):
        result = run_into_closed_pipe(home, *args)
        assert (result.returncode, result.stderr) == (141, b""), args
    assert run_into_closed_pipe(home, "--help").stderr == b""  # argparse: exit 0, quiet too


@pytest.mark.skipif(sys.platform == "win32", reason="SIGPIPE is POSIX")
def test_caption_into_a_closed_pipe_stops_quietly_and_keeps_the_captions(
        home: Path, project: Path, server: FakeGeminiServer) -> None:
    result = run_into_closed_pipe(home, "caption", project, "--only", "all",
                                  "--overwrite-edited", "--workers", "1", server=server)
    assert result.returncode == 141, result.stderr
    assert b"Traceback" not in result.stderr and b"rror" not in result.stderr
    with Project.open(project, read_only=True) as proj:
        generated = [rec for rec in proj.images() if rec.caption
                     and rec.caption.provenance.value == "generated"]
    assert generated  # the caption that could not be printed is saved all the same


# ---------------------------------------------------------------------- the API key


def test_key_set_without_a_terminal_reads_standard_input(home: Path) -> None:
    nothing = run(home, "key", "set")  # standard input: /dev/null
    assert nothing.returncode == 2
    assert one_line(nothing) == (
        "loracap: error: No key on standard input; nothing was stored. Run `loracap key set` in "
        "a terminal, or give the key on standard input: `loracap key set < key.txt`.")
    stored = run(home, "key", "set", stdin=b"  AIza-a-pasted-key_0123456789\r\n")
    assert stored.returncode == 0
    assert stored.stderr == b"Stored the key in the OS keychain.\n"


def test_key_set_refuses_a_key_with_a_line_break_inside(home: Path) -> None:
    result = run(home, "key", "set", stdin=b"first-half-of-key\nsecond-half-of-key\n")
    assert result.returncode == 3
    assert one_line(result) == (
        "loracap: error: This API key contains a line break, which an API key never has (a bad "
        "paste?); nothing was stored. Copy the key from Google AI Studio "
        "(https://aistudio.google.com/apikey) once more and save it.")
    for text in (result.stderr.decode(), log_text(home)):
        assert "first-half-of-key" not in text and "second-half-of-key" not in text


def test_a_key_with_a_line_break_never_reaches_stderr_the_log_or_the_server(
        home: Path, project: Path, server: FakeGeminiServer) -> None:
    key = "AIza-first-half-of-the-key\nsecond-half-of-the-key"
    result = run(home, "caption", project, "--only", "all", "--overwrite-edited",
                 server=server, key=key)
    assert result.returncode == 3
    assert one_line(result) == (
        "loracap: error: The Gemini API key in GEMINI_API_KEY contains a line break, which an API "
        "key never has (a bad paste?). Copy the key from Google AI Studio "
        "(https://aistudio.google.com/apikey) once more and set GEMINI_API_KEY to it.")
    assert server.requests == []
    status = run(home, "key", "status", key=key)
    assert status.returncode == 3
    for text in (result.stderr.decode(), status.stderr.decode(), log_text(home)):
        for form in ("AIza-first-half-of-the-key", "second-half-of-the-key", repr(key)):
            assert form not in text


# ---------------------------------------------------------------------- files that cannot be written


def test_export_never_writes_over_the_project_or_a_device(home: Path, project: Path) -> None:
    itself = run(home, "export", project, "--out", project, "--force")
    assert itself.returncode == 2
    assert one_line(itself) == (
        f"loracap: error: {project} is a LoRACap project file; an export never writes over one. "
        "Choose another file with --out.")
    if Path("/dev/full").exists():
        device = run(home, "export", project, "--out", "/dev/full", "--force")
        assert device.returncode == 2
        assert one_line(device) == (
            "loracap: error: /dev/full exists and is not a regular file; an export never "
            "replaces it. Choose another file with --out.")
    assert not zipfile.is_zipfile(project)  # still the project, with every caption
    with Project.open(project, read_only=True) as proj:
        assert [rec.caption.body for rec in proj.images() if rec.caption] == [
            "caption of IMG_0001.jpg", "caption of IMG_0002.jpg", "caption of IMG_0003.jpg"]


def assert_read_only_refusal(result: subprocess.CompletedProcess[bytes], name: str) -> None:
    """Exit 2 and one line that names the project and says it is read-only (the wording of
    the project's own message may vary: the CLI's and the core's both qualify)."""
    assert result.returncode == 2, result.stderr
    line = one_line(result)
    assert line.startswith("loracap: error: ") and name in line and "read-only" in line, line


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_project_is_refused_in_one_line_and_still_exports(
        home: Path, project: Path, server: FakeGeminiServer, writable_again: list[Path],
        what: str) -> None:
    read_only(writable_again, project if what == "file" else project.parent)
    before = digest(project)
    result = run(home, "caption", project, "--only", "all", "--overwrite-edited",
                 server=server, permissions=True)
    assert_read_only_refusal(result, "hall.loraproj")
    assert server.requests == [] and digest(project) == before
    out = home / "hall.zip"
    exported = run(home, "export", project, "--out", out, permissions=True)
    assert exported.returncode == 0, exported.stderr  # read-only: exported, not recorded
    assert exported.stdout.decode().strip() == str(out) and out.is_file()
    assert digest(project) == before


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_new_in_a_read_only_folder_is_refused_in_one_line(
        home: Path, tmp_path: Path, writable_again: list[Path]) -> None:
    folder = tmp_path / "photos"
    make_photo_folder(folder, 2, size=(800, 600))
    read_only(writable_again, folder)
    result = run(home, "new", folder, "--trigger", "hall", permissions=True)
    assert_read_only_refusal(result, str(folder))
    assert not list(folder.glob("*.loraproj*"))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_export_into_a_read_only_folder_is_one_line_exit_2(
        home: Path, project: Path, tmp_path: Path, writable_again: list[Path]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    read_only(writable_again, out)
    result = run(home, "export", project, "--out", out / "hall.zip", permissions=True)
    assert result.returncode == 2
    assert one_line(result) == (
        f"loracap: error: Cannot write {out / 'hall.zip'}: Permission denied. Nothing was "
        "written.")
    assert list(out.iterdir()) == []


def test_sqlite_words_become_what_to_do(tmp_path: Path) -> None:
    import argparse
    import sqlite3

    from loracap.cli import _unwritable
    from loracap.core.errors import ProjectError

    path = tmp_path / "hall.loraproj"
    try:
        try:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        except sqlite3.OperationalError as exc:
            raise ProjectError(f"Cannot open {path}: (sqlite3.OperationalError) {exc}") from exc
    except ProjectError as error:
        message = _unwritable(error, argparse.Namespace(project=path))
    assert message == (
        f"Cannot write to {path}: it or its folder is read-only, or you may not change it. Make "
        "both writable (or copy the folder to a place you can write to), then run the command "
        "again.")
    assert _unwritable(ProjectError("damaged"), argparse.Namespace(project=path)) is None
    denied = PermissionError(13, "Permission denied", str(tmp_path / "out.zip"))
    assert _unwritable(denied, argparse.Namespace(project=path)) == (
        f"Cannot write to {tmp_path / 'out.zip'}: it or its folder is read-only, or you may not "
        "change it. Make both writable (or copy the folder to a place you can write to), then "
        "run the command again.")
