"""A tiny OpenAI-compatible chat server for the examples: no network, no model.

``POST /v1/chat/completions`` answers a tool call (``calculator``) when the last message
is the user's, and the tool's result as text once the tool has answered.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        body = json.dumps(completion(request)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:  # keep example output clean
        pass


def completion(request: dict[str, Any]) -> dict[str, Any]:
    messages = request["messages"]
    last = messages[-1]
    if last["role"] == "tool":
        message = {"role": "assistant", "content": f"The answer is {last['content']}."}
        finish = "stop"
    else:
        expression = last["content"].rsplit(" ", 1)[-1].rstrip("?")
        call = {
            "id": f"call_{len(messages)}_{abs(hash(expression)) % 10_000}",
            "type": "function",
            "function": {"name": "calculator", "arguments": json.dumps({"expression": expression})},
        }
        message, finish = {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    words = sum(len(str(m.get("content") or "").split()) for m in messages)
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "model": request.get("model", "stub-1"),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": words + 10, "completion_tokens": 12, "total_tokens": words + 22},
    }


def serve() -> ThreadingHTTPServer:
    """Start on an ephemeral loopback port in a daemon thread; ``server_address`` has it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
