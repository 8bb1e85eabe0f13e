"""OpenAI-style chat messages → the OTel GenAI parts schema (``gen_ai.*.messages``, ≥1.37).

Users (and trackio.Trace) hold conversations in OpenAI's shape; the semantic convention
wants ``[{role, parts: [...]}]``. ``translate.conventions.messages.from_parts`` is the
inverse the collector applies, so what the SDK writes is what Trackio shows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from trackio_otel import semconv

Message = dict[str, Any]


def to_json(value: Any) -> str:
    """Text as it is, anything else as JSON; what JSON cannot encode (a Decimal, a set, a
    tensor) as its ``str``, so one odd value never drops the record it is in."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def usage_attributes(usage: Mapping[str, Any] | None) -> dict[str, int]:
    """Token counts under the GenAI names; OpenAI's ``prompt_tokens``/``completion_tokens``
    are accepted too."""
    usage = usage or {}
    attrs = {}
    for names, attribute in (
        (("input_tokens", "prompt_tokens"), semconv.GEN_AI_USAGE_INPUT_TOKENS),
        (("output_tokens", "completion_tokens"), semconv.GEN_AI_USAGE_OUTPUT_TOKENS),
    ):
        value = next((usage[n] for n in names if usage.get(n) is not None), None)
        if value is not None:
            attrs[attribute] = int(value)
    return attrs


def generation_attributes(
    model: str | None,
    history: list[Message] | None,
    answer: Message | None,
    *,
    usage: Mapping[str, Any] | None = None,
    finish_reason: str | None = None,
    cost_usd: float | None = None,
    provider: str | None = None,
    response_model: str | None = None,
) -> dict[str, Any]:
    """A ``chat`` span's attributes (``run.rollout`` and ``run.log_trace`` both write these)."""
    attrs: dict[str, Any] = {semconv.GEN_AI_OPERATION_NAME: "chat"}
    if model:
        attrs[semconv.GEN_AI_REQUEST_MODEL] = model
        attrs[semconv.GEN_AI_RESPONSE_MODEL] = response_model or model
    if history is not None:
        attrs[semconv.GEN_AI_INPUT_MESSAGES] = dumps_messages(history)
    if provider:
        attrs[semconv.GEN_AI_PROVIDER_NAME] = provider
    if answer is not None:
        attrs[semconv.GEN_AI_OUTPUT_MESSAGES] = dumps_output(answer, finish_reason)
    if finish_reason:
        attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = [finish_reason]
    attrs.update(usage_attributes(usage))
    if cost_usd is not None:
        attrs[semconv.GEN_AI_USAGE_COST] = float(cost_usd)
    return attrs


def tool_attributes(
    name: str, call_id: str | None, arguments: Any = None, result: Any = None
) -> dict[str, Any]:
    """An ``execute_tool`` span's attributes; ``call_id`` pairs it with the assistant's call."""
    attrs: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: "execute_tool",
        semconv.GEN_AI_TOOL_NAME: name,
    }
    if call_id:
        attrs[semconv.GEN_AI_TOOL_CALL_ID] = str(call_id)
    if arguments is not None:
        attrs[semconv.GEN_AI_TOOL_CALL_ARGUMENTS] = to_json(arguments)
    if result is not None:
        attrs[semconv.GEN_AI_TOOL_CALL_RESULT] = to_json(result)
    return attrs


def parts_message(message: Message, finish_reason: str | None = None) -> dict[str, Any]:
    role = str(message.get("role", "user"))
    parts: list[dict[str, Any]] = []
    if role == "tool":
        parts.append(
            {
                "type": "tool_call_response",
                "id": message.get("tool_call_id"),
                "response": message.get("content"),
            }
        )
    else:
        parts.extend(_content_parts(message.get("content")))
        if message.get("reasoning_content"):
            parts.insert(0, {"type": "reasoning", "content": message["reasoning_content"]})
        for call in message.get("tool_calls") or []:
            fn = call.get("function") or {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": fn.get("name", call.get("name")),
                    "arguments": _json_or_text(fn.get("arguments", call.get("arguments"))),
                }
            )
    out: dict[str, Any] = {"role": role, "parts": parts}
    if message.get("name"):
        out["name"] = message["name"]
    if finish_reason is not None:
        out["finish_reason"] = finish_reason
    return out


def dumps_messages(messages: list[Message]) -> str:
    return to_json([parts_message(m) for m in messages])


def dumps_output(message: Message, finish_reason: str | None) -> str:
    return to_json([parts_message(message, finish_reason or "stop")])


def as_message(value: Any, role: str = "assistant") -> Message:
    """Text or an OpenAI message (or an object with ``role``/``content``) → a message dict."""
    if isinstance(value, dict):
        return value
    if hasattr(value, "model_dump"):  # openai / pydantic message objects
        return value.model_dump(exclude_none=True)
    if hasattr(value, "role"):
        return {
            k: getattr(value, k) for k in ("role", "content", "tool_calls") if hasattr(value, k)
        }
    return {"role": role, "content": to_json(value)}


def _content_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        parts = []
        for item in content:
            if isinstance(item, dict) and item.get("type") == "text":
                parts.append({"type": "text", "content": item.get("text", "")})
            elif isinstance(item, dict) and item.get("type") == "image_url":
                url = (item.get("image_url") or {}).get("url", "")
                parts.append({"type": "uri", "modality": "image", "uri": url})
            else:
                parts.append({"type": "text", "content": to_json(item)})
        return parts
    return [{"type": "text", "content": to_json(content)}]


def _json_or_text(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments
