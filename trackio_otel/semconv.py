"""The trackio semantic convention: the names trackio-otel defines on top of OpenTelemetry's.

Standard names (``gen_ai.*``, ``hw.*``, ``process.*``, ``system.*``) are used as they are;
this module only adds what they lack: which Trackio project and run data belongs to, the
training step, RL rollouts and training-step phases. ``docs/semconv.md`` is the registry
with types, units and examples; keep the two in step.
"""

from typing import Final

# --- Resource attributes: where the data goes -------------------------------------------
PROJECT: Final = "trackio.project"
"""Trackio project (the ``<project>.db`` file). Falls back to ``service.name``."""
RUN_NAME: Final = "trackio.run.name"
RUN_ID: Final = "trackio.run.id"
RUN_GROUP: Final = "trackio.run.group"
RUN_CONFIG: Final = "trackio.run.config"
"""A JSON object string with the run's config; ``trackio.run.config.<key>`` adds single keys."""
RUN_CONFIG_PREFIX: Final = "trackio.run.config."

# --- Span attributes ----------------------------------------------------------------------
STEP: Final = "trackio.step"
"""Training step a span (and so its trace) belongs to; also on ``trackio.log`` events."""
MAX_STEP: Final = 2**53 - 1
"""The largest step magnitude accepted (``translate.steps``): what JavaScript, and so
Trackio's UI, reads exactly, and far enough below SQLite's 2^63-1 that numbering step-less
traces after the highest step never overflows."""
TRACE_KEY: Final = "trackio.trace.key"
"""The key a trace is shown under in Trackio ("Logged as")."""

ROLLOUT_ID: Final = "trackio.rollout.id"
ROLLOUT_GROUP_ID: Final = "trackio.rollout.group_id"
"""Rollouts sampled for the same prompt (a GRPO group) share this id."""
ROLLOUT_INDEX: Final = "trackio.rollout.index"
ROLLOUT_REWARD: Final = "trackio.rollout.reward"
ROLLOUT_REWARD_PREFIX: Final = "trackio.rollout.reward."
"""``trackio.rollout.reward.<name>``: one named reward component."""
ROLLOUT_ADVANTAGE: Final = "trackio.rollout.advantage"
ROLLOUT_POLICY_VERSION: Final = "trackio.rollout.policy_version"
ROLLOUT_ENVIRONMENT: Final = "trackio.rollout.environment"

TRAIN_PHASE: Final = "trackio.train.phase"
"""On a child span of a training step: which phase it times (see ``PHASES``)."""
PHASES: Final = ("data_wait", "forward", "backward", "optimizer")

# Span names the SDK uses. The collector keys on attributes, except that a trace made only
# of a SPAN_TRAIN_STEP span and its phases is not shown as a Trackio trace (its timing is
# already step metrics; the spans stay in otel_spans).
SPAN_ROLLOUT: Final = "trackio.rollout"
SPAN_TRAIN_STEP: Final = "trackio.train.step"

# --- Log events ---------------------------------------------------------------------------
EVENT_LOG: Final = "trackio.log"
"""A ``run.log({...}, step=n)`` call: body is a map of scalar name → number, ``trackio.step``
attribute holds the step. It becomes one Trackio ``metrics`` row."""

# --- Metrics (names the standard lacks) ----------------------------------------------------
GPU_SM_CLOCK: Final = "trackio.gpu.clock.sm"
GPU_MEMORY_CLOCK: Final = "trackio.gpu.clock.memory"
GPU_PROCESS_MEMORY: Final = "trackio.gpu.process.memory.usage"
GPU_MEMORY_BUSY: Final = "trackio.gpu.memory.busy"
"""Fraction of time device memory was read or written (NVML ``utilization.memory``)."""
GPU_POWER_LIMIT: Final = "trackio.gpu.power.limit"
GPU_INDEX: Final = "trackio.gpu.index"
"""On GPU metric points beside ``hw.id`` (the UUID): the index Trackio's ``gpu/<i>/`` keys use."""

# --- Standard names this project relies on --------------------------------------------------
SERVICE_NAME: Final = "service.name"
SERVICE_INSTANCE_ID: Final = "service.instance.id"
HOST_NAME: Final = "host.name"
PROCESS_PID: Final = "process.pid"

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_SYSTEM: Final = "gen_ai.system"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_COST: Final = "gen_ai.usage.cost"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
ERROR_TYPE: Final = "error.type"

EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"
"""Since semconv 1.37: one log record per call with the messages as structured attributes."""
LEGACY_MESSAGE_EVENTS: Final = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
"""Semconv 1.28–1.36: one log record per input message; ``gen_ai.choice`` holds the output."""
EVENT_CHOICE: Final = "gen_ai.choice"
