"""Batch APIs: big captioning jobs at half the price, results within a day (issue 15).

:mod:`~loracap.core.batches.base` holds the protocol every service's module fits and the words
for a job; :mod:`~loracap.core.batches.flow` submits, follows, fetches and cancels; one module
per service (``gemini``, ``anthropic``, ``openai``) talks to its batch API.
"""
