"""Message shapes → the OpenAI chat format Trackio's Traces page renders.

Trackio pairs a tool span with a ``role: "tool"`` message through ``tool_call_id``, and
shows ``tool_calls`` on assistant messages, so tool calls and results are always written
in OpenAI's shape whatever convention carried them.
"""

from __future__ import annotations

from typing import Any

from trackio_otel.translate import pdata

Message = dict[str, Any]
_TEXT = pdata.json_encoder(ensure_ascii=False)
"""``json.dumps(..., ensure_ascii=False)`` without building an encoder per call."""
REDACTED = "__REDACTED__"
"""OpenInference's stand-in for content it was told not to capture."""


def arguments_text(arguments: Any) -> str:
    """OpenAI carries tool arguments as a JSON string; OTel's latest form as an object."""
    if arguments is None:
        return ""
    return arguments if isinstance(arguments, str) else _TEXT(arguments)


def content_text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    return _TEXT(value)


def tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": arguments_text(arguments)},
    }


def from_parts(messages: Any) -> list[Message]:
    """OTel GenAI ``[{role, parts: [...]}]`` → OpenAI messages.

    A ``tool_call_response`` part becomes its own ``role: "tool"`` message even inside a
    user message (Anthropic style), because that is where Trackio looks for results.
    """
    out: list[Message] = []
    if not isinstance(messages, list):
        return out
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = "assistant" if message.get("role") == "model" else message.get("role", "user")
        texts: list[str] = []
        items: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        reasoning: list[str] = []
        results: list[Message] = []
        for part in message.get("parts") or []:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text":
                text = str(part.get("content", ""))
                texts.append(text)
                items.append({"type": "text", "text": text})
            elif kind == "tool_call":
                calls.append(tool_call(part.get("id"), part.get("name"), part.get("arguments")))
            elif kind == "tool_call_response":
                results.append(
                    {
                        "role": "tool",
                        "tool_call_id": part.get("id"),
                        "content": content_text(
                            block_text(part.get("response", part.get("result")))
                        ),
                    }
                )
            elif kind == "reasoning":
                reasoning.append(str(part.get("content", "")))
            elif kind in ("blob", "uri", "file"):
                items.append(media_item(part))
            else:
                items.append({"type": "text", "text": _TEXT(part)})
        if texts or calls or reasoning or len(items) > len(texts) or not results:
            msg: Message = {"role": role, "content": _content(texts, items)}
            if calls:
                msg["tool_calls"] = calls
            if reasoning:
                msg["reasoning_content"] = "\n".join(reasoning)
            if message.get("name"):
                msg["name"] = message["name"]
            if "finish_reason" in message:
                msg["finish_reason"] = message["finish_reason"]
            out.append(msg)
        out.extend(results)
    return out


BLOCK_KINDS = frozenset(
    {"text", "toolUse", "toolResult", "json", "image", "document", "video", "reasoningContent"}
)
"""The content-block kinds of the Bedrock Converse shape (Strands' own message format)."""


def is_blocks(value: Any) -> bool:
    """A list of Bedrock-style content blocks (``[{"text": ...}, {"toolUse": {...}}]``),
    as opposed to OpenAI content items, which say their ``type``."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(
            isinstance(b, dict) and "type" not in b and not BLOCK_KINDS.isdisjoint(b) for b in value
        )
    )


def from_blocks(role: Any, blocks: list[dict[str, Any]]) -> list[Message]:
    """One Bedrock-style message → OpenAI messages, through the OTel parts it maps to
    (the mapping Strands' own ``_map_content_blocks_to_otel_parts`` uses)."""
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if "text" in block:
            parts.append({"type": "text", "content": block["text"]})
        elif "toolUse" in block:
            use = block["toolUse"] if isinstance(block["toolUse"], dict) else {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": use.get("toolUseId"),
                    "name": use.get("name"),
                    "arguments": use.get("input"),
                }
            )
        elif "toolResult" in block:
            result = block["toolResult"] if isinstance(block["toolResult"], dict) else {}
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": result.get("toolUseId"),
                    "response": result.get("content"),
                }
            )
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"]
            text = (
                (reasoning.get("reasoningText") or {}).get("text")
                if isinstance(reasoning, dict)
                else None
            )
            parts.append({"type": "reasoning", "content": text or ""})
        else:
            parts.append({"type": next(iter(block)), "content": next(iter(block.values()))})
    return from_parts([{"role": role, "parts": parts}])


def block_text(value: Any) -> Any:
    """A tool result given as content blocks (``[{"text": ...}, {"json": {...}}]``) → its
    text, as an OpenAI tool message carries it; anything else unchanged."""
    if not is_blocks(value) or not all(b.keys() <= {"text", "json"} for b in value):
        return value
    return "\n".join(str(b["text"]) if "text" in b else _TEXT(b["json"]) for b in value)


