"""Trace and span ids that no ``random.seed`` can repeat.

The OTel SDK's default ``RandomIdGenerator`` draws from Python's global ``random``, which
training scripts seed (``transformers.set_seed``, RL environments): two runs seeded alike
then reuse each other's trace and span ids, and the store takes the second run's spans
for retries of the first. These come from ``os.urandom`` instead, which no seed touches
and which stays distinct across ``fork`` (dataloader workers).

Installed as the ``trackio`` id generator (``OTEL_PYTHON_ID_GENERATOR=trackio``, the
distro's default); the SDK's own providers use it directly.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import IdGenerator


class UrandomIdGenerator(IdGenerator):
    """Uniformly random ids from the operating system's generator (never 0, the invalid id)."""

    def generate_span_id(self) -> int:
        return _nonzero(8, trace.INVALID_SPAN_ID)

    def generate_trace_id(self) -> int:
        return _nonzero(16, trace.INVALID_TRACE_ID)

    def is_trace_id_random(self) -> bool:
        return True


def _nonzero(size: int, invalid: int) -> int:
    while (value := int.from_bytes(os.urandom(size), "big")) == invalid:
        pass
    return value
