"""An app that only uses the OpenTelemetry API: no trackio_otel import at all.

    trackio-otel run --project myproj -- python examples/autoinstrument_app.py

Auto-instrumentation builds the providers (trackio-otel is an OpenTelemetry distro); the
``trackio`` exporters (entry points of this package) write into the Trackio directory,
no collector needed.
"""

from __future__ import annotations

import json
import logging

from opentelemetry import metrics, trace

tracer = trace.get_tracer("autoinstrument-demo")
requests = metrics.get_meter("autoinstrument-demo").create_counter("app.requests")


def handle(question: str) -> str:
    with tracer.start_as_current_span("handle_request") as span:
        span.set_attribute("app.question", question)
        with tracer.start_as_current_span("chat demo-model") as chat:
            answer = f"You asked: {question}"
            chat.set_attributes(
                {
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "demo-model",
                    "gen_ai.usage.input_tokens": 7,
                    "gen_ai.usage.output_tokens": 5,
                    "gen_ai.input.messages": json.dumps(
                        [{"role": "user", "parts": [{"type": "text", "content": question}]}]
                    ),
                    "gen_ai.output.messages": json.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [{"type": "text", "content": answer}],
                                "finish_reason": "stop",
                            }
                        ]
                    ),
                }
            )
        requests.add(1)
        logging.getLogger("demo").warning("answered %r", question)
        return answer


if __name__ == "__main__":
    for q in ("hello?", "what is OTel?"):
        print(handle(q))
