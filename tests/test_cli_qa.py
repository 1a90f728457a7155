"""Visual question-answer pairs on the command line, as a user runs them (``python -m loracap
qa …``) against the fake Gemini server through the real google-genai client: generate, add a
question and answer it, labels with an invalid answer, list, stats, and every export style read
back by its reader (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fakes.gemini_server import FakeGeminiServer, Reply
from tests.fakes.photos import make_photo
from tests.test_cli_people import loracap

pytestmark = pytest.mark.slow


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "street"
    for number in (1, 2, 3):
        make_photo(folder / f"IMG_000{number}.jpg", size=(640, 480), seed=number)
    made = loracap("new", folder, "--trigger", "street")
    assert made.returncode == 0, made.stderr
    return folder / "street.loraproj"


def pairs(*items: tuple[str, str]) -> Reply:
    return Reply.json({"pairs": [{"question": q, "answer": a} for q, a in items]})


def test_generate_list_stats_and_export(project: Path, server: FakeGeminiServer,
                                        tmp_path: Path) -> None:
    done = loracap("qa", "generate", project, "--questions", "2", "--workers", "1", "--json",
                   "--language", "zh-CN", server=server)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(line["path"] for line in lines) == ["IMG_0001.jpg", "IMG_0002.jpg",
                                                      "IMG_0003.jpg"]
    assert all(line["qa"] == "2 pairs" for line in lines)
    requests = server.generate_requests
    assert len(requests) == 3  # one request per image: questions and answers together
    assert "Simplified Chinese" in requests[0].prompt
    assert "pairs" in requests[0].schema_properties
    # Nothing asked twice: a second run of "missing" has no image left.
    again = loracap("qa", "generate", project, server=server)
    assert again.returncode == 0 and "Nothing to ask about" in again.stderr
    listed = loracap("qa", "list", project, "--json")
    entries = [json.loads(line) for line in listed.stdout.splitlines()]
    assert len(entries) == 6 and all(e["model"] and e["provenance"] == "generated"
                                     for e in entries)
    stats = json.loads(loracap("qa", "stats", project, "--json").stdout)
    assert stats == {"entries": 6, "confirmed": 0, "average_score": None,
                     "by_answer_type": {"text": 6}, "images_with_qa": 3, "invalid": 0,
                     "images": 3}
    out = tmp_path / "llava.json"
    exported = loracap("qa", "export", project, "--style", "llava", "--out", out, "--json")
    assert exported.returncode == 0, exported.stderr
    records = json.loads(out.read_text(encoding="utf-8"))
    assert len(records) == 3
    assert records[0]["conversations"][0]["value"].startswith("<image>\n")
    assert all((out.parent / record["image"]).is_file() for record in records)


def test_fewer_pairs_invalid_labels_and_a_question_answered_later(
        project: Path, server: FakeGeminiServer) -> None:
    assert loracap("qa", "labels", project, "car,bicycle", "bus").stdout.split() == [
        "car", "bicycle", "bus"]
    server.queue_replies(pairs(("What vehicle is parked?", '["car"]'),
                               ("What is on the left?", '["tram"]')))
    done = loracap("qa", "generate", project, "--image", "IMG_0001.jpg", "--answer-type",
                   "label", "--questions", "3", server=server)
    assert done.returncode == 0, done.stderr
    summary = done.stdout.strip().split("\t")[1]
    assert summary.startswith("2 pairs; the model wrote 2 of the 3 asked for")
    assert "tram" in summary and "not in the project's label list" in summary
    stats = json.loads(loracap("qa", "stats", project, "--json").stdout)
    assert stats["invalid"] == 1 and stats["by_answer_type"] == {"label": 2}
    # A question a person wrote, answered by the model.
    added = loracap("qa", "add", project, "--image", "IMG_0002.jpg", "--question",
                    "How many windows can you see?")
    assert added.returncode == 0, added.stderr
    server.reset()
    server.queue_replies(Reply.json({"answers": ["Four windows on the upper floor."]}))
    answered = loracap("qa", "answer", project, server=server)
    assert answered.returncode == 0, answered.stderr
    assert len(server.generate_requests) == 1
    assert "How many windows can you see?" in server.generate_requests[0].prompt
    listed = [json.loads(line) for line in
              loracap("qa", "list", project, "--json", "--image", "IMG_0002.jpg").stdout
              .splitlines()]
    assert [(e["question"], e["answer"]) for e in listed] == [
        ("How many windows can you see?", "Four windows on the upper floor.")]
    # Only valid pairs are exported.
    out = project.parent / "all.jsonl"
    result = json.loads(loracap("qa", "export", project, "--out", out, "--jsonl",
                                "--json").stdout)
    assert result["pairs"] == 2 and result["skipped"] == {"invalid": 1}


def test_a_model_answer_that_is_not_json_fails_only_its_image(
        project: Path, server: FakeGeminiServer) -> None:
    server.queue_replies(Reply.caption("I'd rather describe the image: a street."))
    done = loracap("qa", "generate", project, "--workers", "1", server=server)
    assert done.returncode == 0, done.stderr
    assert "failed: IMG_0001.jpg: The model's answer is not the JSON asked for" in done.stderr
    assert "Retry them with `loracap qa generate" in done.stderr
    stats = json.loads(loracap("qa", "stats", project, "--json").stdout)
    assert stats["images_with_qa"] == 2
    # The caption of the failed image was not touched.
    info = json.loads(loracap("info", project, "--json").stdout)
    assert info["failed"] == 0


def test_bad_options_are_one_line(project: Path, tmp_path: Path) -> None:
    template = tmp_path / "prompt.txt"
    template.write_text("Ask about {subject}.", encoding="utf-8")
    bad = loracap("qa", "generate", project, "--prompt-file", template)
    assert bad.returncode == 2 and "placeholder" in bad.stderr and "Traceback" not in bad.stderr
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "banana"}', encoding="utf-8")
    refused = loracap("qa", "schema", project, schema)
    assert refused.returncode == 2 and "not a valid JSON schema" in refused.stderr
    nothing = loracap("qa", "export", project)
    assert nothing.returncode != 0 and "Traceback" not in nothing.stderr
