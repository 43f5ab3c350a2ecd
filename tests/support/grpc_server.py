"""A real in-process gRPC health server (grpcio aio + grpcio-health-checking) for the grpc prober tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.support.tcp_servers import PKI

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class RecordingHealth(health.aio.HealthServicer):  # type: ignore[misc]  # grpc_health ships no types
    """The stock servicer, remembering the metadata of every Check."""

    def __init__(self) -> None:
        super().__init__()
        self.metadata: list[dict[str, Any]] = []

    async def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
                    ) -> health_pb2.HealthCheckResponse:
        self.metadata.append(dict(context.invocation_metadata() or ()))
        return await super().Check(request, context)


@dataclass
class GRPCServer:
    port: int
    servicer: RecordingHealth | None
    metadata: list[dict[str, Any]] = field(default_factory=list)


@contextlib.asynccontextmanager
async def grpc_health_server(statuses: dict[str, int] | None = None, pki: PKI | None = None,
                             with_health: bool = True, host: str = "127.0.0.1") -> AsyncIterator[GRPCServer]:
    server = grpc.aio.server()
    servicer: RecordingHealth | None = None
    if with_health:
        servicer = RecordingHealth()
        for service, status in (statuses or {"": SERVING}).items():
            await servicer.set(service, status)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    address = f"[{host}]:0" if ":" in host else f"{host}:0"
    if pki is None:
        port = server.add_insecure_port(address)
    else:
        key = pki.server_cert.private_key_pem.bytes()
        chain = b"".join(blob.bytes() for blob in pki.server_cert.cert_chain_pems)
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, chain)]))
    await server.start()
    try:
        yield GRPCServer(port=port, servicer=servicer)
    finally:
        await server.stop(grace=None)
