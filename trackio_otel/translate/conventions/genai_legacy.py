"""OTel GenAI before 1.37: ``gen_ai.operation.name`` / ``gen_ai.system`` with no JSON content.

Content, if any, is in per-message log events or ``gen_ai.content.*`` span events; ``genai``
already reads every place it can live, so this family only differs in how it is detected
(after OpenLLMetry's flattened form, which also sets ``gen_ai.system``).
"""

from __future__ import annotations

from typing import Any

from trackio_otel import semconv
from trackio_otel.translate.conventions.genai import fill

NAME = "otel_genai_legacy"
__all__ = ["NAME", "detect", "fill"]


def detect(attrs: dict[str, Any]) -> bool:
    return (
        semconv.GEN_AI_OPERATION_NAME in attrs
        or semconv.GEN_AI_SYSTEM in attrs
        or attrs.get("mcp.method.name") == "tools/call"
    )
