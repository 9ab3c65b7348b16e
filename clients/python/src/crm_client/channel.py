"""A gRPC channel that authenticates every call with a bearer token."""

from __future__ import annotations

import collections
from typing import Callable, Optional, Sequence, Tuple, Union

import grpc

from crm.v1 import (
    audit_pb2_grpc,
    batch_pb2_grpc,
    customer_pb2_grpc,
    deletion_pb2_grpc,
    events_pb2_grpc,
    records_pb2_grpc,
    settings_pb2_grpc,
)

Token = Union[str, Callable[[], str]]


class _ClientCallDetails(
    collections.namedtuple(
        "_ClientCallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class _BearerInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds ``authorization: Bearer <token>`` to each call (metadata keys are lowercase)."""

    def __init__(self, token: Token):
        self._token = token

    def _details(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        token = self._token() if callable(self._token) else self._token
        metadata = [(k, v) for k, v in (details.metadata or ()) if k != "authorization"]
        metadata.append(("authorization", f"Bearer {token}"))
        return _ClientCallDetails(
            details.method,
            details.timeout,
            metadata,
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


def connect(
    target: str,
    token: Optional[Token] = None,
    *,
    tls: bool = False,
    root_certificates: Optional[bytes] = None,
    options: Optional[Sequence[Tuple[str, object]]] = None,
) -> grpc.Channel:
    """Opens a channel to ``target`` (``host:port``).

    ``token`` is a JWT, or a function returning one (called before every call, so it can refresh);
    without it, only health and reflection answer. ``tls=True`` uses TLS with the system roots, or
    with ``root_certificates`` (PEM bytes). Close the channel (or use it as a context manager) when
    done.
    """
    if tls:
        channel = grpc.secure_channel(
            target, grpc.ssl_channel_credentials(root_certificates), options=options
        )
    else:
        channel = grpc.insecure_channel(target, options=options)
    if token is None:
        return channel
    return grpc.intercept_channel(channel, _BearerInterceptor(token))


class Client:
    """The crm.v1 service stubs on one authenticated channel.

    >>> with Client("127.0.0.1:50051", token) as crm:
    ...     crm.customers.GetCustomer(customer_pb2.GetCustomerRequest(customer_id=id))
    """

    def __init__(self, target: str, token: Optional[Token] = None, **kwargs):
        self.channel = connect(target, token, **kwargs)
        self.customers = customer_pb2_grpc.CustomerServiceStub(self.channel)
        self.records = records_pb2_grpc.RecordServiceStub(self.channel)
        self.deletions = deletion_pb2_grpc.DeletionApprovalServiceStub(self.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(self.channel)
        self.events = events_pb2_grpc.CustomerEventServiceStub(self.channel)
        self.batches = batch_pb2_grpc.DeletionBatchServiceStub(self.channel)
        self.settings = settings_pb2_grpc.TenantSettingsServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
