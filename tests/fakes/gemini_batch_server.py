"""A fake of Gemini's Batch API and File API on 127.0.0.1, for the real ``google-genai`` client.

Routes (any API version, ``v1`` or ``v1beta``), as the SDK calls them (its ``batches.py`` and
``files.py``):

* ``POST /{v}/models/{model}:batchGenerateContent`` -- a job of inline requests
  (``batch.inputConfig.requests.requests``) or of an uploaded JSONL file
  (``batch.inputConfig.fileName``); answers ``{"name": "batches/…", "metadata": {…}}``;
* ``GET /{v}/batches`` (newest first), ``GET /{v}/batches/{id}``,
  ``POST /{v}/batches/{id}:cancel``;
* ``POST /upload/{v}/files`` (resumable upload: ``start``, then ``upload, finalize`` chunks
  to the URL in ``X-Goog-Upload-URL``), ``GET /{v}/files`` (newest first),
  ``GET /{v}/files/{id}:download?alt=media``,
  ``DELETE /{v}/files/{id}``.

A job stays ``BATCH_STATE_PENDING`` until the test calls :meth:`FakeGeminiBatchServer.finish`
(answers every request with :func:`default_responder` or the test's ``answer``, and stores the
results in REVERSED order, so a client matching by position gets them wrong), :meth:`expire`
(keeps the results of the first ``done`` requests) or :meth:`fail`. A job of inline requests
returns inline results, a job of a file returns a result file.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from loracap.selftest.fake_gemini import RecordedRequest as GenerateRequest
from loracap.selftest.fake_gemini import Reply, default_responder
from tests.fakes.batch_fake import FakeBatchServer
from tests.fakes.http_fake import HttpReply, RecordedRequest

#: ``answer(key, request)`` -> a :class:`Reply` of generateContent (its JSON body is the
#: result), or an ``{"code", "message"}`` error dict.
Answerer = Callable[[str, GenerateRequest], "Reply | dict[str, Any]"]


@dataclass
class FakeJob:
    """One job as the fake holds it: the requests ``(key, request JSON)`` in order, its state,
    the results once finished and the input file's name (``""`` inline)."""

    name: str
    model: str
    display_name: str
    requests: list[tuple[str, dict[str, Any]]]
    input_file: str = ""
    state: str = "BATCH_STATE_PENDING"
    results: list[dict[str, Any]] = field(default_factory=list)
    result_file: str = ""


