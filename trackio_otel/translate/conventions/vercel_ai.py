"""The Vercel AI SDK's own ``ai.*`` convention (``experimental_telemetry: {isEnabled: true}``).

Every span says what it is in ``ai.operationId``: ``ai.generateText`` / ``ai.streamText``
wrap a whole multi-step call, each ``….doGenerate`` / ``….doStream`` child is one model
call (it also carries ``gen_ai.system``, models and ``gen_ai.usage.*``, but no
``gen_ai.operation.name``), and ``ai.toolCall`` runs a tool. Content is the SDK's own:
``ai.prompt.messages`` (its language-model prompt: ``text`` / ``tool-call`` /
``tool-result`` parts), ``ai.response.text`` and ``ai.response.toolCalls``. Names read
from ``ai`` 6.0's ``dist/index.mjs``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trackio_otel import semconv
from trackio_otel.translate import pdata
from trackio_otel.translate.conventions import genai, usage
from trackio_otel.translate.conventions import messages as msgs
from trackio_otel.translate.model import Log, Span

if TYPE_CHECKING:
    from trackio_otel.translate.conventions import SpanView

NAME = "vercel_ai"
OPERATION = "ai.operationId"
MODEL_CALLS = frozenset(
    {
        "ai.generateText.doGenerate",
        "ai.streamText.doStream",
        "ai.generateObject.doGenerate",
        "ai.streamObject.doStream",
    }
)
TOOL_CALL = "ai.toolCall"
USAGE = usage.Names(
    input_tokens=("ai.usage.inputTokens", "ai.usage.promptTokens", "gen_ai.usage.input_tokens"),
    output_tokens=(
        "ai.usage.outputTokens",
        "ai.usage.completionTokens",
        "gen_ai.usage.output_tokens",
    ),
    total_tokens=("ai.usage.totalTokens",),
    details={
        "cache_read_input_tokens": (
            "ai.usage.inputTokenDetails.cacheReadTokens",
            "ai.usage.cachedInputTokens",
        ),
        "cache_creation_input_tokens": ("ai.usage.inputTokenDetails.cacheWriteTokens",),
        "reasoning_tokens": (
            "ai.usage.outputTokenDetails.reasoningTokens",
            "ai.usage.reasoningTokens",
        ),
    },
)
"""``ai.usage.*`` (6.0; ``promptTokens`` / ``completionTokens`` before 5.0) → Trackio's keys.
The outer ``ai.generateText`` repeats its steps' sum: an aggregate, never counted."""
_CONTENT = ("ai.prompt", "ai.prompt.messages", "ai.response.text", "ai.response.toolCalls")


def detect(attrs: dict[str, Any]) -> bool:
    return OPERATION in attrs


def fill(v: SpanView, span: Span, logs: list[Log]) -> None:
    a = span.attributes
    op = pdata.text(a.get(OPERATION))
    v.kind = "generation" if op in MODEL_CALLS else "tool" if op == TOOL_CALL else "span"
    v.model = (
        a.get(semconv.GEN_AI_RESPONSE_MODEL)
        or a.get("ai.response.model")
        or a.get(semconv.GEN_AI_REQUEST_MODEL)
        or a.get("ai.model.id")
    )
    v.metadata = genai.metadata(span)
    for name, value in a.items():
        if name.startswith(("ai.", "operation.", "resource.")) and name not in _CONTENT:
            v.metadata[name] = value
    usage.record(v, a, USAGE, counted=v.kind == "generation")

    if v.kind == "tool":
        v.tool_call_id = a.get("ai.toolCall.id")
        v.input = pdata.parse_json(a.get("ai.toolCall.args"))
        v.output = pdata.parse_json(a.get("ai.toolCall.result"))
        return
    if v.kind != "generation":  # the whole call: its prompt and final text
        v.input = pdata.parse_json(a.get("ai.prompt"))
        v.output = a.get("ai.response.text")
        return
    history = prompt_messages(pdata.parse_json(a.get("ai.prompt.messages")))
    answer = response_message(a)
    v.messages_in, v.message_out = history, answer
    v.input = history or None
    v.output = answer or {"finish_reasons": a.get(semconv.GEN_AI_RESPONSE_FINISH_REASONS, [])}


def prompt_messages(prompt: Any) -> list[msgs.Message]:
    """The SDK's prompt (``[{role, content: str | [parts]}]``) → OpenAI messages, through
    the OTel parts each of its part types maps to."""
    if not isinstance(prompt, list):
        return []
    out: list[msgs.Message] = []
    for message in prompt:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            out.append({"role": message.get("role", "user"), "content": content})
            continue
        parts = [_part(p) for p in content or [] if isinstance(p, dict)]
        out += msgs.from_parts([{"role": message.get("role", "user"), "parts": parts}])
    return out


def _part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text":
        return {"type": "text", "content": part.get("text", "")}
    if kind == "reasoning":
        return {"type": "reasoning", "content": part.get("text", "")}
    if kind == "tool-call":
        return {
            "type": "tool_call",
            "id": part.get("toolCallId"),
            "name": part.get("toolName"),
            "arguments": part.get("input", part.get("args")),
        }
    if kind == "tool-result":
        output = part.get("output", part.get("result"))
        if isinstance(output, dict) and "value" in output:  # {type: "json" | "text", value}
            output = output["value"]
        return {"type": "tool_call_response", "id": part.get("toolCallId"), "response": output}
    if kind in ("image", "file"):
        data = part.get("image", part.get("data"))
        mime = part.get("mediaType") or part.get("mimeType") or ""
        if isinstance(data, str) and data.startswith(("http://", "https://", "data:")):
            return {"type": "uri", "uri": data, "mime_type": mime}
        return {"type": "blob", "content": data if isinstance(data, str) else "", "mime_type": mime}
    return {"type": str(kind), "content": part}


def response_message(a: dict[str, Any]) -> msgs.Message | None:
    """``ai.response.text`` / ``.reasoning`` / ``.toolCalls`` → the assistant's answer."""
    text, calls = a.get("ai.response.text"), pdata.parse_json(a.get("ai.response.toolCalls"))
    tool_calls = [
        msgs.tool_call(c.get("toolCallId"), c.get("toolName"), c.get("input", c.get("args")))
        for c in (calls if isinstance(calls, list) else [])
        if isinstance(c, dict)
    ]
    if not text and not tool_calls:
        return None
    out: msgs.Message = {"role": "assistant", "content": text or None}
    if tool_calls:
        out["tool_calls"] = tool_calls
    if a.get("ai.response.reasoning"):
        out["reasoning_content"] = a["ai.response.reasoning"]
    if a.get("ai.response.finishReason"):
        out["finish_reason"] = a["ai.response.finishReason"]
    return out
