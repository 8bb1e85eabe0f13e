"""TLS, mutual TLS and the bearer token on both transports, with the stock OTel exporters
configured only through ``OTEL_EXPORTER_OTLP_*`` variables, as a deployed app would be."""

from __future__ import annotations

import datetime
import ipaddress
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.conftest import local_config, traces_of
from tests.test_collector_robustness import new_span, trace_request
from tests.test_http_receiver import finished_spans
from trackio_otel.collector import Collector
from trackio_otel.collector.security import bearer_matches

TOKEN = "s3cret-token"


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _certificate(
    subject: str, key, issuer: x509.Name | None, issuer_key, ca: bool, san: bool
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it."""
    d = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("test CA", ca_key, None, None, ca=True, san=False)
    files = {"ca": d / "ca.pem"}
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    for who in ("server", "client"):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(who, key, ca.subject, ca_key, ca=False, san=who == "server")
        files[f"{who}_cert"] = d / f"{who}.pem"
        files[f"{who}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files[f"{who}_key"] = _write_key(d / f"{who}-key.pem", key)
    return Pki(**files)


def start(trackio_dir: Path, **settings) -> Collector:
    return Collector(local_config(trackio_dir, writers=0, **settings)).start()


@pytest.fixture
def tls_collector(trackio_dir: Path, pki: Pki) -> Iterator[Collector]:
    c = start(trackio_dir, tls_cert_file=pki.server_cert, tls_key_file=pki.server_key)
    yield c
    c.stop()


@pytest.fixture
def mtls_collector(trackio_dir: Path, pki: Pki) -> Iterator[Collector]:
    c = start(
        trackio_dir,
        tls_cert_file=pki.server_cert,
        tls_key_file=pki.server_key,
        tls_client_ca_file=pki.ca,
    )
    yield c
    c.stop()


@pytest.fixture
def token_collector(trackio_dir: Path) -> Iterator[Collector]:
    c = start(trackio_dir, auth_token=TOKEN)
    yield c
    c.stop()


def export_both(
    collector: Collector, project: str, monkeypatch, scheme: str, **env: str
) -> dict[str, SpanExportResult]:
    """One span per transport through the stock exporters, set up from the environment only
    (plus a short timeout, so a refused handshake's retries end quickly)."""
    for key, value in env.items():
        monkeypatch.setenv(f"OTEL_EXPORTER_OTLP_{key}", value)
    # requests lets these override the CA the HTTP exporter passes it (trust_env).
    for bundle in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(bundle, raising=False)
    results = {}
    for transport, exporter_type, port in (
        ("grpc", GrpcSpans, collector.port),
        ("http", HttpSpans, collector.http_port),
    ):
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"{scheme}://127.0.0.1:{port}")
        exporter = exporter_type(timeout=3)
        results[transport] = exporter.export(finished_spans(project, f"over-{transport}"))
        exporter.shutdown()
    return results


def stored(project: str, trackio_dir: Path) -> set[str]:
    """The trace names stored in ``project`` (none: not even its database)."""
    if not (trackio_dir / f"{project}.db").exists():
        return set()
    return {t["key"] for t in traces_of(project)}


def test_tls_on_both_transports(tls_collector, project, trackio_dir, monkeypatch, pki):
    results = export_both(tls_collector, project, monkeypatch, "https", CERTIFICATE=str(pki.ca))
    assert results == {"grpc": SpanExportResult.SUCCESS, "http": SpanExportResult.SUCCESS}
    assert stored(project, trackio_dir) == {"over-grpc", "over-http"}
    with pytest.raises(requests.ConnectionError):  # no plaintext beside it
        requests.post(f"http://127.0.0.1:{tls_collector.http_port}/v1/traces", timeout=5)


def test_mutual_tls_needs_a_client_certificate(
    mtls_collector, project, trackio_dir, monkeypatch, pki
):
    refused = export_both(mtls_collector, project, monkeypatch, "https", CERTIFICATE=str(pki.ca))
    assert refused == {"grpc": SpanExportResult.FAILURE, "http": SpanExportResult.FAILURE}
    assert stored(project, trackio_dir) == set()
    accepted = export_both(
        mtls_collector,
        project,
        monkeypatch,
        "https",
        CERTIFICATE=str(pki.ca),
        CLIENT_CERTIFICATE=str(pki.client_cert),
        CLIENT_KEY=str(pki.client_key),
    )
    assert accepted == {"grpc": SpanExportResult.SUCCESS, "http": SpanExportResult.SUCCESS}
    assert stored(project, trackio_dir) == {"over-grpc", "over-http"}


def test_token_refused_then_accepted_on_both_transports(
    token_collector, project, trackio_dir, monkeypatch
):
    refused = export_both(
        token_collector, project, monkeypatch, "http", HEADERS="authorization=Bearer%20wrong"
    )
    assert refused == {"grpc": SpanExportResult.FAILURE, "http": SpanExportResult.FAILURE}
    assert stored(project, trackio_dir) == set()
    accepted = export_both(
        token_collector, project, monkeypatch, "http", HEADERS=f"authorization=Bearer%20{TOKEN}"
    )
    assert accepted == {"grpc": SpanExportResult.SUCCESS, "http": SpanExportResult.SUCCESS}
    assert stored(project, trackio_dir) == {"over-grpc", "over-http"}


def test_without_a_token_grpc_is_unauthenticated_http_401_and_health_stays_open(
    token_collector, project, trackio_dir
):
    raw = trace_request(project, new_span("no-token")).SerializeToString()
    response = requests.post(
        f"http://127.0.0.1:{token_collector.http_port}/v1/traces",
        data=raw,
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    with grpc.insecure_channel(f"127.0.0.1:{token_collector.port}") as channel:
        export = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.RpcError) as info:
            export(raw, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert stored(project, trackio_dir) == set()
    assert token_collector.stats.received == 0


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (f"bearer {TOKEN}", True),
        (f"Bearer  {TOKEN} ", True),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Basic {TOKEN}", False),
        (TOKEN, False),
        ("", False),
        (None, False),
    ],
)
def test_bearer_header_matching(header, ok):
    assert bearer_matches(header, TOKEN) is ok


def exposure_warnings(caplog) -> list[logging.LogRecord]:
    """The collector's warnings about listening without a token (other loggers may warn)."""
    return [
        r
        for r in caplog.records
        if r.name == "trackio_otel.collector" and r.levelno == logging.WARNING
    ]


def test_a_non_loopback_address_without_a_token_warns_once(trackio_dir, caplog):
    with caplog.at_level(logging.WARNING, "trackio_otel.collector"):
        c = Collector(local_config(trackio_dir, endpoint="0.0.0.0:0", writers=0)).start()
        c.stop()
    [warning] = exposure_warnings(caplog)
    assert "0.0.0.0" in warning.getMessage() and "--auth-token-file" in warning.getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, "trackio_otel.collector"):
        start(trackio_dir, auth_token=TOKEN).stop()
    assert not exposure_warnings(caplog)
