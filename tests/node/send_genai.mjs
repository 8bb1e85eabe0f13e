// An agent turn as GenAI instrumentations emit it (invoke_agent → chat → execute_tool → chat),
// exported once by the Node OTel SDK's OTLP/HTTP exporter: `proto` (HTTP/protobuf) or `json`
// (HTTP/JSON). The endpoint comes from OTEL_EXPORTER_OTLP_ENDPOINT, as in any Node app.
// Usage: node send_genai.mjs proto|json PROJECT. Exits 0 once the collector acknowledged.
import { context, trace, SpanKind } from "@opentelemetry/api";
import { OTLPTraceExporter as JsonExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtoExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";

const [protocol, project] = process.argv.slice(2);
const memory = new InMemorySpanExporter();
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({
    "service.name": "node-agent",
    "trackio.project": project,
    "trackio.run.name": `node-${protocol}`,
  }),
  spanProcessors: [new SimpleSpanProcessor(memory)],
});
const tracer = provider.getTracer("node.genai");

const user = { role: "user", parts: [{ type: "text", content: "weather in Paris?" }] };
const call = {
  role: "assistant",
  parts: [{ type: "tool_call", id: "call_1", name: "get_weather", arguments: { city: "Paris" } }],
};
const result = { role: "tool", parts: [{ type: "tool_call_response", id: "call_1", response: "rainy" }] };
const answer = { role: "assistant", parts: [{ type: "text", content: "It is rainy in Paris." }] };

function chat(parent, history, output, [input, outputTokens]) {
  const span = tracer.startSpan(
    "chat gpt-4o-mini",
    {
      kind: SpanKind.CLIENT,
      attributes: {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.input.messages": JSON.stringify(history),
        "gen_ai.output.messages": JSON.stringify([output]),
        "gen_ai.usage.input_tokens": input,
        "gen_ai.usage.output_tokens": outputTokens,
      },
    },
    parent,
  );
  span.end();
}

const root = tracer.startSpan("invoke_agent WeatherBot", {
  attributes: { "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "WeatherBot" },
});
const inRoot = trace.setSpan(context.active(), root);
chat(inRoot, [user], call, [12, 6]);
tracer
  .startSpan(
    "execute_tool get_weather",
    {
      attributes: {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": "call_1",
      },
    },
    inRoot,
  )
  .end();
chat(inRoot, [user, call, result], answer, [30, 9]);
root.end();

const exporter = protocol === "json" ? new JsonExporter() : new ProtoExporter();
const code = await new Promise((resolve) =>
  exporter.export(memory.getFinishedSpans(), (r) => {
    if (r.error) console.error(`export failed: ${r.error}`);
    resolve(r.code);
  }),
);
await exporter.shutdown();
await provider.shutdown();
process.exit(code === 0 ? 0 : 1);
