"""Trace-level steps that make every family's trace read the same way, after each span has
been viewed on its own: tool spans paired with the assistant's tool calls, one generation
per model call, and no message that says nothing.

Pure functions over the trace's span views; ``translate.trace`` runs them in ``assemble``.
"""

from __future__ import annotations

from typing import Any

from trackio_otel.translate import pdata
from trackio_otel.translate.conventions import SpanView

TOOL_NAME_ATTRIBUTES = ("gen_ai.tool.name", "tool.name", "ai.toolCall.name")
CALL_ID_KEYS = ("tool_call_id", "toolUseId", "call_id")
"""Where a tool's result names the call it answers (LangChain's ``ToolMessage``, Bedrock's
``toolResult``, the Responses API's ``function_call_output``)."""
RESPONSE_ATTRIBUTES = frozenset(
    {
        "gen_ai.response.finish_reasons",
        "gen_ai.response.model",
        "gen_ai.response.id",
        "llm.finish_reason",
        "llm.response.model_name",
        "ai.response.finishReason",
    }
)
_MAX_DEPTH = 3


def settle(views: list[SpanView]) -> None:
    """Every trace-level step, in order, on the views of one trace (in start order)."""
    drop_silent(views)
    one_generation_per_call(views)
    pair_tools(views)


def one_generation_per_call(views: list[SpanView]) -> None:
    """An LLM-kind span that says nothing of its own (no usage, no answer, no error) next to
    one that does, for the same model, under the same parent or around it, is a step of
    that call, not a second one (OpenInference marks LlamaIndex's
    ``OpenAI._prepare_chat_with_tools`` as LLM): it becomes a plain span."""
    gens = [v for v in views if v.kind == "generation"]
    if len(gens) < 2:
        return
    parents = {v.span.span_id: v.span.parent_span_id for v in views}
    for v in gens:
        if _is_call(v):
            continue
        if any(
            _is_call(o)
            and (not v.model or not o.model or v.model == o.model)
            and _near(v, o, parents)
            for o in gens
        ):
            v.kind = "span"
            v.messages_in = v.message_out = None


def _is_call(v: SpanView) -> bool:
    """Evidence the span talked to the model: usage, an answer, an error, or what only a
    response carries (a call whose content was not captured still has these)."""
    return bool(
        v.usage or v.message_out or v.status == "error"
    ) or not v.span.attributes.keys().isdisjoint(RESPONSE_ATTRIBUTES)


def _near(a: SpanView, b: SpanView, parents: dict[str, str | None]) -> bool:
    """Siblings, or one inside the other."""
    if a is b:
        return False
    if a.span.parent_span_id == b.span.parent_span_id:
        return True
    return _inside(a.span.span_id, b.span.span_id, parents) or _inside(
        b.span.span_id, a.span.span_id, parents
    )


def _inside(span_id: str, ancestor: str, parents: dict[str, str | None]) -> bool:
    seen: set[str] = set()
    node = parents.get(span_id)
    while node is not None and node not in seen:  # a cycle in hostile input ends the walk
        if node == ancestor:
            return True
        seen.add(node)
        node = parents.get(node)
    return False


def drop_silent(views: list[SpanView]) -> None:
    """Never invent a message: drop the ones that say nothing (see ``says_something``), and
    read a tool call's empty text as no text, as its replay in the next call's history
    does (a streamed call accumulates ``""``; the history holds ``None``)."""
    for v in views:
        if v.messages_in:
            v.messages_in = [_tidy(m) for m in v.messages_in if says_something(m)]
        if v.message_out is not None:
            v.message_out = _tidy(v.message_out) if says_something(v.message_out) else None


def _tidy(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("content") == "" and message.get("tool_calls"):
        return {**message, "content": None}
    return message


def pair_tools(views: list[SpanView]) -> None:
    """Give every tool span the id of the tool call it ran, so Trackio pairs it with the
    ``role: "tool"`` message: its own attribute (set by its family), else the id its output
    names, else the assistant's call in this trace with its tool name and arguments, else
    the next unclaimed call of its name, in order."""
    tools = [v for v in views if v.kind == "tool"]
    if all(v.tool_call_id for v in tools):  # the common case: nothing to look up
        return
    calls = [c for c in assistant_calls(views) if c["id"]]
    known = {c["id"] for c in calls}
    for v in tools:
        if not v.tool_call_id:
            found = _id_in(v.output, 0)
            if found and (found in known or not known):  # not an id the result merely quotes
                v.tool_call_id = found
    claimed = {v.tool_call_id for v in tools if v.tool_call_id}
    open_calls = [c for c in calls if c["id"] not in claimed]
    unpaired = [v for v in tools if not v.tool_call_id]
    for v in unpaired:
        name = tool_name(v)
        match = next(
            (
                c
                for c in open_calls
                if c["name"] == name and same_arguments(c["arguments"], v.input)
            ),
            None,
        )
        if match is None:  # by order: the first call of this tool nobody has claimed
            match = next((c for c in open_calls if name is None or c["name"] == name), None)
        if match is not None:
            v.tool_call_id = match["id"]
            open_calls.remove(match)


def assistant_calls(views: list[SpanView]) -> list[dict[str, Any]]:
    """Every tool call the assistant made in this trace, once each, in the order shown."""
    seen: set[Any] = set()
    out: list[dict[str, Any]] = []
    for v in views:
        for m in [*(v.messages_in or []), *([v.message_out] if v.message_out else [])]:
            for call in m.get("tool_calls") or []:
                if not isinstance(call, dict) or call.get("id") in seen:
                    continue
                seen.add(call.get("id"))
                function = call.get("function") or {}
                out.append(
                    {
                        "id": call.get("id"),
                        "name": function.get("name"),
                        "arguments": pdata.parse_json(function.get("arguments")),
                    }
                )
    return out


def tool_name(v: SpanView) -> str | None:
    attrs = v.span.attributes
    for name in TOOL_NAME_ATTRIBUTES:
        if attrs.get(name):
            return str(attrs[name])
    return v.span.name.removeprefix("execute_tool ") or None


def same_arguments(arguments: Any, tool_input: Any) -> bool:
    """The call's arguments and what the tool span recorded as its input: equal, or the
    input is the single argument's value (LangChain records a one-argument tool that way)."""
    tool_input = pdata.parse_json(tool_input)
    if arguments == tool_input:
        return True
    return (
        isinstance(arguments, dict)
        and len(arguments) == 1
        and [*arguments.values()] == [tool_input]
    )


def _id_in(output: Any, depth: int) -> str | None:
    """A call id named in a tool's output (possibly JSON text, possibly nested)."""
    output = pdata.parse_json(output)
    if depth > _MAX_DEPTH or not isinstance(output, (dict, list)):
        return None
    if isinstance(output, dict):
        for key in CALL_ID_KEYS:
            if isinstance(output.get(key), str) and output[key]:
                return output[key]
    children = output.values() if isinstance(output, dict) else output
    for child in children:
        found = _id_in(child, depth + 1)
        if found:
            return found
    return None


def says_something(message: dict[str, Any]) -> bool:
    """A message worth showing: one with empty content and nothing else (a streamed call's
    opening delta) is none. ``None`` content stays: it is how withheld content reads."""
    return bool(
        message.get("content") not in ("", [])
        or message.get("tool_calls")
        or message.get("tool_call_id")
        or message.get("reasoning_content")
    )
