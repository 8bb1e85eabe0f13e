"""OpenInference (Arize Phoenix): ``openinference.span.kind`` plus flattened ``llm.*`` keys.

Messages are spread over ``llm.{input,output}_messages.{i}.message.*`` attributes; tool
spans carry the call id in ``tool.id`` and their arguments/result in ``input.value`` /
``output.value``. A span may also carry OTel ``gen_ai.*`` attributes (dual emission);
the OpenInference keys win because there ``gen_ai.request.model`` holds the response model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trackio_otel.translate import pdata
from trackio_otel.translate.conventions import genai, smolagents, usage
from trackio_otel.translate.conventions import messages as msgs
from trackio_otel.translate.model import Log, Span

if TYPE_CHECKING:
    from trackio_otel.translate.conventions import SpanView

NAME = "openinference"
KIND = "openinference.span.kind"
USAGE_KINDS = frozenset({"LLM", "EMBEDDING", "DECISION"})
USAGE = usage.Names(
    input_tokens=("llm.token_count.prompt",),
    output_tokens=("llm.token_count.completion",),
    total_tokens=("llm.token_count.total",),
    details={
        "cache_read_input_tokens": ("llm.token_count.prompt_details.cache_read",),
        "cache_creation_input_tokens": ("llm.token_count.prompt_details.cache_write",),
        "reasoning_tokens": ("llm.token_count.completion_details.reasoning",),
    },
    cost="llm.cost.total",
)
"""``llm.token_count.*`` → Trackio's usage keys."""
METADATA_KEYS = (
    KIND,
    "llm.provider",
    "llm.system",
    "llm.invocation_parameters",
    "llm.finish_reason",
    "llm.request.model_name",
    "embedding.model_name",
    "session.id",
    "user.id",
    "agent.name",
    "metadata",
    "tag.tags",
    "tool.name",
    "tool.description",
    "tool.id",
    "llm.prompt_template.template",
    "llm.prompt_template.variables",
    "llm.prompt_template.version",
    "graph.node.id",
    "graph.node.name",
    "graph.node.parent_id",
)


def detect(attrs: dict[str, Any]) -> bool:
    return KIND in attrs


def fill(v: SpanView, span: Span, logs: list[Log]) -> None:
    a = span.attributes
    kind = str(a.get(KIND, "")).upper()
    v.kind = {"LLM": "generation", "TOOL": "tool"}.get(kind, "span")
    v.model = (
        a.get("llm.response.model_name") or a.get("llm.model_name") or a.get("embedding.model_name")
    )
    v.metadata = genai.metadata(span)
    for name in METADATA_KEYS:
        if a.get(name) is not None:
            v.metadata[name] = pdata.parse_json(a[name])
    usage.record(v, a, USAGE, counted=kind in USAGE_KINDS)

    inp = io_value(a, "input")
    out = io_value(a, "output")
    framework = smolagents if smolagents.applies(span.scope_name) else None
    if v.kind == "tool":
        v.tool_call_id = a.get("tool.id") or a.get("gen_ai.tool.call.id")
        v.name = a.get("tool.name")  # smolagents names the span after the tool's class
        if framework:
            inp = framework.tool_input(inp)
        v.input = inp if inp is not None else {"tool": a.get("tool.name")}
        v.output = out
        return
    if v.kind != "generation":
        v.input, v.output = inp, out
        return

    history = [to_openai(m) for m in msgs.unflatten(a, "llm.input_messages.") if _recorded(m)]
    outputs = [to_openai(m) for m in msgs.unflatten(a, "llm.output_messages.") if _recorded(m)]
    if not history or not outputs:  # the raw request/response fill what was not flattened
        raw_history, raw_outputs = _from_raw(inp, out)
        history, outputs = history or raw_history, outputs or raw_outputs
    if not history and not outputs:  # only the dual-emitted gen_ai.* content is left
        history, outputs = genai.content(span, logs)
    if framework:
        history, outputs = framework.history(history), [framework.answer(m) for m in outputs]
    if outputs and a.get("llm.finish_reason") and "finish_reason" not in outputs[0]:
        outputs[0]["finish_reason"] = a["llm.finish_reason"]
    v.messages_in, v.message_out = history, (outputs[0] if outputs else None)
    v.input = history or inp
    if outputs:
        v.output = outputs[0] if len(outputs) == 1 else outputs
    elif out is not None:
        v.output = out
    else:  # nothing captured: the structure still shows why the call ended
        v.output = {
            "finish_reasons": [a["llm.finish_reason"]] if a.get("llm.finish_reason") else []
        }


