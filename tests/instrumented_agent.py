"""The program ``test_instrumentations`` runs, once per instrumentation family, in its own
process (the three OpenAI instrumentations patch the same client and must not share one).

``python -m tests.instrumented_agent <family> <base_url> <otlp_endpoint> <project>`` runs the
real ``openai`` client, instrumented by the real package, against the stub server: a
two-turn tool-calling agent, a streamed call, a failed call and an image input, each under
its own root span named ``scenario <name>``, exported over OTLP/gRPC.
"""

from __future__ import annotations

import json
import os
import sys

FAMILIES = ("openinference", "openllmetry", "openai_v2")
PNG_B64 = (  # a 1x1 PNG
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0g"
    "AAAABJRU5ErkJggg=="
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        },
    }
]


def instrument(family: str, provider: object) -> None:
    if family == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
    elif family == "openllmetry":
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor
    elif family == "openai_v2":
        os.environ["OTEL_SEMCONV_STABILITY_OPT_IN"] = "gen_ai_latest_experimental"
        os.environ["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "span_only"
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    else:
        raise SystemExit(f"unknown family {family!r}; expected one of {FAMILIES}")
    if family == "openllmetry":
        # Its default ``upload_base64_image`` (``lambda *args: ""``) is not awaitable, so any
        # data-URL image makes it drop the whole ``gen_ai.input.messages``; ``None`` keeps
        # the image inline as a ``blob`` part (0.62.4).
        OpenAIInstrumentor(upload_base64_image=None).instrument(tracer_provider=provider)
    else:
        OpenAIInstrumentor().instrument(tracer_provider=provider)


def tool_attributes(family: str, call_id: str, arguments: str, result: str) -> dict:
    """The tool span as each family's own framework integrations write it."""
    if family == "openinference":
        return {
            "openinference.span.kind": "TOOL",
            "tool.name": "get_weather",
            "tool.id": call_id,
            "input.value": arguments,
            "input.mime_type": "application/json",
            "output.value": result,
            "output.mime_type": "application/json",
        }
    return {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": call_id,
        "gen_ai.tool.call.arguments": arguments,
        "gen_ai.tool.call.result": result,
    }


def main(family: str, base_url: str, endpoint: str, project: str) -> None:
    import openai
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": f"agent-{family}", "trackio.project": project})
    )
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    )
    instrument(family, provider)
    tracer = provider.get_tracer("instrumented-agent")
    client = openai.OpenAI(base_url=base_url, api_key="sk-stub", max_retries=0)

    with tracer.start_as_current_span("scenario agent"):
        messages: list[dict] = [
            {"role": "system", "content": "You are a weather bot."},
            {"role": "user", "content": "What's the weather in Paris?"},
        ]
        first = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=TOOLS, temperature=0.2
        )
        call = first.choices[0].message.tool_calls[0]
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        result = json.dumps({"location": "Paris", "conditions": "rainy", "temp_f": 57})
        attrs = tool_attributes(family, call.id, call.function.arguments, result)
        with tracer.start_as_current_span("execute_tool get_weather", attributes=attrs):
            pass
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, tools=TOOLS, temperature=0.2
        )

    with tracer.start_as_current_span("scenario stream"):
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "stream please"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        for _ in stream:
            pass

    with tracer.start_as_current_span("scenario error"):
        try:
            client.chat.completions.create(
                model="boom", messages=[{"role": "user", "content": "fail"}]
            )
        except openai.InternalServerError:
            pass
        else:
            raise SystemExit("the stub's 500 did not raise")

    with tracer.start_as_current_span("scenario image"):
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in this image?"},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/png;base64,{PNG_B64}"},
                        },
                    ],
                }
            ],
        )
    provider.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:5])
