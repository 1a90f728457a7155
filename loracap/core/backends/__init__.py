"""Captioning backends: one module per service behind one protocol
(:class:`loracap.core.backends.base.Captioner`), known by name through
:mod:`loracap.core.backends.registry`."""
