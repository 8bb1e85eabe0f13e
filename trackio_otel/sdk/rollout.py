"""A rollout: one episode of an agent or policy, as one trace with its conversation.

The rollout span is the root of its own trace (a Trackio trace is one rollout), linked to
whatever span was current. Generations and tool calls are child spans in the GenAI
convention, so the collector shows the chat, pairs tool spans with tool calls, and puts
``trackio.rollout.*`` (rewards, group, index) into the trace's metadata at its step.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link

from trackio_otel import semconv
from trackio_otel.sdk import genai
from trackio_otel.sdk.failopen import SELF, fail_open
from trackio_otel.sdk.spans import leave, record_error

if TYPE_CHECKING:
    from trackio_otel.sdk.run import Run

DEFAULT_KEY = "rollout"


class Rollout:
    """``with run.rollout(...) as r:`` — record messages, generations, tool calls, rewards."""

    def __init__(
        self,
        run: Run,
        *,
        step: int | None = None,
        group: str | int | None = None,
        index: int | None = None,
        environment: str | None = None,
        policy_version: str | int | None = None,
        rollout_id: str | None = None,
        key: str | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self._run = run
        self.step = run.current_step() if step is None else int(step)
        self.messages: list[genai.Message] = []
        self._generations = 0
        self._span: trace.Span = trace.INVALID_SPAN
        self._token: object | None = None
        attrs: dict[str, Any] = {
            **run.span_attributes(),
            semconv.STEP: self.step,
            semconv.TRACE_KEY: key
            or (f"{DEFAULT_KEY}/{environment}" if environment else DEFAULT_KEY),
        }
        for name, value in (
            (semconv.ROLLOUT_GROUP_ID, group),
            (semconv.ROLLOUT_INDEX, index),
            (semconv.ROLLOUT_ENVIRONMENT, environment),
            (semconv.ROLLOUT_POLICY_VERSION, policy_version),
            (semconv.ROLLOUT_ID, rollout_id),
        ):
            if value is not None:
                attrs[name] = value if isinstance(value, (int, float)) else str(value)
        attrs.update(attributes or {})
        self._attributes = attrs

    @fail_open(SELF)
    def __enter__(self) -> Rollout:
        parent = trace.get_current_span().get_span_context()
        links = [Link(parent)] if parent.is_valid else None
        self._span = self._run.tracer().start_span(
            semconv.SPAN_ROLLOUT,
            context=otel_context.Context(),  # a new trace: one rollout, one Trackio trace
            attributes=self._attributes,
            links=links,
        )
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._close(exc)

    @fail_open()
    def _close(self, exc: BaseException | None) -> None:
        leave(self._span, self._token, exc)
        self._token = None
        if not self._generations and self.messages:  # the chat lives on the rollout itself
            self._span.set_attribute(
                semconv.GEN_AI_INPUT_MESSAGES, genai.dumps_messages(self.messages)
            )
        self._span.end()

    @fail_open()
    def message(self, role: str, content: Any, **fields: Any) -> None:
        """Append a message (OpenAI shape) to the conversation the next generation sees."""
        self.messages.append({"role": role, "content": content, **fields})

    @fail_open()
    def generation(
        self,
        model: str,
        input: list[genai.Message] | None = None,
        output: Any = None,
        *,
        usage: dict[str, int] | None = None,
        finish_reason: str | None = None,
        cost_usd: float | None = None,
        provider: str | None = None,
        response_model: str | None = None,
        start_time: float | None = None,
        end_time: float | None = None,
    ) -> None:
        """One model call (``chat`` span). ``input`` defaults to the conversation so far;
        ``output`` (text or an OpenAI message) is appended to it. Times are ``time.time()``."""
        history = list(self.messages) if input is None else [genai.as_message(m) for m in input]
        answer = None if output is None else genai.as_message(output)
        attrs = {
            **self._run.span_attributes(),
            **genai.generation_attributes(
                model,
                history,
                answer,
                usage=usage,
                finish_reason=finish_reason,
                cost_usd=cost_usd,
                provider=provider,
                response_model=response_model,
            ),
        }
        self._child(f"chat {model}", attrs, start_time, end_time, error=None)
        self._generations += 1
        if input is not None:
            self.messages = history
        if answer is not None:
            self.messages.append(answer)

    @fail_open()
    def tool_call(
        self,
        name: str,
        arguments: Any = None,
        *,
        call_id: str | None = None,
        result: Any = None,
        error: BaseException | str | None = None,
        start_time: float | None = None,
        end_time: float | None = None,
    ) -> None:
        """One tool execution (``execute_tool`` span). Without ``call_id`` it answers the
        latest unanswered call of ``name``; its result joins the conversation."""
        call_id = call_id or self._pending_call(name)
        result_text = genai.to_json(result)  # serialised once: the span and the chat
        attrs = {
            **self._run.span_attributes(),
            **genai.tool_attributes(
                name, call_id, arguments, None if result is None else result_text
            ),
        }
        self._child(f"execute_tool {name}", attrs, start_time, end_time, error=error)
        content = result_text if error is None else f"error: {error}"
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})

    @fail_open()
    def reward(self, value: float | None = None, **components: float) -> None:
        """The rollout's reward and named components (``trackio.rollout.reward.<name>``)."""
        if value is not None:
            self._span.set_attribute(semconv.ROLLOUT_REWARD, float(value))
        for name, component in components.items():
            self._span.set_attribute(semconv.ROLLOUT_REWARD_PREFIX + name, float(component))

    @fail_open()
    def advantage(self, value: float) -> None:
        self._span.set_attribute(semconv.ROLLOUT_ADVANTAGE, float(value))

    def _child(
        self,
        name: str,
        attrs: dict[str, Any],
        start_time: float | None,
        end_time: float | None,
        error: BaseException | str | None,
    ) -> None:
        now = time.time_ns()
        start = int(start_time * 1e9) if start_time is not None else now
        end = int(end_time * 1e9) if end_time is not None else max(now, start)
        ctx = trace.set_span_in_context(self._span)
        span = self._run.tracer().start_span(
            name, context=ctx, attributes=attrs, start_time=start, kind=trace.SpanKind.CLIENT
        )
        if error is not None:
            record_error(span, error)
        span.end(end_time=end)

    def _pending_call(self, name: str) -> str | None:
        answered = {m.get("tool_call_id") for m in self.messages if m.get("role") == "tool"}
        for message in reversed(self.messages):
            for call in message.get("tool_calls") or []:
                fn = call.get("function") or {}
                if fn.get("name", call.get("name")) == name and call.get("id") not in answered:
                    return call.get("id")
        return None
