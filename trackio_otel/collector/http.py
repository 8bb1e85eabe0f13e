"""OTLP/HTTP receiver: ``POST /v1/traces``, ``/v1/metrics``, ``/v1/logs``, as the OTLP
specification's HTTP section says, on uvicorn (Starlette routes, parsing and CORS).

The body is read up to ``max_message_bytes`` and decompressed (gzip, deflate) to no more
than that, then goes through the same pipeline as gRPC, protobuf or OTLP/JSON alike: the
writer decodes it. Answers, in the request's content type:

- 200: committed; an ``Export*ServiceResponse``, with partial success naming what was
  rejected.
- 400: undecodable (the ``google.rpc.Status`` body says why); nothing kept. Not retried.
- 401: a token is set and the request did not carry it; nothing kept.
- 405 (not POST), 404 (another path), 413 (larger than ``max_message_bytes``, before or
  after decompression), 415 (another content type or content encoding).
- 408: the body stalled (no byte for ``read_timeout_s``); the connection is closed. A
  connection whose request line and headers take longer than that is closed unanswered.
- 429 + ``Retry-After``: the queue is full. 503 + ``Retry-After``: shutting down, the
  database stayed locked, a writer died or did not answer in time. The OTel exporters
  (Python, Node) retry both and honour the header.
- 500: anything else; the body says what.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import h11
import uvicorn
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from trackio_otel.collector.config import Endpoint
from trackio_otel.collector.otlp import RETRY_DELAY_S, SIGNALS, Signal
from trackio_otel.collector.pipeline import Pipeline, QueueFull, ShuttingDown
from trackio_otel.collector.security import TLS, bearer_matches
from trackio_otel.writer import WriteError

CONTENT_TYPES = {"application/x-protobuf": "protobuf", "application/json": "json"}
_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
"""``deflate`` in HTTP is the zlib format (RFC 9110), which is what the exporters send."""
_WRITE_ERRORS = {
    "invalid": (400, code_pb2.INVALID_ARGUMENT),
    "unavailable": (503, code_pb2.UNAVAILABLE),
    "internal": (500, code_pb2.INTERNAL),
}


class Refused(Exception):
    """A request answered with an HTTP error and a ``google.rpc.Status`` body."""

    def __init__(self, status: int, code: int, message: str, retry: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.retry = status, code, retry


def app(
    pipeline: Pipeline,
    max_message_bytes: int,
    token: str | None,
    cors_origins: tuple[str, ...],
    read_timeout_s: float,
) -> Starlette:
    """The OTLP/HTTP routes; the arguments are ``CollectorConfig``'s."""
    routes = [
        Route(
            f"/v1/{s.name}",
            export_endpoint(s, pipeline, max_message_bytes, token, read_timeout_s),
            methods=["POST"],
        )
        for s in SIGNALS
    ]
    cors = Middleware(
        CORSMiddleware, allow_origins=cors_origins, allow_methods=["POST"], allow_headers=["*"]
    )
    middleware = [cors] if cors_origins else []
    return Starlette(routes=routes, middleware=middleware)


def export_endpoint(
    signal: Signal,
    pipeline: Pipeline,
    max_message_bytes: int,
    token: str | None,
    read_timeout_s: float,
) -> Callable[[Request], Awaitable[Response]]:
    async def export(request: Request) -> Response:
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        encoding = CONTENT_TYPES.get(media_type)
        try:
            if token is not None and not bearer_matches(
                request.headers.get("authorization"), token
            ):
                raise Refused(401, code_pb2.UNAUTHENTICATED, "missing or wrong bearer token")
            if encoding is None:
                raise Refused(
                    415,
                    code_pb2.INVALID_ARGUMENT,
                    f"content type {media_type or 'none'!r}: send application/x-protobuf "
                    "or application/json",
                )
            payload = await read_body(request, max_message_bytes, read_timeout_s)
            result = await pipeline.export(signal.name, payload, encoding)
        except Refused as exc:
            return _status_response(exc, encoding)
        except QueueFull as exc:
            return _status_response(
                Refused(429, code_pb2.RESOURCE_EXHAUSTED, str(exc), True), encoding
            )
        except ShuttingDown as exc:
            return _status_response(Refused(503, code_pb2.UNAVAILABLE, str(exc), True), encoding)
        except WriteError as exc:
            status, code = _WRITE_ERRORS[exc.kind]
            return _status_response(Refused(status, code, str(exc), status == 503), encoding)
        return _message_response(signal.answer(result), encoding)

    return export


