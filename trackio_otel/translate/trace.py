"""All spans of one OTel trace (+ their log events) → one Trackio ``traces`` row.

Pure: the store calls it with every span it holds for the trace, whenever one more
arrives, and upserts the result under the trace id. So spans may come in any order and
any number of requests; the row converges to the same value.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any

from trackio_otel import semconv
from trackio_otel.translate import pdata, steps
from trackio_otel.translate.conventions import SpanView, media, pairing, view
from trackio_otel.translate.conventions import messages as msgs
from trackio_otel.translate.model import Log, Run, Span

SESSION_ATTRIBUTES = (
    "gen_ai.conversation.id",
    "session.id",
    "traceloop.association.properties.session_id",
    "langfuse.session.id",
)
USER_ATTRIBUTES = ("user.id", "enduser.id", "traceloop.association.properties.user_id")
ROLLOUT_SCALARS = {
    semconv.ROLLOUT_REWARD: "rollout/reward",
    semconv.ROLLOUT_ADVANTAGE: "rollout/advantage",
}
"""Rollout attributes that also become step metrics, and their Trackio keys."""


@dataclass(slots=True)
class AssembledTrace:
    trace_id: str
    run: Run
    start_ns: int
    step: int | None
    """``trackio.step`` if a span set it; otherwise the store applies the per-run rule."""
    key: str
    messages: list[dict[str, Any]]
    metadata: dict[str, Any]
    spans: list[dict[str, Any]]
    scalars: dict[str, float | str]
    """Rollout reward/advantage as Trackio metric keys; the store logs them at ``step``."""


def assemble(spans: list[Span], logs: list[Log]) -> AssembledTrace:
    ordered = sorted(spans, key=lambda s: (s.start_ns, s.span_id))
    logs_by_span: dict[str | None, list[Log]] = defaultdict(list)
    for log in logs:
        logs_by_span[log.span_id].append(log)
    views = [view(s, logs_by_span.get(s.span_id, [])) for s in ordered]
    by_id = {v.span.span_id: v for v in views}
    parents = _parents(views, by_id)
    _demote_outer_generations(views, by_id, parents)
    pairing.settle(views)
    roots = [v for v in views if parents[v.span.span_id] is None]
    root = next((v for v in roots if v.span.parent_span_id is None), roots[0])

    ids = _trackio_ids(views)
    trackio_spans = [
        v.to_trackio(ids[v.span.span_id], ids.get(parents[v.span.span_id] or "")) for v in views
    ]
    first_root = [root, *views]  # trace-level attributes: the root's win
    return AssembledTrace(
        trace_id=root.span.trace_id,
        run=root.span.run,
        start_ns=min((s.start_ns for s in ordered if s.start_ns), default=0),
        step=steps.of(_attr(first_root, semconv.STEP)),
        key=str(_attr(first_root, semconv.TRACE_KEY) or root.span.name or "trace"),
        messages=conversation(views),
        metadata=_metadata(views, first_root),
        spans=trackio_spans,
        scalars=rollout_scalars(first_root),
    )


def is_training_step(spans: list[Span]) -> bool:
    """A trace of only a training step and its phases. Its timing already lands as step
    metrics, so it stays in ``otel_spans`` but is not made a Trackio trace: thousands of
    steps would bury the conversations on the Traces page."""
    return all(
        s.name == semconv.SPAN_TRAIN_STEP or semconv.TRAIN_PHASE in s.attributes for s in spans
    )


def rollout_scalars(views: list[SpanView]) -> dict[str, float | str]:
    """``trackio.rollout.reward`` → ``rollout/reward``, ``.reward.<name>`` →
    ``rollout/reward/<name>``, ``.advantage`` → ``rollout/advantage``; earlier views win."""
    out: dict[str, float | str] = {}
    for v in views:
        for name, value in v.trackio.items():
            key = ROLLOUT_SCALARS.get(name)
            if key is None and name.startswith(semconv.ROLLOUT_REWARD_PREFIX):
                key = "rollout/reward/" + name[len(semconv.ROLLOUT_REWARD_PREFIX) :]
            if key is not None and isinstance(value, (int, float)) and not isinstance(value, bool):
                out.setdefault(key, pdata.json_number(value))
    return out


def with_media(a: AssembledTrace, step: int, files: dict[str, media.MediaFile]) -> AssembledTrace:
    """``a`` with its inline images moved to Trackio media files of this ``step`` (added to
    ``files`` for the store to write): the step is only known once the store numbers it."""
    prefix = media.run_dir(a.run.project, a.run.run_name, step)
    return replace(
        a,
        messages=media.place(a.messages, prefix, files),
        spans=media.place(a.spans, prefix, files),
    )


def conversation(views: list[SpanView]) -> list[dict[str, Any]]:
    """The chat: each generation's history extended by its answer, joined across calls.

    In an agent loop every call's history starts with the previous call's, so the result
    is the last call's history plus its answer. Histories that diverge (sub-agents,
    parallel branches) are appended without repeating messages already shown.
    """
    turns = [v for v in views if v.kind == "generation" and (v.messages_in or v.message_out)]
    if not turns:
        turns = [v for v in views if v.messages_in or v.message_out][:1]
    chat: list[dict[str, Any]] = []
    chat_keys: list[tuple[str | None, str]] = []  # msgs.key of each chat message, computed once
    for v in turns:
        call = [*(v.messages_in or []), *([_answer(v.message_out)] if v.message_out else [])]
        keys = [msgs.key(m) for m in call]
        n = len(chat)
        if chat_keys == keys[:n]:  # the agent loop: this call's history is the chat so far
            chat += call[n:]
            chat_keys += keys[n:]
        else:
            seen = set(chat_keys)
            for m, k in zip(call, keys, strict=True):
                if k not in seen:
                    chat.append(m)
                    chat_keys.append(k)
    return chat


def _answer(message: dict[str, Any]) -> dict[str, Any]:
    return {k: val for k, val in message.items() if k != "finish_reason"}


def _parents(views: list[SpanView], by_id: dict[str, SpanView]) -> dict[str, str | None]:
    """Each span's parent within the trace (None: a root), with parent cycles broken.

    The sender picks parent ids, so a span may name itself or a cycle may form, also
    across requests. Each cycle is cut above its earliest span (``views`` is in
    (start, span id) order), which depends only on the spans, not on their arrival order."""
    parents = {
        v.span.span_id: v.span.parent_span_id if v.span.parent_span_id in by_id else None
        for v in views
    }
    order = {v.span.span_id: i for i, v in enumerate(views)}
    done: set[str] = set()
    for v in views:
        path: dict[str, int] = {}  # the spans of this walk up, each with its position
        node: str | None = v.span.span_id
        while node is not None and node not in done:
            if node in path:  # back at a span of this walk: a cycle from there on
                loop = list(path)[path[node] :]
                parents[min(loop, key=order.__getitem__)] = None
                break
            path[node] = len(path)
            node = parents[node]
        done.update(path)
    return parents


def _demote_outer_generations(
    views: list[SpanView], by_id: dict[str, SpanView], parents: dict[str, str | None]
) -> None:
    """A generation that wraps another (framework around provider) is not counted twice:
    the innermost call keeps usage and the assistant turn."""
    outer: set[str] = set()
    for v in views:
        if v.kind != "generation":
            continue
        parent = parents[v.span.span_id]
        while parent is not None:
            if by_id[parent].kind == "generation":
                outer.add(parent)
            parent = parents[parent]
    for span_id in outer:
        v = by_id[span_id]
        v.kind = "span"
        v.metadata["aggregate_usage"], v.usage = v.usage, None
        v.metadata["aggregate_cost_usd"], v.cost_usd = v.cost_usd, None
        v.messages_in = v.message_out = None


def _trackio_ids(views: list[SpanView]) -> dict[str, str]:
    """Tool spans take their tool-call id (Trackio pairs ``tool_call_id`` with span ``id``)."""
    counts: dict[str, int] = defaultdict(int)
    for v in views:
        if v.tool_call_id:
            counts[v.tool_call_id] += 1
    span_ids = {v.span.span_id for v in views}
    ids = {}
    for v in views:
        call = v.tool_call_id
        usable = call and counts[call] == 1 and call not in span_ids
        ids[v.span.span_id] = str(call) if usable else v.span.span_id
    return ids


def _metadata(views: list[SpanView], first_root: list[SpanView]) -> dict[str, Any]:
    generations = [v for v in views if v.kind == "generation"]
    starts = [v.span.start_ns for v in views if v.span.start_ns]
    ends = [v.span.end_ns for v in views if v.span.end_ns]
    meta: dict[str, Any] = {"trace_id": views[0].span.trace_id}
    if session := _attr(first_root, *SESSION_ATTRIBUTES):
        meta["session_id"] = session
    if user := _attr(first_root, *USER_ATTRIBUTES):
        meta["user_id"] = user
    if service := first_root[0].span.run.service:
        meta["service_name"] = service
    meta["status"] = "error" if any(v.status == "error" for v in views) else "success"
    if starts and ends:
        meta["duration_ms"] = round((max(ends) - min(starts)) / 1e6, 3)
    costs = [v.cost_usd for v in generations if isinstance(v.cost_usd, (int, float))]
    if costs:
        meta["cost_usd"] = pdata.json_number(sum(costs))  # 1e308 + 1e308 is inf
    usages = [v.usage for v in generations if v.usage]
    for field in ("input_tokens", "output_tokens", "total_tokens"):
        if usages:
            meta[field] = sum(u.get(field, 0) for u in usages)
    meta["conventions"] = sorted({v.convention for v in views if v.convention})
    if generations:
        meta["content_captured"] = any(v.messages_in or v.message_out for v in generations)
    meta["span_count"] = len(views)
    for v in first_root:  # rollout identity and rewards, from the span that carries them
        for key, value in v.trackio.items():
            if key.startswith("trackio.rollout.") and key[len("trackio.") :] not in meta:
                meta[key[len("trackio.") :]] = value
    return meta


def _attr(views: list[SpanView], *names: str) -> Any:
    for v in views:
        for name in names:
            value = v.span.attributes.get(name)
            if value not in (None, ""):
                return value
    return None
