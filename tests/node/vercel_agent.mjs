// The Vercel AI SDK's weather agent, the way its docs set up telemetry: a registered Node
// tracer provider (exporting OTLP/gRPC or OTLP/HTTP protobuf to the collector) and
// `experimental_telemetry: {isEnabled: true}` on each call. Run by tests/test_frameworks.py:
//   node vercel_agent.mjs <base_url> <otlp_url> <project> <grpc|http>
// Three scenarios, each under its own root span `scenario <name>`: agent (question → tool
// call → tool result → answer), stream (the same with streamText), error (the model
// answers HTTP 500).
import { createOpenAI } from "@ai-sdk/openai";
import { trace } from "@opentelemetry/api";
import { OTLPTraceExporter as GrpcExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { OTLPTraceExporter as HttpExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node";
import { generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";

const [baseURL, otlpUrl, project, protocol] = process.argv.slice(2);
const exporter =
  protocol === "http"
    ? new HttpExporter({ url: `${otlpUrl}/v1/traces` })
    : new GrpcExporter({ url: otlpUrl });
const provider = new NodeTracerProvider({
  resource: resourceFromAttributes({ "service.name": "agent-vercel-ai", "trackio.project": project }),
  spanProcessors: [new SimpleSpanProcessor(exporter)],
});
provider.register();
const tracer = trace.getTracer("framework-agents");
const openai = createOpenAI({ baseURL, apiKey: "sk-stub" });

const getWeather = tool({
  description: "Get the weather for a city",
  inputSchema: z.object({ location: z.string() }),
  execute: async ({ location }) => ({ location, conditions: "rainy", temp_f: 57 }),
});
const call = (model) => ({
  model: openai.chat(model),
  system: "You are a weather bot.",
  prompt: "What's the weather in Paris?",
  tools: { get_weather: getWeather },
  stopWhen: stepCountIs(5),
  maxRetries: 0,
  experimental_telemetry: { isEnabled: true },
});
const scenario = (name, fn) => tracer.startActiveSpan(`scenario ${name}`, async (span) => {
  try {
    await fn();
  } finally {
    span.end();
  }
});

await scenario("agent", () => generateText(call("gpt-4o-mini")));
await scenario("stream", async () => {
  const result = streamText(call("gpt-4o-mini"));
  await result.consumeStream();
  await result.text;
});
await scenario("error", async () => {
  try {
    await generateText(call("boom"));
  } catch (err) {
    if (!String(err).includes("stub internal error")) throw err;
    return;
  }
  throw new Error("the stub's 500 did not raise");
});
await provider.shutdown();
