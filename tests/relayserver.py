"""A real gRPC server on 127.0.0.1 speaking Hubble Relay's GetFlows, serving recorded flows:
what `dnswatch flows --relay` is tested against (drops, restarts, TLS, refusals)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import json_format

from watcher.sources.relay import observer_pb2 as pb
from watcher.sources.relay.messages import flow_time


def responses(lines: list[bytes]) -> list[pb.GetFlowsResponse]:
    """Exporter / `hubble observe -o jsonpb` lines as Relay's messages, with protobuf's own
    JSON parser (fields the watcher's messages do not hold are skipped, as on the wire)."""
    out = []
    for line in lines:
        r = pb.GetFlowsResponse()
        json_format.Parse(line, r, ignore_unknown_fields=True)
        out.append(r)
    return out


@dataclass
class Behaviour:
    drop_after: int | None = None  # abort the first stream (UNAVAILABLE) after this many
    refuse: str | None = None  # abort every call INVALID_ARGUMENT with this text
    hold: bool = True  # follow: keep the stream open after the last message
    extra: list[pb.GetFlowsResponse] = field(default_factory=list)  # sent first


class FakeRelay:
    def __init__(
        self,
        recorded: list[pb.GetFlowsResponse],
        port: int,
        behaviour: Behaviour | None = None,
        tls: tuple[bytes, bytes, bytes | None] | None = None,  # key, cert, client CA (mTLS)
    ) -> None:
        self.recorded = recorded
        self.port = port
        self.behaviour = behaviour or Behaviour()
        self.tls = tls
        self.requests: list[pb.GetFlowsRequest] = []
        self.sent = 0
        self._stop = threading.Event()
        self.server: grpc.Server | None = None

    def start(self) -> FakeRelay:
        self._stop.clear()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.method_handlers_generic_handler(
            "observer.Observer",
            {
                "GetFlows": grpc.unary_stream_rpc_method_handler(
                    self._get_flows,
                    request_deserializer=pb.GetFlowsRequest.FromString,
                    response_serializer=pb.GetFlowsResponse.SerializeToString,
                )
            },
        )
        server.add_generic_rpc_handlers((handler,))
        where = f"127.0.0.1:{self.port}"
        if self.tls is None:
            server.add_insecure_port(where)
        else:
            key, cert, client_ca = self.tls
            creds = grpc.ssl_server_credentials(
                [(key, cert)],
                root_certificates=client_ca,
                require_client_auth=client_ca is not None,
            )
            server.add_secure_port(where, creds)
        server.start()
        self.server = server
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.server is not None:
            self.server.stop(grace=None).wait()
            self.server = None

    def _get_flows(
        self, request: pb.GetFlowsRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.GetFlowsResponse]:
        self.requests.append(request)
        b = self.behaviour
        if b.refuse:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, b.refuse)
        since = (
            request.since.seconds + request.since.nanos / 1e9 if request.HasField("since") else None
        )
        until = (
            request.until.seconds + request.until.nanos / 1e9 if request.HasField("until") else None
        )
        yield from b.extra
        first_call = len(self.requests) == 1
        n = 0
        for r in self.recorded:
            t = flow_time(r)
            if t is not None and (
                (since is not None and t < since) or (until is not None and t > until)
            ):
                continue
            if first_call and b.drop_after is not None and n >= b.drop_after:
                context.abort(grpc.StatusCode.UNAVAILABLE, "relay: connection to peer lost")
            n += 1
            self.sent += 1
            yield r
        if request.follow and b.hold:
            while not self._stop.is_set() and context.is_active():
                time.sleep(0.05)


def tls_files(d: Path) -> dict[str, Path]:
    """A test CA, a server certificate for `relay.test` and a client certificate, as PEM."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def pem_key(k: ec.EllipticCurvePrivateKey) -> bytes:
        return k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("dnswatch test CA"))
        .issuer_name(name("dnswatch test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, usage: x509.ObjectIdentifier) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        return pem_key(key), cert.public_bytes(serialization.Encoding.PEM)

    out = {}
    files = {
        "ca.pem": ca.public_bytes(serialization.Encoding.PEM),
    }
    skey, scert = leaf("relay.test", ExtendedKeyUsageOID.SERVER_AUTH)
    ckey, ccert = leaf("dnswatch", ExtendedKeyUsageOID.CLIENT_AUTH)
    files.update({"server.key": skey, "server.pem": scert, "client.key": ckey, "client.pem": ccert})
    for fname, data in files.items():
        (d / fname).write_bytes(data)
        out[fname] = d / fname
    return out
