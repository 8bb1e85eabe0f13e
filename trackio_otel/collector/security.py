"""TLS and the bearer token, the same on both transports.

Names follow the OTel Collector's ``tls`` settings: a server certificate and key, and for
mutual TLS a CA that client certificates must chain to. The token is what
``OTEL_EXPORTER_OTLP_HEADERS=authorization=Bearer%20<token>`` makes every stock exporter
send; it is compared in constant time, so a wrong guess learns nothing from the timing.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

TOKEN_ENV = "TRACKIO_OTEL_AUTH_TOKEN"


@dataclass(frozen=True)
class TLS:
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None

    @classmethod
    def from_files(
        cls, cert_file: Path | None, key_file: Path | None, client_ca_file: Path | None
    ) -> TLS | None:
        """Check the files now (a bad one is a start-up error, not a failed handshake
        later); ``None`` without a certificate."""
        if not cert_file and not key_file:
            if client_ca_file:
                raise ValueError("--tls-client-ca-file needs --tls-cert-file and --tls-key-file")
            return None
        if not cert_file or not key_file:
            raise ValueError("--tls-cert-file and --tls-key-file go together")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(cert_file, key_file)
            if client_ca_file:
                context.load_verify_locations(client_ca_file)
        except ssl.SSLError as exc:
            raise ValueError(f"TLS files {cert_file}, {key_file}: {exc}") from exc
        return cls(
            Path(cert_file), Path(key_file), Path(client_ca_file) if client_ca_file else None
        )

    def grpc_credentials(self) -> grpc.ServerCredentials:
        ca = self.client_ca_file.read_bytes() if self.client_ca_file else None
        return grpc.ssl_server_credentials(
            [(self.key_file.read_bytes(), self.cert_file.read_bytes())],
            root_certificates=ca,
            require_client_auth=ca is not None,
        )


def load_token(token_file: Path | None) -> str | None:
    """The token from ``token_file``, else from ``$TRACKIO_OTEL_AUTH_TOKEN``, else none."""
    token = token_file.read_text().strip() if token_file else os.environ.get(TOKEN_ENV, "")
    if token_file and not token:
        raise ValueError(f"--auth-token-file {token_file} is empty")
    return token or None


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Does an ``Authorization`` header carry ``Bearer <token>``? (The scheme is
    case-insensitive, RFC 7235.)"""
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    match = hmac.compare_digest(credentials.strip().encode(), token.encode())
    return scheme.lower() == "bearer" and match


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False
