"""Which Trackio project and run a resource's data belongs to.

project = ``trackio.project``, else ``service.name``, else ``default`` (canonicalised as
Trackio does). run name = ``trackio.run.name``, else ``<service.name>-<8 hex>`` where the
hex identifies the emitting process (``service.instance.id``, else host and pid), so one
process's data stays in one run and two processes never share one. run id =
``trackio.run.id``, else a stable hash of project, run name and process, so a collector
restart or a retry lands in the same run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource

from trackio_otel import semconv
from trackio_otel.translate import pdata
from trackio_otel.translate.model import Batch, Resource, Run

_RESERVED_SUFFIXES = (
    "_system",
    "_configs",
    "_traces",
    "_artifacts",
    "_artifact_versions",
    "_artifact_aliases",
    "_run_artifact_links",
    "_external_run_artifact_links",
)


def canonical_project_name(project: str) -> str:
    """Trackio's own rule: keep ``[alnum-_]``, fall back to ``default``."""
    safe = "".join(c for c in project if c.isalnum() or c in ("-", "_")).rstrip()
    return safe or "default"


def project_name_error(canonical: str) -> str | None:
    """Names Trackio refuses (they collide with its sidecar files)."""
    if canonical.startswith("registry-"):
        return f"project {canonical!r} is reserved: names beginning with 'registry-'"
    for suffix in _RESERVED_SUFFIXES:
        if len(canonical) > len(suffix) and canonical.endswith(suffix):
            return f"project {canonical!r} ends with the reserved suffix {suffix!r}"
    return None


MAX_NAME_BYTES = 200
"""Longest project, run name or run id (UTF-8 bytes). Trackio derives file names from
them (``<project>.db``, ``<project>.lock``, ``<project>_external_run_artifact_links.parquet``,
``media/<project>/<run name>/``); file systems cap a name at 255 bytes, so a longer one
could never be written, and retrying would not help."""


def name_error(what: str, name: str) -> str | None:
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"{what} is {size} bytes long; at most {MAX_NAME_BYTES} (UTF-8) are allowed"
    return None


def digest(*parts: object) -> str:
    """A 32-hex id (the shape of Trackio's uuid4().hex) from stable parts."""
    text = "\x1f".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


canonical = pdata.json_encoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, sort_keys=True
)
"""JSON with every map in key order, for ids: OTLP attributes and kvlists are maps, and a
relay may reorder them, so an id must not depend on the order they arrive in."""


def resource_of(pb: PbResource, schema_url: str) -> Resource:
    attrs = pdata.attributes(pb.attributes)
    return Resource(digest(canonical(attrs), schema_url), attrs, schema_url)


class HasResource(Protocol):
    """A ``resource_spans``, ``resource_logs`` or ``resource_metrics`` entry."""

    @property
    def resource(self) -> PbResource: ...
    @property
    def schema_url(self) -> str: ...


E = TypeVar("E", bound=HasResource)


def placed(
    batch: Batch, entries: Iterable[E], field: str, items: Callable[[E], int]
) -> Iterator[tuple[int, E, Resource, Run]]:
    """``(index, entry, resource, run)`` for each entry whose resource names a run, its
    resource added to ``batch``. The ``items(entry)`` items of any other entry are rejected,
    all for the one reason ``run_for`` gives."""
    for i, entry in enumerate(entries):
        resource = resource_of(entry.resource, entry.schema_url)
        try:
            run = run_for(resource.attributes)
        except ValueError as exc:
            batch.reject(f"{field}[{i}]", str(exc), items(entry))
            continue
        batch.resources[resource.id] = resource
        yield i, entry, resource, run


def run_for(attrs: dict[str, Any]) -> Run:
    """Raise ``ValueError`` naming the attribute when the resource can't be placed."""
    raw_project = attrs.get(semconv.PROJECT) or attrs.get(semconv.SERVICE_NAME) or "default"
    project = canonical_project_name(str(raw_project))
    source = semconv.PROJECT if attrs.get(semconv.PROJECT) else semconv.SERVICE_NAME
    if error := project_name_error(project) or name_error("project", project):
        raise ValueError(f"resource.attributes[{source}]: {error}")

    process = attrs.get(semconv.SERVICE_INSTANCE_ID) or (
        f"{attrs.get(semconv.HOST_NAME, '')}/{attrs.get(semconv.PROCESS_PID, '')}"
    )
    name = attrs.get(semconv.RUN_NAME)
    if name:
        name = str(name)
        run_id = attrs.get(semconv.RUN_ID) or digest(project, name)
    else:
        service = str(attrs.get(semconv.SERVICE_NAME) or "otel")
        name = f"{service}-{digest(process)[:8]}"
        run_id = attrs.get(semconv.RUN_ID) or digest(project, name, process)
    if error := name_error("run name", name):
        source = semconv.RUN_NAME if attrs.get(semconv.RUN_NAME) else semconv.SERVICE_NAME
        raise ValueError(f"resource.attributes[{source}]: {error}")
    if error := name_error("run id", str(run_id)):
        raise ValueError(f"resource.attributes[{semconv.RUN_ID}]: {error}")
    group = attrs.get(semconv.RUN_GROUP)
    service_name = attrs.get(semconv.SERVICE_NAME)
    return Run(
        project,
        str(run_id),
        name,
        str(group) if group else None,
        _config(attrs),
        str(service_name) if service_name else None,
    )


def _config(attrs: dict[str, Any]) -> dict[str, Any]:
    config: dict[str, Any] = {}
    raw = attrs.get(semconv.RUN_CONFIG)
    if isinstance(raw, str):
        try:
            parsed = pdata.loads(raw)
        except ValueError as exc:
            raise ValueError(
                f"resource.attributes[{semconv.RUN_CONFIG}]: not JSON ({exc})"
            ) from exc
        if not isinstance(parsed, dict):
            raise ValueError(f"resource.attributes[{semconv.RUN_CONFIG}]: must be a JSON object")
        config.update(parsed)
    for key, value in attrs.items():
        if key.startswith(semconv.RUN_CONFIG_PREFIX):
            config[key[len(semconv.RUN_CONFIG_PREFIX) :]] = value
    return config
