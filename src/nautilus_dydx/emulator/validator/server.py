"""The emulated validator's gRPC server (grpc.aio): query services, the tx service, TLS and faults.

:class:`ValidatorServer` serves, on one port, the query services of :mod:`.queries` and the
``cosmos.tx.v1beta1.Service`` of :mod:`.txservice`. Any other method or service answers
UNIMPLEMENTED with grpc-go's texts (``unknown service X`` / ``unknown method M for service X``), as a
node does for a module it does not run.

Plaintext by default (like a local node on 9090). With ``tls=True`` a fresh self-signed certificate
(EC P-256, valid for ``localhost`` and ``127.0.0.1``) is made at start; :attr:`ValidatorServer.certificate_pem`
is what a client passes as ``root_certificates``.

Faults: :class:`GrpcFaults` makes the next N calls, whatever their method, fail with UNAVAILABLE or
RESOURCE_EXHAUSTED before reaching a servicer (a server interceptor), as a load balancer or a node
shedding load would. :attr:`ValidatorServer.tx_faults` (the tx service's own) delays broadcasts and
forces sequence mismatches.
"""

from __future__ import annotations

import datetime as dt
import inspect
import ipaddress
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import grpc  # type: ignore[import-untyped,unused-ignore]
from v4_proto.cosmos.tx.v1beta1 import service_pb2 as tx_service_pb2

from nautilus_dydx.emulator.params import CHAIN_ID
from nautilus_dydx.emulator.validator.queries import query_servicers
from nautilus_dydx.emulator.validator.txservice import TxFaults, TxServicer

if TYPE_CHECKING:
    from collections.abc import Mapping
    from decimal import Decimal

    from nautilus_dydx.emulator.engine.chain import ChainEngine

__all__ = ["FaultStatus", "GrpcFaults", "ValidatorServer", "self_signed_certificate", "service_handler"]

log = logging.getLogger(__name__)

FaultStatus = Literal["UNAVAILABLE", "RESOURCE_EXHAUSTED"]
_FAULT_DETAILS: dict[str, str] = {
    "UNAVAILABLE": "emulator: injected fault: connection refused by upstream node",
    "RESOURCE_EXHAUSTED": "emulator: injected fault: rate limit exceeded",
}


@dataclass(slots=True)
class GrpcFaults:
    """The next ``count`` calls answer ``status`` (mutable; set by the control API)."""

    status: FaultStatus = "UNAVAILABLE"
    count: int = 0

    def take(self) -> FaultStatus | None:
        """Consume one injected fault, or ``None`` when there is none left."""
        if self.count <= 0:
            return None
        self.count -= 1
        return self.status


def service_handler(service: Any, servicer: object) -> Any:
    """A generic handler serving the ``async`` methods of ``servicer`` named after RPCs of ``service``.

    Args:
        service: a protobuf ``ServiceDescriptor``.
        servicer: an object whose coroutine methods implement some of the service's unary RPCs.

    Returns:
        A ``grpc.GenericRpcHandler``; methods the servicer lacks are left to the next handler.
    """
    from google.protobuf import message_factory  # type: ignore[import-untyped,unused-ignore]

    handlers: dict[str, Any] = {}
    for method in service.methods:
        impl = getattr(servicer, method.name, None)
        if impl is None or not inspect.iscoroutinefunction(impl):
            continue
        if method.client_streaming or method.server_streaming:
            continue
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            impl,
            request_deserializer=request_type.FromString,
            response_serializer=response_type.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _aborting(code: Any, details: str) -> Any:
    async def abort(request: bytes, context: Any) -> bytes:
        await context.abort(code, details)
        raise AssertionError("unreachable: abort raises")

    return grpc.unary_unary_rpc_method_handler(abort)


class _Unimplemented:
    """The last generic handler: every call no service claimed answers UNIMPLEMENTED."""

    def __init__(self, known_services: set[str]) -> None:
        self.known = known_services

    def service(self, details: Any) -> Any:
        service, _, method = str(details.method).lstrip("/").partition("/")
        if service in self.known:
            text = f"unknown method {method} for service {service}"
        else:
            text = f"unknown service {service}"
        return _aborting(grpc.StatusCode.UNIMPLEMENTED, text)


class _FaultInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, faults: GrpcFaults) -> None:
        self.faults = faults

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        status = self.faults.take()
        if status is None:
            return await continuation(details)
        log.info("grpc fault %s on %s", status, details.method)
        return _aborting(getattr(grpc.StatusCode, status), _FAULT_DETAILS[status])