async def read_body(request: Request, limit: int, idle_s: float) -> bytes:
    """The request body, decompressed, at most ``limit`` bytes either way; refused once
    it sends nothing for ``idle_s`` (uvicorn sets no deadline on a body)."""
    content_encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if content_encoding not in ("identity", *_WBITS):
        raise Refused(
            415,
            code_pb2.INVALID_ARGUMENT,
            f"content encoding {content_encoding!r}: send gzip, deflate or none",
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    body = bytearray()
    chunks = aiter(request.stream())
    while True:
        try:
            body += await asyncio.wait_for(anext(chunks), idle_s)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            message = f"no body bytes for {idle_s:g} s (got {len(body)})"
            raise Refused(408, code_pb2.DEADLINE_EXCEEDED, message) from None
        if len(body) > limit:
            raise _too_large(limit)
    if content_encoding == "identity":
        return bytes(body)
    # zlib releases the GIL: off the event loop, a large body does not hold up the others.
    return await asyncio.to_thread(decompress, bytes(body), content_encoding, limit)


def decompress(body: bytes, content_encoding: str, limit: int) -> bytes:
    """Inflate at most ``limit + 1`` bytes: a small bomb cannot allocate more than that."""
    inflater = zlib.decompressobj(_WBITS[content_encoding])
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        message = f"corrupt {content_encoding} body: {exc}"
        raise Refused(400, code_pb2.INVALID_ARGUMENT, message) from None
    if len(data) > limit:
        raise _too_large(limit, "decompressed ")
    if not inflater.eof or inflater.unused_data:
        raise Refused(
            400, code_pb2.INVALID_ARGUMENT, f"{content_encoding} body truncated or trailed"
        )
    return data


def _too_large(limit: int, what: str = "") -> Refused:
    return Refused(413, code_pb2.RESOURCE_EXHAUSTED, f"{what}body exceeds {limit} bytes")


def _message_response(message: Message, encoding: str | None, status: int = 200) -> Response:
    if encoding == "json":
        return Response(
            json_format.MessageToJson(message, indent=None), status, media_type="application/json"
        )
    return Response(message.SerializeToString(), status, media_type="application/x-protobuf")


def _status_response(refused: Refused, encoding: str | None) -> Response:
    """A ``google.rpc.Status`` in the request's content type (JSON for an unknown one:
    someone reads it with curl)."""
    response = _message_response(
        status_pb2.Status(code=refused.code, message=str(refused)),
        encoding or "json",
        refused.status,
    )
    if refused.retry:
        response.headers["Retry-After"] = str(RETRY_DELAY_S)
    if refused.status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    if refused.status == 408:  # the rest of its body may still come: not on this connection
        response.headers["Connection"] = "close"
    return response


class _HeadersInTime(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, closing a connection whose request line and headers
    have not arrived ``headers_timeout_s`` after it opened or answered its last request:
    uvicorn sets no such deadline (its keep-alive timer stops at the first byte), so a
    client sending half a request, or nothing, would hold its socket for ever."""

    def __init__(self, *args: Any, headers_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._headers_timeout_s = headers_timeout_s
        self._headers_due: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._headers_due is not None and self.conn.their_state is not h11.IDLE:
            self._headers_due.cancel()  # the request's headers are in
            self._headers_due = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._headers_due is not None:
            self._headers_due.cancel()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        if self._headers_due is not None:
            self._headers_due.cancel()
        self._headers_due = self.loop.call_later(self._headers_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        self._headers_due = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


class HttpReceiver:
    """uvicorn on a socket bound here, so a bad address fails at ``__init__`` with the OS's
    reason (uvicorn would exit the process)."""

    def __init__(
        self, asgi: Starlette, endpoint: Endpoint, tls: TLS | None, read_timeout_s: float
    ) -> None:
        try:
            family = socket.getaddrinfo(endpoint.host.strip("[]"), endpoint.port)[0][0]
            self._socket = socket.socket(family, socket.SOCK_STREAM)
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._socket.bind((endpoint.host.strip("[]"), endpoint.port))
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            raise OSError(f"cannot listen on {endpoint} for OTLP/HTTP: {reason}") from None
        self.port = self._socket.getsockname()[1]
        self._config = uvicorn.Config(
            asgi,
            http=partial(_HeadersInTime, headers_timeout_s=read_timeout_s),
            lifespan="off",
            log_config=None,
            access_log=False,
            ssl_certfile=tls and tls.cert_file,
            ssl_keyfile=tls and tls.key_file,
            ssl_ca_certs=tls and tls.client_ca_file,
            ssl_cert_reqs=ssl.CERT_REQUIRED if tls and tls.client_ca_file else ssl.CERT_NONE,
        )
        self._config.load()
        # uvicorn's start and stop lines would interleave with the collector's own.
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
        self._server = uvicorn.Server(self._config)
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._serving = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._serving.done():
                await self._serving  # raises what stopped it
                raise OSError("the OTLP/HTTP server stopped while starting")
            await asyncio.sleep(0.01)

    async def stop(self, grace_s: float | None) -> None:
        """Stop accepting, let requests in flight finish (within ``grace_s``)."""
        self._config.timeout_graceful_shutdown = None if grace_s is None else int(grace_s) or 1
        self._server.should_exit = True
        if self._serving:
            await self._serving
        self._socket.close()
