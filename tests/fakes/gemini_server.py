"""The fake Gemini server used by the tests; it lives in the package so that the frozen app's
``--self-test`` can start it too (see :mod:`loracap.selftest.fake_gemini`)."""

from loracap.selftest.fake_gemini import (
    FakeGeminiServer,
    FakeModel,
    RecordedRequest,
    Reply,
    default_responder,
    format_retry_delay,
)

__all__ = [
    "FakeGeminiServer", "FakeModel", "RecordedRequest", "Reply", "default_responder",
    "format_retry_delay",
]