def self_signed_certificate(hosts: tuple[str, ...] = ("localhost", "127.0.0.1")) -> tuple[bytes, bytes]:
    """A fresh EC P-256 key and a self-signed certificate valid for ``hosts`` (30 days).

    Returns:
        ``(private_key_pem, certificate_pem)``.

    Raises:
        RuntimeError: the ``cryptography`` package is not installed.
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("gRPC TLS needs the 'cryptography' package (pip install cryptography)") from exc

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # Its own trust anchor: clients pass this very certificate as their root.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


class ValidatorServer:
    """The validator gRPC endpoint of the emulator.

    Args:
        engine: the chain engine every service reads and the tx service writes.
        host: interface to bind.
        port: port to bind; 0 picks a free one (see :attr:`port` after :meth:`start`).
        chain_id: the chain id reported by GetLatestBlock/GetNodeInfo and required in signatures.
        tls: serve TLS with a self-signed certificate generated at start.
        min_gas_prices: the node's minimum gas prices by denom (per unit of gas) for transactions
            without clob messages; None for the venue's defaults, empty for none.

    Attributes:
        faults: injected gRPC status faults (all methods).
        tx_faults: the tx service's ``TxFaults`` (broadcast delay, forced sequence mismatches).
        certificate_pem: the PEM certificate clients must trust, when ``tls`` (after :meth:`start`).
        port: the bound port after :meth:`start`.
    """

    def __init__(
        self,
        engine: ChainEngine,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        chain_id: str = CHAIN_ID,
        tls: bool = False,
        min_gas_prices: Mapping[str, Decimal] | None = None,
    ) -> None:
        self.engine = engine
        self.host = host
        self.requested_port = port
        self.chain_id = chain_id
        self.tls = tls
        self.faults = GrpcFaults()
        self.tx_faults = TxFaults()
        self._tx_servicer = TxServicer(
            engine, chain_id=chain_id, faults=self.tx_faults, min_gas_prices=min_gas_prices
        )
        self.certificate_pem: bytes | None = None
        self.port: int | None = None
        self._server: Any = None

    @property
    def target(self) -> str:
        """``HOST:PORT`` to dial (``127.0.0.1`` when bound to every interface)."""
        if self.port is None:
            raise RuntimeError("the gRPC server is not started")
        host = self.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def _servicers(self) -> list[tuple[Any, object]]:
        pairs: list[tuple[Any, object]] = [
            (s.SERVICE, s) for s in query_servicers(self.engine, self.chain_id)
        ]
        pairs.append((tx_service_pb2.DESCRIPTOR.services_by_name["Service"], self._tx_servicer))
        return pairs

    async def start(self) -> None:
        """Bind and start serving.

        Raises:
            OSError: the address cannot be bound.
        """
        if self._server is not None:
            return
        server = grpc.aio.server(
            interceptors=[_FaultInterceptor(self.faults)],
            options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 4 << 20)],
        )
        pairs = self._servicers()
        handlers = [service_handler(service, servicer) for service, servicer in pairs]
        handlers.append(_Unimplemented({service.full_name for service, _ in pairs}))
        server.add_generic_rpc_handlers(handlers)
        address = (
            f"[{self.host}]:{self.requested_port}"
            if ":" in self.host
            else f"{self.host}:{self.requested_port}"
        )
        try:
            if self.tls:
                key_pem, cert_pem = self_signed_certificate(_cert_hosts(self.host))
                credentials = grpc.ssl_server_credentials([(key_pem, cert_pem)])
                port = server.add_secure_port(address, credentials)
                self.certificate_pem = cert_pem
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot bind the gRPC server to {address}: {exc}") from exc
        if not port:
            raise OSError(f"cannot bind the gRPC server to {address}")
        await server.start()
        self._server = server
        self.port = int(port)
        log.info("validator gRPC up on %s (%s)", self.target, "tls" if self.tls else "plaintext")

    async def stop(self, grace: float | None = 0.5) -> None:
        """Stop serving; calls still running get ``grace`` seconds before being cancelled."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)


def _cert_hosts(host: str) -> tuple[str, ...]:
    hosts = ["localhost", "127.0.0.1"]
    if host not in ("", "0.0.0.0", "::") and host not in hosts:
        hosts.append(host)
    return tuple(hosts)
