"""Visual question-answer datasets (issue 14): question-answer pairs about images, how a vision
model writes them, and their exports.

:mod:`~loracap.core.qa.records` holds the plain records (a pair, an image and its pairs, the
counts); :mod:`~loracap.core.qa.prompts` and :mod:`~loracap.core.qa.generate` ask a vision
model for pairs and check its answers; :mod:`~loracap.core.qa.exports` writes them in the
layouts vision-language trainers read (LLaVA, VQA-style, LLaMA-Factory's sharegpt, LoRACap's
own, a Hugging Face ``imagefolder``). Plain Python: no Qt. Only the records are imported here,
so that reading them (the window's grid) loads nothing heavy; import the other modules by name.
"""

from __future__ import annotations

from loracap.core.qa.records import AnswerType, QACount, QAEntry, QAImage, QAStats, QAVersion

__all__ = ["AnswerType", "QACount", "QAEntry", "QAImage", "QAStats", "QAVersion"]