def media_item(part: dict[str, Any]) -> dict[str, Any]:
    """A blob/uri/file part as an OpenAI content item (images render inline in Trackio)."""
    mime = part.get("mime_type") or ""
    if part.get("type") == "blob":
        url = f"data:{mime or 'application/octet-stream'};base64,{part.get('content', '')}"
    elif part.get("type") == "uri":
        url = str(part.get("uri", ""))
    else:
        return {"type": "text", "text": f"[file:{part.get('file_id', '')}]"}
    if part.get("modality") == "image" or mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": url}}
    return {"type": "text", "text": f"[{part.get('modality', 'media')}: {url[:200]}]"}


def _content(texts: list[str], items: list[dict[str, Any]]) -> Any:
    if len(items) > len(texts):  # some non-text part: keep the list form
        return items
    return "\n".join(texts) if texts else None


def system_message(instructions: Any) -> Message | None:
    """``gen_ai.system_instructions`` (a list of parts) → one system message."""
    if isinstance(instructions, str):
        return {"role": "system", "content": instructions}
    if isinstance(instructions, list):
        parts = [p.get("content", "") for p in instructions if isinstance(p, dict)]
        return {"role": "system", "content": "\n".join(str(p) for p in parts)}
    return None


def from_openai(messages: Any) -> list[Message]:
    """An OpenAI-style message list (semconv ≤1.27 ``gen_ai.prompt``), tidied."""
    if isinstance(messages, dict):
        messages = [messages]
    return [dict(m) for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def from_responses(value: Any) -> list[Message]:
    """Responses API objects (``{"object": "response", "output": [items]}``, one or a list)
    → one assistant message per response: its ``output_text``, function calls, reasoning."""
    responses = value if isinstance(value, list) else [value]
    out: list[Message] = []
    for response in responses:
        if not isinstance(response, dict) or response.get("object") != "response":
            continue
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        reasoning: list[str] = []
        for item in response.get("output") or []:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "message":
                texts += [
                    str(c.get("text", ""))
                    for c in item.get("content") or []
                    if isinstance(c, dict) and c.get("type") == "output_text"
                ]
            elif kind == "function_call":
                calls.append(
                    tool_call(item.get("call_id"), item.get("name"), item.get("arguments"))
                )
            elif kind == "reasoning":
                reasoning += [
                    str(s.get("text", "")) for s in item.get("summary") or [] if isinstance(s, dict)
                ]
        msg: Message = {"role": "assistant", "content": "\n".join(texts) if texts else None}
        if calls:
            msg["tool_calls"] = calls
        if reasoning:
            msg["reasoning_content"] = "\n".join(reasoning)
        out.append(msg)
    return out


_KEY_JSON = pdata.json_encoder(sort_keys=True, ensure_ascii=False, default=str)


def key(message: Message) -> tuple[str | None, str]:
    """Identity of a message for de-duplicating histories across generations.

    Text content is compared as the string itself and the other fields as JSON: encoding
    long text only to compare it was the largest cost of joining a conversation."""
    content = message.get("content")
    text = content if isinstance(content, str) else None
    rest = [
        message.get("role"),
        None if text is not None else content,
        message.get("tool_call_id"),
        message.get("tool_calls"),
    ]
    return text, _KEY_JSON(rest)


def captured(value: Any) -> Any:
    """``None`` for content an instrumentation withheld (OpenInference's ``__REDACTED__``)."""
    return None if value == REDACTED else value


def unflatten(attrs: dict[str, Any], prefix: str) -> list[Any]:
    """Flattened ``<prefix>{i}.a.{j}.b`` attributes → a list of nested dicts/lists, by index.

    OpenInference and OpenLLMetry ≤0.54 spread each message over many attributes,
    because span attributes cannot hold nested values.
    """
    root: dict[Any, Any] = {}
    for name, value in attrs.items():
        if not name.startswith(prefix):
            continue
        path = [int(p) if p.isdigit() else p for p in name[len(prefix) :].split(".")]
        if not isinstance(path[0], int):
            continue
        node = root
        for step in path[:-1]:
            child = node.get(step)
            if not isinstance(child, dict):
                child = node[step] = {}
            node = child
        node[path[-1]] = value
    listed = _as_lists(root)
    return listed if isinstance(listed, list) else []


def _as_lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(isinstance(k, int) for k in node):
        return [_as_lists(node[k]) for k in sorted(node)]
    return {k: _as_lists(v) for k, v in node.items()}


def with_content(role: Any, items: list[dict[str, Any]]) -> Message:
    """A message from OpenAI content items: plain text when every item is text."""
    texts = [i["text"] for i in items if i.get("type") == "text"]
    return {"role": role, "content": _content(texts, items)}


def image_item(url: Any) -> dict[str, Any]:
    """An image reference (http(s) or ``data:`` URL); a withheld one says so."""
    if not url or url == REDACTED:
        return {"type": "text", "text": "[image not captured]"}
    return {"type": "image_url", "image_url": {"url": str(url)}}
