"""Batch API jobs on the command line, as a user runs them (``python -m loracap caption
--batch``, ``loracap batch status|fetch|cancel``) against the fake Gemini Batch API through the
real google-genai client, each command a new process (issue 15)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.gemini_batch_server import FakeGeminiBatchServer
from tests.fakes.photos import make_photo

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake() -> Iterator[FakeGeminiBatchServer]:
    with FakeGeminiBatchServer("test-key") as server:
        yield server


def loracap(*args: str | Path, fake: FakeGeminiBatchServer | None = None,
            inline_limit: int | None = None, key: str = "test-key"
            ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GEMINI_", "GOOGLE_", "OPENAI_", "ANTHROPIC_", "LORACAP_"))}
    env.update({"PYTHON_KEYRING_BACKEND": "tests.fakes.memory_keyring.MemoryKeyring",
                "PYTHONPATH": str(REPO), "GEMINI_API_KEY": key,
                "LORACAP_NO_UPLOAD_CACHE": "1"})
    if fake is not None:
        env["GOOGLE_GEMINI_BASE_URL"] = fake.base_url
    if inline_limit is not None:
        env["LORACAP_GEMINI_INLINE_LIMIT"] = str(inline_limit)
    return subprocess.run([sys.executable, "-m", "loracap", *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "hall"
    for number in (1, 2, 3):
        make_photo(folder / f"IMG_000{number}.jpg", size=(640, 480), seed=number)
    made = loracap("new", folder, "--trigger", "hall")
    assert made.returncode == 0, made.stderr
    return folder / "hall.loraproj"


def test_submit_follow_and_fetch_across_processes(project: Path,
                                                  fake: FakeGeminiBatchServer) -> None:
    estimate = loracap("caption", project, "--batch", "--estimate", "--json")
    assert estimate.returncode == 0, estimate.stderr
    figures = json.loads(estimate.stdout)
    assert figures["batch"] is True and figures["requests"] == 3
    if figures["cost_one_by_one_usd"] is not None:
        assert figures["cost_usd"] == pytest.approx(figures["cost_one_by_one_usd"] / 2)

    submitted = loracap("caption", project, "--batch", fake=fake, inline_limit=2000)
    assert submitted.returncode == 0, submitted.stderr
    assert "Submitted 3 image(s) to the Gemini batch API as job 1 (batches/" in \
        submitted.stderr
    (job,) = fake.jobs.values()
    assert job.input_file  # over the (lowered) inline limit: a JSONL file was uploaded
    again = loracap("caption", project, "--batch", fake=fake)
    assert "3 image(s) already wait in an open batch job" in again.stderr
    assert len(fake.jobs) == 1
    # Nor are they captioned one by one meanwhile (that would pay twice).
    one_by_one = loracap("caption", project, fake=fake)
    assert one_by_one.returncode == 0, one_by_one.stderr
    assert "3 image(s) wait for the result of an open batch job and were left out" in \
        one_by_one.stderr
    assert "Nothing to caption" in one_by_one.stderr

    status = loracap("batch", "status", project, "--json", fake=fake)
    assert status.returncode == 0, status.stderr
    (line,) = [json.loads(text) for text in status.stdout.splitlines()]
    assert (line["state"], line["images"], line["remote_id"]) == ("pending", 3, job.name)
    early = loracap("batch", "fetch", project, fake=fake)
    assert early.returncode == 0 and "nothing to fetch yet" in early.stderr

    fake.finish()
    fetched = loracap("batch", "fetch", project, "--json", fake=fake)
    assert fetched.returncode == 0, fetched.stderr
    captions = {json.loads(text)["path"]: json.loads(text)["caption"]
                for text in fetched.stdout.splitlines()}
    assert sorted(captions) == ["IMG_0001.jpg", "IMG_0002.jpg", "IMG_0003.jpg"]
    assert all(caption.startswith("photo of hall ") for caption in captions.values())
    assert "stored 3 caption(s)" in fetched.stderr
    info = json.loads(loracap("info", project, "--json").stdout)
    assert info["captioned"] == 3
    done = loracap("batch", "status", project)
    assert "finished" in done.stdout and "3 done" in done.stdout
    assert "No batch job waits" in loracap("batch", "fetch", project, fake=fake).stderr


def test_fetch_wait_and_cancel(project: Path, fake: FakeGeminiBatchServer) -> None:
    assert loracap("caption", project, "--batch", fake=fake).returncode == 0
    cancelled = loracap("batch", "cancel", project, fake=fake)
    assert cancelled.returncode == 0, cancelled.stderr
    assert "is cancelled" in cancelled.stderr
    fetched = loracap("batch", "fetch", project, "--wait", "--poll", "0.1", fake=fake)
    assert fetched.returncode == 0, fetched.stderr
    assert "3 image(s) got no result (cancelled)" in fetched.stderr
    # The images are free again for a new job.
    assert loracap("caption", project, "--batch", fake=fake).returncode == 0
    assert len(fake.jobs) == 2


def test_a_multi_person_project_is_refused_with_a_reason(tmp_path: Path,
                                                         fake: FakeGeminiBatchServer) -> None:
    folder = tmp_path / "couple"
    make_photo(folder / "IMG_0001.jpg", size=(320, 240), seed=1)
    assert loracap("new", folder, "--trigger", "couple", "--profile",
                   "multi-person").returncode == 0
    refused = loracap("caption", folder / "couple.loraproj", "--batch", fake=fake)
    assert refused.returncode == 2, refused.stderr
    assert "Multi-person captions take several requests" in refused.stderr
    assert fake.jobs == {}


def test_a_refused_key_is_said_before_preparing_and_leaves_no_job(
        project: Path, fake: FakeGeminiBatchServer) -> None:
    refused = loracap("caption", project, "--batch", fake=fake, key="revoked-key")
    assert refused.returncode == 3, refused.stderr  # an authentication failure
    assert "Gemini refused the API key" in refused.stderr
    assert "API key not valid" in refused.stderr  # the service's own words
    assert "Preparing" not in refused.stderr  # said before any image was prepared
    assert fake.jobs == {} and fake.files == {}
    assert {request.method for request in fake.requests} == {"GET"}  # only the check
    status = loracap("batch", "status", project)
    assert status.returncode == 0, status.stderr
    assert "No batch jobs" in status.stdout
    # With the right key the same images go: nothing was held back by the refused attempt.
    submitted = loracap("caption", project, "--batch", fake=fake)
    assert submitted.returncode == 0, submitted.stderr
    assert "Preparing 3 of 3 image(s)" in submitted.stderr
    assert "Submitted 3 image(s)" in submitted.stderr