class FakeGeminiBatchServer(FakeBatchServer[FakeJob]):
    """See the module's description. ``jobs`` by name, ``files`` (name -> bytes)."""

    name = "fake-gemini-batch"

    def __init__(self, api_key: str = "test-key") -> None:
        super().__init__(api_key)
        self.jobs: dict[str, FakeJob] = {}
        self.files: dict[str, bytes] = {}
        self.deleted: list[str] = []
        self._uploads: dict[str, bytearray] = {}
        #: The display name of each uploaded file.
        self.file_names: dict[str, str] = {}
        self._upload_names: dict[str, str] = {}

    def held(self) -> dict[str, FakeJob]:
        return self.jobs

    # -- test control ------------------------------------------------------------------------

    def finish(self, name: str | None = None, answer: Answerer | None = None, *,
               done: int | None = None, state: str = "BATCH_STATE_SUCCEEDED") -> FakeJob:
        """Answer the job's first ``done`` requests (all by default) and end it in ``state``;
        results are stored in reversed order."""
        job = self._job(name)
        results = []
        for key, request in job.requests[: done if done is not None else len(job.requests)]:
            results.append(_result(key, request, job.model, answer))
        job.results = list(reversed(results))
        job.state = state
        if job.input_file:
            job.result_file = f"files/batch-results-{next(self._ids)}"
            self.files[job.result_file] = "".join(
                json.dumps(item) + "\n" for item in job.results).encode()
        return job

    def expire(self, name: str | None = None, *, done: int = 0) -> FakeJob:
        """End the job as expired, with the results of its first ``done`` requests."""
        return self.finish(name, done=done, state="BATCH_STATE_EXPIRED")

    def fail(self, name: str | None = None) -> FakeJob:
        """End the job as failed, without results."""
        job = self._job(name)
        job.state = "BATCH_STATE_FAILED"
        return job

    def start_running(self, name: str | None = None) -> None:
        """Move the job to ``BATCH_STATE_RUNNING``."""
        self._job(name).state = "BATCH_STATE_RUNNING"

    # -- routing -----------------------------------------------------------------------------

    def refuse(self, request: RecordedRequest) -> HttpReply | None:
        if request.header("x-goog-api-key") not in ("", self.api_key) or (
                not request.header("x-goog-api-key") and "upload_id" not in request.query):
            return _error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid "
                          "API key.", reason="API_KEY_INVALID")
        return None

    def route(self, request: RecordedRequest) -> HttpReply:
        parts = request.path.strip("/").split("/")
        if parts[0] == "upload":
            return self._upload(request)
        path = "/".join(parts[1:])  # without the version
        if request.method == "POST" and path.startswith("models/") and path.endswith(
                ":batchGenerateContent"):
            return self._create(path.removeprefix("models/").removesuffix(
                ":batchGenerateContent"), request.body or {})
        if path == "batches" and request.method == "GET":
            with self._state_lock:
                newest_first = list(reversed(self.jobs.values()))
            return HttpReply.json({"operations": [_job_body(job) for job in newest_first]})
        if path.startswith("batches/"):
            name, _, verb = path.partition(":")
            job = self.jobs.get(name)
            if job is None:
                return _error(404, "NOT_FOUND", f"Batch {name} not found.")
            if request.method == "POST" and verb == "cancel":
                if job.state in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
                    job.state = "BATCH_STATE_CANCELLED"
                return HttpReply.json({})
            return HttpReply.json(_job_body(job))
        if path == "files" and request.method == "GET":
            with self._state_lock:
                newest_first = list(reversed(self.files))
            return HttpReply.json({"files": [
                {"name": name, "displayName": self.file_names.get(name, ""),
                 "sizeBytes": str(len(self.files[name]))} for name in newest_first]})
        if path.startswith("files/"):
            name, _, verb = path.partition(":")
            if name not in self.files:
                return _error(404, "NOT_FOUND", f"File {name} not found.")
            if request.method == "DELETE":
                self.deleted.append(name)
                return HttpReply.json({})
            if verb == "download":
                return HttpReply(body=self.files[name], content_type="application/octet-stream")
            return HttpReply.json({"name": name, "sizeBytes": str(len(self.files[name]))})
        return _error(404, "NOT_FOUND", f"Unknown path {request.path}")

    def _create(self, model: str, body: dict[str, Any]) -> HttpReply:
        batch = body.get("batch", {})
        source = batch.get("inputConfig", {})
        requests: list[tuple[str, dict[str, Any]]] = []
        input_file = ""
        if "fileName" in source:
            input_file = source["fileName"]
            if input_file not in self.files:
                return _error(400, "INVALID_ARGUMENT", f"File {input_file} not found.")
            for line in self.files[input_file].decode().splitlines():
                item = json.loads(line)
                requests.append((item["key"], item["request"]))
        else:
            for item in source.get("requests", {}).get("requests", []):
                requests.append((item.get("metadata", {}).get("key", ""), item["request"]))
        with self._state_lock:
            name = f"batches/fake{next(self._ids)}"
            job = FakeJob(name, model, batch.get("displayName", ""), requests, input_file)
            self.jobs[name] = job
        return HttpReply.json(_job_body(job))

    def _upload(self, request: RecordedRequest) -> HttpReply:
        command = request.header("x-goog-upload-command")
        if command == "start":
            upload_id = f"up{next(self._ids)}"
            self._uploads[upload_id] = bytearray()
            file_name = ((request.body or {}).get("file") or {}).get("name") or \
                f"files/upload{next(self._ids)}"
            self._upload_names[upload_id] = file_name
            described = (request.body or {}).get("file") or {}  # the SDK sends snake_case
            self.file_names[file_name] = described.get("displayName") or described.get(
                "display_name", "")
            version = request.path.strip("/").split("/")[1]
            url = f"{self.origin}/upload/{version}/files?upload_id={upload_id}"
            return HttpReply.json({}, headers={"X-Goog-Upload-URL": url,
                                               "X-Goog-Upload-Status": "active"})
        upload_id = parse_qs(request.query).get("upload_id", [""])[0]
        if upload_id not in self._uploads:
            return _error(404, "NOT_FOUND", "Unknown upload.")
        self._uploads[upload_id].extend(request.raw)
        if "finalize" not in command:
            return HttpReply.json({}, headers={"X-Goog-Upload-Status": "active"})
        name = self._upload_names.pop(upload_id)
        self.files[name] = bytes(self._uploads.pop(upload_id))
        return HttpReply.json({"file": {"name": name, "sizeBytes": str(len(self.files[name])),
                                        "mimeType": "jsonl", "state": "ACTIVE"}},
                              headers={"X-Goog-Upload-Status": "final"})


def _result(key: str, request: dict[str, Any], model: str, answer: Answerer | None
            ) -> dict[str, Any]:
    texts: list[str] = []
    image = None
    for content in request.get("contents", []):
        for part in content.get("parts", []):
            if "text" in part:
                texts.append(part["text"])
            inline = part.get("inlineData") or part.get("inline_data")
            if inline and image is None:
                data = str(inline.get("data", ""))
                image = base64.b64decode(data + "=" * (-len(data) % 4), altchars=b"-_")
    generate = GenerateRequest(
        arrived=0.0, method="POST", path="", model=model, api_key="",
        prompt="\n".join(texts), image=image, image_mime_type="image/jpeg",
        generation_config=request.get("generationConfig") or request.get(
            "generation_config") or {}, body=request)
    reply = answer(key, generate) if answer is not None else default_responder(generate)
    if isinstance(reply, dict):
        return {"key": key, "error": reply}
    return {"key": key, "response": reply.body}


def _job_body(job: FakeJob) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "@type": "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch",
        "model": f"models/{job.model}", "displayName": job.display_name, "state": job.state,
        "name": job.name, "createTime": "2026-11-30T12:00:00Z",
        "updateTime": "2026-11-30T12:00:00Z",
    }
    if job.results or job.state in ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_EXPIRED",
                                    "BATCH_STATE_CANCELLED"):
        if job.input_file:
            if job.result_file:
                metadata["output"] = {"responsesFile": job.result_file}
        else:
            metadata["output"] = {"inlinedResponses": {"inlinedResponses": [
                {"metadata": {"key": item["key"]},
                 **{k: v for k, v in item.items() if k != "key"}}
                for item in job.results]}}
    body: dict[str, Any] = {"name": job.name, "metadata": metadata}
    if job.state not in ("BATCH_STATE_PENDING", "BATCH_STATE_RUNNING"):
        body["done"] = True
    return body


def _error(code: int, status: str, message: str, reason: str = "") -> HttpReply:
    details = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                "domain": "googleapis.com"}] if reason else []
    return HttpReply.json({"error": {"code": code, "message": message, "status": status,
                                     "details": details}}, code)
