"""OpenLLMetry (Traceloop) ≤0.54: flattened ``gen_ai.prompt.{i}.*`` / ``gen_ai.completion.{i}.*``.

From 0.55 OpenLLMetry writes the OTel GenAI JSON form, which ``genai`` handles. The older
flattened form is still emitted by many OpenLLMetry instrumentations; its kind comes from
``llm.request.type`` and its usage may add ``llm.usage.total_tokens``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from trackio_otel import semconv
from trackio_otel.translate import pdata
from trackio_otel.translate.conventions import genai, usage
from trackio_otel.translate.conventions import messages as msgs
from trackio_otel.translate.model import Log, Span

if TYPE_CHECKING:
    from trackio_otel.translate.conventions import SpanView

NAME = "openllmetry"
REQUEST_TYPE = "llm.request.type"
GENERATION_TYPES = frozenset({"chat", "completion"})
_NOISE = frozenset({"llm.headers"})
USAGE = replace(
    genai.USAGE,
    total_tokens=("llm.usage.total_tokens", *genai.USAGE.total_tokens),
    details={
        **genai.USAGE.details,
        "reasoning_tokens": (
            "llm.usage.reasoning_tokens",
            *genai.USAGE.details["reasoning_tokens"],
        ),
    },
    cost=None,
)
"""GenAI's usage names, where ``llm.usage.*`` (total, reasoning) wins; no cost."""


def detect(attrs: dict[str, Any]) -> bool:
    return REQUEST_TYPE in attrs or any(map(genai.is_flat_content, attrs))


def fill(v: SpanView, span: Span, logs: list[Log]) -> None:
    a = span.attributes
    request_type = a.get(REQUEST_TYPE)
    if a.get("traceloop.span.kind") == "tool":
        v.kind = "tool"
    elif request_type in GENERATION_TYPES or (
        request_type is None and any(k.startswith("gen_ai.completion.") for k in a)
    ):
        v.kind = "generation"
    v.model = a.get(semconv.GEN_AI_RESPONSE_MODEL) or a.get(semconv.GEN_AI_REQUEST_MODEL)
    v.metadata = genai.metadata(span)
    for name, value in a.items():
        if (
            name.startswith(("llm.", "traceloop."))
            and name not in _NOISE
            and not name.startswith(("llm.request.functions.", "traceloop.entity."))
        ):
            v.metadata[name] = value
    functions = msgs.unflatten(a, "llm.request.functions.")
    if functions:
        v.metadata["llm.request.functions"] = functions

    usage.record(
        v, a, USAGE, counted=v.kind == "generation" or request_type in ("embedding", "rerank")
    )

    if v.kind == "tool":
        v.input = pdata.parse_json(a.get("traceloop.entity.input"))
        v.output = pdata.parse_json(a.get("traceloop.entity.output"))
        return
    history = [_message(m) for m in msgs.unflatten(a, "gen_ai.prompt.")]
    outputs = [_message(m, "assistant") for m in msgs.unflatten(a, "gen_ai.completion.")]
    v.input = history or None
    v.output = (outputs[0] if len(outputs) == 1 else outputs) if outputs else None
    if v.kind == "generation":
        v.messages_in, v.message_out = history, (outputs[0] if outputs else None)


def _message(item: Any, default_role: str = "user") -> msgs.Message:
    """One unflattened ``gen_ai.prompt.{i}`` / ``gen_ai.completion.{i}`` → an OpenAI message."""
    m = item if isinstance(item, dict) else {}
    content = msgs.captured(m.get("content"))
    parsed = pdata.parse_json(content) if isinstance(content, str) and content[:1] == "[" else None
    if isinstance(parsed, list) and all(isinstance(p, dict) and "type" in p for p in parsed):
        content = parsed  # a multimodal prompt: OpenAI content items, kept as a list
    out: msgs.Message = {"role": m.get("role", default_role), "content": content}
    calls = [
        msgs.tool_call(c.get("id"), c.get("name"), c.get("arguments"))
        for c in m.get("tool_calls") or []
        if isinstance(c, dict)
    ]
    fc = m.get("function_call")
    if isinstance(fc, dict) and fc.get("name"):
        calls.append(msgs.tool_call(None, fc["name"], fc.get("arguments")))
    if calls:
        out["tool_calls"] = calls
    if m.get("tool_call_id"):
        out["tool_call_id"] = m["tool_call_id"]
    if m.get("finish_reason"):
        out["finish_reason"] = m["finish_reason"]
    if m.get("reasoning_content") or m.get("reasoning"):
        out["reasoning_content"] = m.get("reasoning_content") or m.get("reasoning")
    return out
