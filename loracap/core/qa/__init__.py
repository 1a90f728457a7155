"""Visual question-answer datasets: question-answer pairs about images, and their exports.

:mod:`~loracap.core.qa.records` holds the plain records (an image and its pairs);
:mod:`~loracap.core.qa.exports` writes them in the layouts vision-language trainers read
(LLaVA, VQA-style, LLaMA-Factory's sharegpt, LoRACap's own, a Hugging Face ``imagefolder``).
Plain Python: no Qt.
"""

from __future__ import annotations

from loracap.core.qa.exports import QAExportResult, QAStyle, SkippedImage, SkipReason, export_qa
from loracap.core.qa.records import AnswerType, QAEntry, QAImage

__all__ = [
    "AnswerType",
    "QAEntry",
    "QAExportResult",
    "QAImage",
    "QAStyle",
    "SkipReason",
    "SkippedImage",
    "export_qa",
]
