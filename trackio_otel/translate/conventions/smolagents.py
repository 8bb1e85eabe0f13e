"""smolagents under OpenInference (``openinference-instrumentation-smolagents``): the spans are
OpenInference's, but the messages are smolagents' own memory, which ``openinference`` maps
through this module.

smolagents replays a tool call as a ``tool-call`` message whose text is
``"Calling tools:\\n" + str([call.dict(), ...])`` (a Python repr), and its result as a
``tool-response`` message ``"Observation:\\n…"`` (``"Call id: …\\n"`` first on an error); a
``ToolCallingAgent`` answers by calling its ``final_answer`` tool. Formats read from
smolagents 1.26's ``memory.py``.
"""

from __future__ import annotations

import ast
from typing import Any

from trackio_otel.translate import pdata
from trackio_otel.translate.conventions import messages as msgs

SCOPE = "openinference.instrumentation.smolagents"
FINAL_ANSWER = "final_answer"
_CALLING = "Calling tools:\n"
_CALL_ID = "Call id: "
_OBSERVATION = "Observation:\n"
MAX_REPR = 100_000
"""Longest ``Calling tools`` text parsed; a longer one stays text."""


def applies(scope_name: str) -> bool:
    return scope_name.startswith(SCOPE)


def history(messages: list[msgs.Message]) -> list[msgs.Message]:
    """smolagents' roles → OpenAI's: ``tool-call`` → assistant ``tool_calls``,
    ``tool-response`` → ``role: "tool"`` answering the call before it."""
    out: list[msgs.Message] = []
    last_ids: list[Any] = []
    for m in messages:
        text = m.get("content") if isinstance(m.get("content"), str) else ""
        if m.get("role") == "tool-call":
            calls = _calls(text)
            if calls is None:
                out.append({**m, "role": "assistant"})
                continue
            last_ids = [c["id"] for c in calls]
            out.append(answer({"role": "assistant", "content": None, "tool_calls": calls}))
        elif m.get("role") == "tool-response":
            call_id = last_ids[0] if len(last_ids) == 1 else None
            if text.startswith(_CALL_ID):
                call_id, _, text = text[len(_CALL_ID) :].partition("\n")
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": call_id,
                    "content": text.removeprefix(_OBSERVATION),
                }
            )
        else:
            out.append(answer(m))
    return out


def answer(message: msgs.Message) -> msgs.Message:
    """A ``final_answer`` call is the agent's answer: its ``answer`` argument becomes the
    assistant's text (the FinalAnswerTool span still shows the call)."""
    calls = message.get("tool_calls") or []
    finals = [c for c in calls if (c.get("function") or {}).get("name") == FINAL_ANSWER]
    if not finals or len(finals) != len(calls):
        return message
    arguments = _parse((finals[0].get("function") or {}).get("arguments"))
    text = arguments.get("answer") if isinstance(arguments, dict) else arguments
    out = {k: v for k, v in message.items() if k != "tool_calls"}
    out["content"] = msgs.content_text(text)
    return out


def tool_input(value: Any) -> Any:
    """A tool span's ``{"args": [], "sanitize_inputs_outputs": …, "kwargs": {...}}`` → the
    keyword arguments the tool was called with (it records no mime type: JSON text)."""
    value = pdata.parse_json(value)
    if isinstance(value, dict) and not value.get("args") and isinstance(value.get("kwargs"), dict):
        return value["kwargs"]
    return value


def _calls(text: str) -> list[dict[str, Any]] | None:
    if not text.startswith(_CALLING) or len(text) > MAX_REPR:
        return None
    parsed = _parse(text[len(_CALLING) :])
    if not isinstance(parsed, list) or not all(isinstance(c, dict) for c in parsed):
        return None
    return [
        msgs.tool_call(
            c.get("id"),
            (c.get("function") or {}).get("name"),
            (c.get("function") or {}).get("arguments"),
        )
        for c in parsed
    ]


def _parse(text: Any) -> Any:
    """JSON or a Python literal (smolagents writes ``str(list_of_dicts)``); never code."""
    if not isinstance(text, str):
        return text
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
        return pdata.parse_json(text)
