"""OpenAI-style chat messages → the OTel GenAI parts schema (``gen_ai.*.messages``, ≥1.37).

Users (and trackio.Trace) hold conversations in OpenAI's shape; the semantic convention
wants ``[{role, parts: [...]}]``. ``translate.conventions.messages.from_parts`` is the
inverse the collector applies, so what the SDK writes is what Trackio shows.
"""

from __future__ import annotations

import json
from typing import Any

Message = dict[str, Any]


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
    return json.dumps([parts_message(m) for m in messages], ensure_ascii=False, default=str)


def dumps_output(message: Message, finish_reason: str | None) -> str:
    return json.dumps(
        [parts_message(message, finish_reason or "stop")], ensure_ascii=False, default=str
    )


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
    return {"role": role, "content": value if isinstance(value, str) else json.dumps(value)}


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
                parts.append({"type": "text", "content": json.dumps(item, default=str)})
        return parts
    return [{"type": "text", "content": json.dumps(content, default=str)}]


def _json_or_text(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments
