"""The span views of one OTel trace → one Trackio ``traces`` row. Pure.

Views merge in any order: they are sorted first, so the row converges to the same value
whichever writer saw which part. Trace-level steps (``TRACE_STEPS``) run over the sorted
views before the row is made; each is a pure function that may change views in place.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from trackio_otel import semconv
from trackio_otel.rows.views import View
from trackio_otel.translate import pdata, steps
from trackio_otel.translate.conventions import SESSION_ATTRIBUTES, USER_ATTRIBUTES, media, pairing
from trackio_otel.translate.conventions import messages as msgs

SEARCHABLE_SPAN_FIELDS = ("id", "name", "kind", "model", "status", "error", "metadata")


def parents(views: list[View]) -> dict[str, str | None]:
    """Each span's parent within the trace (None: a root), with parent cycles broken.

    The sender picks parent ids, so a span may name itself or a cycle may form, also
    across requests. Each cycle is cut above its earliest span (``views`` is in
    (start, span id) order), which depends only on the spans, not on their arrival order."""
    span_ids = {v.span_id for v in views}
    out = {v.span_id: v.parent_id if v.parent_id in span_ids else None for v in views}
    order = {v.span_id: i for i, v in enumerate(views)}
    done: set[str] = set()
    for v in views:
        path: dict[str, int] = {}  # the spans of this walk up, each with its position
        node: str | None = v.span_id
        while node is not None and node not in done:
            if node in path:  # back at a span of this walk: a cycle from there on
                loop = list(path)[path[node] :]
                out[min(loop, key=order.__getitem__)] = None
                break
            path[node] = len(path)
            node = out[node]
        done.update(path)
    return out


def cut_parent_cycles(views: list[View]) -> None:
    """Views whose parent is not in the trace, or closes a cycle, become roots."""
    found = parents(views)
    for v in views:
        v.parent_id = found[v.span_id]


def demote_outer_generations(views: list[View]) -> None:
    """A generation that wraps another (framework around provider) is not counted twice:
    the innermost call keeps usage and the assistant turn. Runs after
    ``cut_parent_cycles``, so every walk up ends."""
    by_id = {v.span_id: v for v in views}
    outer: set[str] = set()
    for v in views:
        if v.kind != "generation":
            continue
        parent = by_id.get(v.parent_id or "")
        while parent is not None:
            if parent.kind == "generation":
                outer.add(parent.span_id)
            parent = by_id.get(parent.parent_id or "")
    for span_id in outer:
        v = by_id[span_id]
        v.kind = "span"
        v.metadata = {**v.metadata, "aggregate_usage": v.usage, "aggregate_cost_usd": v.cost_usd}
        v.usage = v.cost_usd = v.messages_in = v.message_out = None


TRACE_STEPS: list[Callable[[list[View]], None]] = [
    cut_parent_cycles,
    demote_outer_generations,
    pairing.settle,
]
"""What needs the whole trace, in order, over views sorted by start time. A step sees
every view of the trace each time the trace is assembled, so it must give the same
result for the same views whatever order they arrived in. A step that changes a view's
metadata gives it a new dict: a view whose row shows the metadata it was made with (the
same object) is stored thin (``rows.views``)."""


@dataclass(slots=True)
class Assembled:
    trace_id: str
    run_id: str
    start_ns: int
    step: int | None
    """``trackio.step`` if a span set it; otherwise the run's next trace number."""
    key: str
    messages: list[dict[str, Any]]
    metadata: dict[str, Any]
    spans: list[dict[str, Any]]
    media: bool


def is_training_step(views: Iterable[View]) -> bool:
    """A trace of only a training step and its phases. Its timing already lands as step
    metrics, so it stays in ``otel_spans`` but is not made a Trackio trace: thousands of
    steps would bury the conversations on the Traces page."""
    return all(v.training for v in views)


def assemble(trace_id: str, run_id: str, views: list[View]) -> Assembled | None:
    """The trace's row content, or None for a training step (see ``is_training_step``)."""
    if not views or is_training_step(views):
        return None
    views = sorted(views, key=lambda v: (v.start_ns, v.span_id))
    had_parent = {v.span_id for v in views if v.parent_id is not None}
    for step in TRACE_STEPS:
        step(views)
    span_ids = {v.span_id for v in views}
    roots = [v for v in views if v.parent_id is None]  # a root after cut_parent_cycles
    root = next((v for v in roots if v.span_id not in had_parent), roots[0])
    ids = _trackio_ids(views, span_ids)
    first_root = [root, *views]  # trace-level attributes: the root's win
    return Assembled(
        trace_id=trace_id,
        run_id=run_id,
        start_ns=min((v.start_ns for v in views if v.start_ns), default=0),
        step=steps.of(_attr(first_root, semconv.STEP)),
        key=str(_attr(first_root, semconv.TRACE_KEY) or root.span_name or "trace"),
        messages=conversation(views),
        metadata=_metadata(trace_id, views, first_root),
        spans=[v.to_trackio(ids[v.span_id], ids.get(v.parent_id or "")) for v in views],
        media=any(v.media for v in views),
    )


def place_media(
    a: Assembled, project: str, run_name: str, step: int, files: dict[str, media.MediaFile]
) -> None:
    """Move ``a``'s inline images to Trackio media files of this ``step`` (added to
    ``files`` for the store to write): the step is only known once the run numbers it."""
    prefix = media.run_dir(project, run_name, step)
    a.messages = media.place(a.messages, prefix, files)
    a.spans = media.place(a.spans, prefix, files)


def conversation(views: list[View]) -> list[dict[str, Any]]:
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


def search_text(a: Assembled) -> str:
    """Trackio's algorithm: id, key, then every scalar of messages, metadata and the
    searchable span fields (never span input/output)."""
    parts: list[str] = []
    _scalars(a.messages, parts)
    _scalars(a.metadata.values(), parts)
    for span in a.spans:
        _scalars(map(span.get, SEARCHABLE_SPAN_FIELDS), parts)
    return f"{a.trace_id} {a.key} {' '.join(parts)}".lower()


def _scalars(values: Iterable[Any], parts: list[str]) -> None:
    """Append every scalar in ``values``, depth first, to ``parts``: a call per container,
    not per scalar. Module-level, as a nested recursive function is a reference cycle
    that only the garbage collector frees."""
    for value in values:
        kind = type(value)
        if kind is str:
            parts.append(value)
        elif kind is dict:
            _scalars(value.values(), parts)
        elif kind is list:
            _scalars(value, parts)
        elif value is not None:
            parts.append(str(value))


def _answer(message: dict[str, Any]) -> dict[str, Any]:
    return {k: val for k, val in message.items() if k != "finish_reason"}


def _trackio_ids(views: list[View], span_ids: set[str]) -> dict[str, str]:
    """Tool spans take their tool-call id (Trackio pairs ``tool_call_id`` with span ``id``)."""
    counts: dict[str, int] = defaultdict(int)
    for v in views:
        if v.tool_call_id:
            counts[v.tool_call_id] += 1
    ids = {}
    for v in views:
        call = v.tool_call_id
        usable = call and counts[call] == 1 and call not in span_ids
        ids[v.span_id] = str(call) if usable else v.span_id
    return ids


def _metadata(trace_id: str, views: list[View], first_root: list[View]) -> dict[str, Any]:
    generations = [v for v in views if v.kind == "generation"]
    starts = [v.start_ns for v in views if v.start_ns]
    ends = [v.end_ns for v in views if v.end_ns]
    meta: dict[str, Any] = {"trace_id": trace_id}
    if session := _attr(first_root, *SESSION_ATTRIBUTES):
        meta["session_id"] = session
    if user := _attr(first_root, *USER_ATTRIBUTES):
        meta["user_id"] = user
    if service := next((v.service for v in first_root if v.service), None):
        meta["service_name"] = service
    meta["status"] = "error" if any(v.status == "error" for v in views) else "success"
    if starts and ends:
        meta["duration_ms"] = round((max(ends) - min(starts)) / 1e6, 3)
    costs = [v.cost_usd for v in generations if isinstance(v.cost_usd, (int, float))]
    if costs:
        meta["cost_usd"] = pdata.json_number(sum(costs))  # 1e308 + 1e308 is inf
    usages = [v.usage for v in generations if v.usage]
    for name in ("input_tokens", "output_tokens", "total_tokens"):
        if usages:
            meta[name] = sum(u.get(name, 0) for u in usages)
    meta["conventions"] = sorted({v.convention for v in views if v.convention})
    if generations:
        meta["content_captured"] = any(v.messages_in or v.message_out for v in generations)
    meta["span_count"] = len(views)
    for v in first_root:  # rollout identity and rewards, from the span that carries them
        for key, value in v.trackio.items():
            if key.startswith("trackio.rollout.") and key[len("trackio.") :] not in meta:
                meta[key[len("trackio.") :]] = value
    return meta


def _attr(views: list[View], *names: str) -> Any:
    for v in views:
        for name in names:
            value = v.attributes.get(name)
            if value is not None:
                return value
    return None
