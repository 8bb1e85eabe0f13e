"""A stand-in for the OpenAI HTTP API on 127.0.0.1, so the real ``openai`` client and the real
instrumentations run end to end without a network.

Behaviour (deterministic, keyed on the request): model ``boom`` (or a ``FAIL_HEADER``
header) → HTTP 500; a last message from a tool (or smolagents' ``Observation:`` turn) → the
final answer, as a ``final_answer`` tool call when that tool is offered (smolagents'
``ToolCallingAgent``); tools offered → a ``get_weather`` tool call; an image in the prompt →
a description; ``stream: true`` → the same answer (text or tool call) as server-sent events.
``/responses`` answers the same turns in the Responses API's shape (not streamed).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "gpt-4o-mini-2024-07-18"
CALL_ID = "call_VSPygqKTWdrhaFErNvMV18Yl"
FINAL_CALL_ID = "call_final_answer_1"
FAIL_HEADER = "x-stub-fail"
"""Any value → HTTP 500, for clients that refuse a model name they do not know (LlamaIndex)."""
FINAL_ANSWER = "It is rainy and 57°F in Paris."
IMAGE_ANSWER = "A single red pixel."


def reply(request: dict[str, Any]) -> tuple[dict[str, Any], str, dict[str, int]]:
    """(assistant message, finish reason, usage) for a chat request."""
    messages = request.get("messages") or []
    last = messages[-1] if messages else {}
    has_image = any(
        isinstance(m.get("content"), list)
        and any(isinstance(p, dict) and p.get("type") == "image_url" for p in m["content"])
        for m in messages
    )
    if last.get("role") == "tool" or "Observation:" in _text(last):  # smolagents' result turn
        if any(_tool_name(t) == "final_answer" for t in request.get("tools") or []):
            call = {
                "id": FINAL_CALL_ID,
                "type": "function",
                "function": {
                    "name": "final_answer",
                    "arguments": json.dumps({"answer": FINAL_ANSWER}),
                },
            }
            return (
                {"role": "assistant", "content": None, "tool_calls": [call]},
                "tool_calls",
                _usage(58, 12),
            )
        return {"role": "assistant", "content": FINAL_ANSWER}, "stop", _usage(58, 12)
    if request.get("tools"):
        call = {
            "id": CALL_ID,
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'},
        }
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return message, "tool_calls", _usage(41, 17)
    text = IMAGE_ANSWER if has_image else FINAL_ANSWER
    return {"role": "assistant", "content": text}, "stop", _usage(30, 8)


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def _tool_name(tool: dict[str, Any]) -> str | None:
    return (tool.get("function") or {}).get("name") or tool.get("name")


def response(request: dict[str, Any]) -> dict[str, Any]:
    """A Responses API answer (``POST /responses``): the same turns as ``reply``, with the
    input items read as chat messages (a ``function_call_output`` is the tool's result)."""
    items = request.get("input")
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items or []
    last = items[-1] if items else {}
    chat = {
        "messages": [{"role": "tool"} if last.get("type") == "function_call_output" else last],
        "tools": request.get("tools"),
    }
    message, _, usage = reply(chat)
    if message.get("tool_calls"):
        call = message["tool_calls"][0]
        output = [
            {
                "type": "function_call",
                "id": "fc_stub123",
                "call_id": call["id"],
                "name": call["function"]["name"],
                "arguments": call["function"]["arguments"],
                "status": "completed",
            }
        ]
    else:
        text = {"type": "output_text", "text": message["content"], "annotations": []}
        output = [
            {
                "type": "message",
                "id": "msg_stub123",
                "role": "assistant",
                "status": "completed",
                "content": [text],
            }
        ]
    return {
        "id": "resp_stub123",
        "object": "response",
        "created_at": 1700000000,
        "model": MODEL,
        "instructions": request.get("instructions"),  # echoed, as the real API does
        "status": "completed",
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": request.get("tools") or [],
        "usage": {
            "input_tokens": usage["prompt_tokens"],
            "output_tokens": usage["completion_tokens"],
            "total_tokens": usage["total_tokens"],
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.path.endswith("/embeddings"):
            self._json(
                200,
                {
                    "object": "list",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
                    "model": body.get("model"),
                    "usage": {"prompt_tokens": 5, "total_tokens": 5},
                },
            )
        elif not self.path.endswith(("/chat/completions", "/responses")):
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
        elif body.get("model") == "boom" or self.headers.get(FAIL_HEADER):
            self._json(500, {"error": {"message": "stub internal error", "type": "server_error"}})
        elif self.path.endswith("/responses"):
            self._json(200, response(body))
        elif body.get("stream"):
            self._stream(body)
        else:
            message, finish, usage = reply(body)
            self._json(
                200,
                {
                    **_envelope("chat.completion"),
                    "choices": [
                        {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
                    ],
                    "usage": usage,
                },
            )

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any]) -> None:
        message, finish, usage = reply(body)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        if message.get("content"):
            words = message["content"].split(" ")
            deltas += [{"content": w if i == 0 else " " + w} for i, w in enumerate(words)]
        for i, call in enumerate(message.get("tool_calls") or []):  # the name, then the arguments
            head = {**call, "function": {"name": call["function"]["name"], "arguments": ""}}
            deltas.append({"tool_calls": [{"index": i, **head}]})
            args = call["function"]["arguments"]
            deltas.append({"tool_calls": [{"index": i, "function": {"arguments": args}}]})
        for delta in deltas:
            self._event({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({"choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")

    def _event(self, chunk: dict[str, Any]) -> None:
        payload = {**_envelope("chat.completion.chunk"), **chunk}
        self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
        self.wfile.flush()


def _envelope(obj: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub123",
        "object": obj,
        "created": 1700000000,
        "model": MODEL,
        "system_fingerprint": "fp_stub",
        "service_tier": "default",
    }


@contextmanager
def serve() -> Iterator[str]:
    """Run the stub on an ephemeral loopback port; yields the ``base_url`` for the client."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
