"""An agent with a calculator tool, against an OpenAI-compatible server, traced as rollouts.

    TRACKIO_DIR=/tmp/trackio python examples/agent_loop.py --project agent-demo
    trackio show --project agent-demo      # Traces: the chat, the tool call, its result

Runs against the bundled stub server (no network); ``--base-url`` points it elsewhere.
"""

from __future__ import annotations

import argparse
import ast
import json
import operator
import time
import urllib.request
from typing import Any

from stub_llm_server import serve

import trackio_otel

QUESTIONS = ["What is 17*23?", "What is 2**10?", "What is 99-42?"]
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Pow: operator.pow}


def calculator(expression: str) -> float:
    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        raise ValueError(f"unsupported expression: {expression}")

    return ev(ast.parse(expression, mode="eval").body)


def chat(base_url: str, model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base_url}/chat/completions",
        data=json.dumps({"model": model, "messages": messages}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default="agent-demo")
    parser.add_argument("--base-url")
    parser.add_argument("--model", default="stub-1")
    args = parser.parse_args()
    server = None if args.base_url else serve()
    base_url = args.base_url or f"http://127.0.0.1:{server.server_address[1]}/v1"

    with trackio_otel.init(project=args.project, config={"model": args.model}, gpu=False) as run:
        for step, question in enumerate(QUESTIONS):
            with run.rollout(step=step, environment="calculator") as r:
                r.message("system", "Use the calculator for arithmetic.")
                r.message("user", question)
                for _ in range(4):  # the agent loop: call the model until it answers
                    started = time.time()
                    response = chat(base_url, args.model, r.messages)
                    choice = response["choices"][0]
                    r.generation(
                        model=args.model,
                        output=choice["message"],
                        usage=response["usage"],
                        finish_reason=choice["finish_reason"],
                        start_time=started,
                    )
                    calls = choice["message"].get("tool_calls") or []
                    if not calls:
                        break
                    for call in calls:
                        arguments = json.loads(call["function"]["arguments"])
                        started = time.time()
                        try:
                            result, error = calculator(arguments["expression"]), None
                        except ValueError as exc:
                            result, error = None, exc
                        r.tool_call(
                            "calculator",
                            arguments,
                            call_id=call["id"],
                            result=result,
                            error=error,
                            start_time=started,
                        )
                correct = str(calculator(question.rsplit(" ", 1)[-1].rstrip("?")))
                r.reward(float(correct in (r.messages[-1].get("content") or "")))
            run.log({"agent/turns": len(r.messages)}, step=step)
    if server is not None:
        server.shutdown()
    print(f"logged {len(QUESTIONS)} rollouts to project {args.project!r}")


if __name__ == "__main__":
    main()
