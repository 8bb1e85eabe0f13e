"""The collector's settings, one for each ``trackio-otel collect`` flag."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from trackio_otel.store import default_trackio_dir
from trackio_otel.writer import default_processes

MIB = 1 << 20


class Endpoint(NamedTuple):
    host: str
    port: int

    @classmethod
    def parse(cls, value: str, what: str) -> Endpoint:
        """``HOST:PORT`` (``[::1]:PORT`` for IPv6), port 0-65535 (0: an ephemeral one).
        gRPC itself accepts a bare port and silently wraps one past 65535."""
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(
                f"{what} {value!r}: expected HOST:PORT with a port from 0 to 65535, "
                "e.g. 127.0.0.1:4317 (0.0.0.0:PORT to accept other hosts)"
            )
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass
class CollectorConfig:
    trackio_dir: Path = field(default_factory=default_trackio_dir)
    endpoint: str = "127.0.0.1:4317"
    """OTLP/gRPC ``HOST:PORT`` (``--grpc-endpoint``)."""
    http_endpoint: str | None = "127.0.0.1:4318"
    """OTLP/HTTP ``HOST:PORT``; ``None`` or ``"off"``: no HTTP receiver."""
    http_cors_origins: tuple[str, ...] = ()
    """Origins a browser app may send OTLP/HTTP from (no CORS headers without any)."""
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    """With a CA, clients must present a certificate it signed (mutual TLS)."""
    auth_token: str | None = None
    """Exports must carry ``Authorization: Bearer <token>``; the health service stays open."""
    max_message_bytes: int = 64 * MIB
    """Largest request accepted (after decompression); the OTel SDK's batches stay far below."""
    max_queue_bytes: int = 32 * MIB
    """Request bytes held (decoding, queued, committing) before exporters are told to back off."""
    writers: int = field(default_factory=default_processes)
    """Writer processes (decode, translate, commit); 0 runs one writer thread in process."""
    http_read_timeout_s: float = 30.0
    """An OTLP/HTTP connection whose request headers take longer than this is closed, and
    a body that sends no byte for this long is answered 408 and closed, so a stalled
    client holds no socket (``--http-read-timeout``)."""
    write_timeout_s: float = 60.0
    """A request whose writer has not answered by then is answered UNAVAILABLE / 503."""
    stats_interval_s: float = 30.0
    shutdown_grace_s: float = 30.0

    def grpc(self) -> Endpoint:
        return Endpoint.parse(self.endpoint, "--grpc-endpoint")

    def http(self) -> Endpoint | None:
        if self.http_endpoint in (None, "off"):
            return None
        return Endpoint.parse(self.http_endpoint, "--http-endpoint")
