"""Frames between a writer process and its parent, on the child's stdin and stdout.

Request: ``<QBBI`` (id, signal index, encoding index, payload length) + the OTLP request
bytes as received.
Answer: ``<QI`` (id, length) + a JSON object (``core.Reply``). Id 0 is the child's
"ready" answer, sent once it has imported everything.
"""

from __future__ import annotations

import json
import struct
from typing import BinaryIO

from trackio_otel.writer.core import ENCODINGS, SIGNALS, Reply, Request

_REQUEST = struct.Struct("<QBBI")
_ANSWER = struct.Struct("<QI")
_SIGNAL_NAMES = tuple(SIGNALS)
READY = 0


def _read_exact(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    if not data or len(data) < n:  # end of stream (a partial frame means the peer died)
        return None
    return data


def send_request(stream: BinaryIO, request: Request) -> None:
    header = _REQUEST.pack(
        request.id,
        _SIGNAL_NAMES.index(request.signal),
        ENCODINGS.index(request.encoding),
        len(request.payload),
    )
    stream.write(header)
    stream.write(request.payload)
    stream.flush()


def read_request(stream: BinaryIO) -> Request | None:
    header = _read_exact(stream, _REQUEST.size)
    if header is None:
        return None
    request_id, signal, encoding, length = _REQUEST.unpack(header)
    payload = _read_exact(stream, length) if length else b""
    if payload is None:
        return None
    return Request(request_id, _SIGNAL_NAMES[signal], payload, ENCODINGS[encoding])


def send_answer(stream: BinaryIO, request_id: int, reply: Reply) -> None:
    body = json.dumps(reply).encode()
    stream.write(_ANSWER.pack(request_id, len(body)) + body)
    stream.flush()


def read_answer(stream: BinaryIO) -> tuple[int, Reply] | None:
    header = _read_exact(stream, _ANSWER.size)
    if header is None:
        return None
    request_id, length = _ANSWER.unpack(header)
    body = _read_exact(stream, length)
    return None if body is None else (request_id, json.loads(body))
