"""Tiny Llama-architecture world models: encode transition logs, train, export GGUF, quantize.

Training needs PyTorch (the ``train`` extra). Only :mod:`~planner.training.model` and
:mod:`~planner.training.train` import it, so :mod:`~planner.training.data`,
:mod:`~planner.training.export` and :mod:`~planner.training.errors` work without it.
"""
