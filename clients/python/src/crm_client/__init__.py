"""Hand-written helpers for the crm-service gRPC API (package ``crm.v1``).

The generated modules live in the ``crm.v1`` package of this distribution
(``crm.v1.customer_pb2``, ``crm.v1.customer_pb2_grpc``, ...); this package adds:

* :func:`connect` -- a channel that sends ``authorization: Bearer <token>`` on every call;
* :class:`Client` -- the five service stubs on one channel;
* :func:`rich_error` -- the ``google.rpc.Status`` details of a failed call (ErrorInfo,
  BadRequest, PreconditionFailure, ...) as a :class:`RichError`.
"""

from crm_client.channel import Client, connect
from crm_client.errors import RichError, rich_error

__all__ = ["Client", "RichError", "connect", "rich_error"]