def io_value(a: dict[str, Any], which: str) -> Any:
    """``input.value`` / ``output.value``, decoded when its mime type says JSON."""
    value = msgs.captured(a.get(f"{which}.value"))
    if value is None:
        return None
    if a.get(f"{which}.mime_type") == "application/json":
        return pdata.parse_json(value)
    return value


def _recorded(item: Any) -> bool:
    """More than a role: LangChain's instrumentor writes ``llm.output_messages.0.message.role``
    alone for a call that failed, and that is no assistant turn (a ``__REDACTED__`` content
    is: the message was there, its text withheld)."""
    m = item.get("message") if isinstance(item, dict) else None
    return isinstance(m, dict) and not m.keys() <= {"role"}


def to_openai(item: Any) -> msgs.Message:
    """One unflattened ``{"message": {...}}`` → an OpenAI message."""
    m = item.get("message", {}) if isinstance(item, dict) else {}
    role = m.get("role", "user")
    if role == "function":
        role = "tool"
    contents = [
        c.get("message_content", {}) for c in m.get("contents") or [] if isinstance(c, dict)
    ]
    items: list[dict[str, Any]] = []
    reasoning: list[str] = []
    for c in contents:
        kind = c.get("type")
        if kind == "image":
            items.append(msgs.image_item((c.get("image") or {}).get("image", {}).get("url")))
        elif kind == "reasoning":
            reasoning.append(str(c.get("text", "")))
        elif kind == "text" or "text" in c:
            items.append({"type": "text", "text": str(msgs.captured(c.get("text")) or "")})
        else:
            items.append({"type": "text", "text": f"[{kind or 'content'}]"})
    if items:
        out = msgs.with_content(role, items)
    else:
        out = {"role": role, "content": msgs.captured(m.get("content"))}
    calls = [
        msgs.tool_call(
            t.get("tool_call", {}).get("id"),
            t.get("tool_call", {}).get("function", {}).get("name"),
            t.get("tool_call", {}).get("function", {}).get("arguments"),
        )
        for t in m.get("tool_calls") or []
        if isinstance(t, dict)
    ]
    if m.get("function_call_name"):
        calls.append(
            msgs.tool_call(None, m["function_call_name"], m.get("function_call_arguments_json"))
        )
    if calls:
        out["tool_calls"] = calls
    if reasoning:
        out["reasoning_content"] = "\n".join(reasoning)
    if m.get("tool_call_id"):
        out["tool_call_id"] = m["tool_call_id"]
    if m.get("name"):
        out["name"] = m["name"]
    return out


def _from_raw(inp: Any, out: Any) -> tuple[list[msgs.Message], list[msgs.Message]]:
    """The raw OpenAI request/response JSON, when the flattened messages are hidden: a chat
    completion, or Responses objects (openai-agents records a streamed chat-completions
    call's output only as a list of those)."""
    history = msgs.from_openai(inp.get("messages")) if isinstance(inp, dict) else []
    outputs: list[msgs.Message] = []
    if isinstance(out, dict) and isinstance(out.get("choices"), list) and out["choices"]:
        choice = out["choices"][0]
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            outputs = msgs.from_openai(choice["message"])
    else:
        outputs = msgs.from_responses(out)
    return history, outputs
