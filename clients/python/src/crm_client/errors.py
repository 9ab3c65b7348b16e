"""Reads the rich error model (AIP-193) from a failed call.

crm-service puts a ``google.rpc.Status`` in the ``grpc-status-details-bin`` trailer: every error
carries an ``ErrorInfo`` (domain ``crm-service``, a stable reason, ids as metadata); invalid input
adds a ``BadRequest`` naming each field; a failed precondition adds a ``PreconditionFailure``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

_KNOWN = {
    error_details_pb2.ErrorInfo.DESCRIPTOR.full_name: error_details_pb2.ErrorInfo,
    error_details_pb2.BadRequest.DESCRIPTOR.full_name: error_details_pb2.BadRequest,
    error_details_pb2.PreconditionFailure.DESCRIPTOR.full_name: error_details_pb2.PreconditionFailure,
    error_details_pb2.ResourceInfo.DESCRIPTOR.full_name: error_details_pb2.ResourceInfo,
    error_details_pb2.QuotaFailure.DESCRIPTOR.full_name: error_details_pb2.QuotaFailure,
    error_details_pb2.RetryInfo.DESCRIPTOR.full_name: error_details_pb2.RetryInfo,
    error_details_pb2.Help.DESCRIPTOR.full_name: error_details_pb2.Help,
    error_details_pb2.LocalizedMessage.DESCRIPTOR.full_name: error_details_pb2.LocalizedMessage,
    error_details_pb2.DebugInfo.DESCRIPTOR.full_name: error_details_pb2.DebugInfo,
    error_details_pb2.RequestInfo.DESCRIPTOR.full_name: error_details_pb2.RequestInfo,
}


# Every ErrorInfo.reason the service sends and what it means (the service's src/reason.rs; a test
# there keeps this list equal to it).
REASONS: Dict[str, str] = {
    "INVALID_FIELD": "a field breaks its rule; BadRequest names each field and why",
    "MALFORMED_REQUEST": "the bytes are not a message of the method's request type",
    "METADATA_TOO_LARGE": "the call's metadata exceeds 16 KiB",
    "REQUEST_ID_REUSED": "request_id was used with other arguments: use a new request_id",
    "MISSING_TOKEN": "no `authorization: Bearer <token>` header",
    "INVALID_TOKEN": "the token is expired, badly signed, or its claims are malformed",
    "ROLE_NOT_ALLOWED": "the token's roles do not allow the call; metadata lists the roles that do",
    "SELF_APPROVAL_FORBIDDEN": "the requester of a deletion cannot decide it",
    "NOT_ROUTED_TO_YOU": "the request is routed to the supervisors of the requester's teams (metadata `teams`) or an admin",
    "ADMIN_APPROVAL_REQUIRED": "the two-person rule needs an admin among the approvers: the remaining approval must be an admin's",
    "ALREADY_APPROVED": "you approved this request already; the two-person rule needs another approver",
    "OWNER_ASSIGNMENT_FORBIDDEN": "only a supervisor, admin or service may set another owner",
    "NOT_FOUND": "no such resource in the caller's tenant",
    "EXTERNAL_REF_TAKEN": "another live customer of the tenant has this external_ref",
    "CUSTOMER_NOT_DELETED": "restore or erase of a customer that is live",
    "ETAG_MISMATCH": "the etag sent is not the current one (metadata currentEtag): read again and retry",
    "TRANSACTION_CONFLICT": "the database broke a conflict between transactions: retry",
    "REQUEST_ID_IN_FLIGHT": "a call with the same request_id is still running: retry to get its answer",
    "CUSTOMER_DELETED": "the customer is deleted: restore it first",
    "CUSTOMER_HAS_BLOCKERS": "something blocks the deletion; PreconditionFailure lists each blocker and its resolution",
    "PREVIEW_STALE": "the customer's graph changed since the preview: preview again",
    "DELETION_ALREADY_REQUESTED": "the customer already has an open deletion request",
    "DELETION_REQUEST_NOT_PENDING": "only a PENDING request can be approved or rejected",
    "DELETION_REQUEST_NOT_OPEN": "only a PENDING or APPROVED request can be cancelled",
    "DELETION_REQUEST_EXPIRED": "the request's lifetime passed: submit a new one",
    "DELETION_NOT_APPROVED": "DeleteCustomer needs an APPROVED request",
    "DELETION_BATCH_NOT_PENDING": "only a PENDING batch can be approved or rejected",
    "DELETION_BATCH_NOT_OPEN": "only a PENDING or APPROVED batch can be cancelled",
    "DELETION_BATCH_EXPIRED": "the batch's lifetime passed undecided or unstarted: submit a new one",
    "DELETION_BATCH_NOT_APPROVED": "RunDeletionBatch needs an APPROVED batch",
    "DELETION_BATCH_NOT_COMPLETED": "RestoreDeletionBatch needs a COMPLETED batch",
    "TOO_MANY_OPEN_BATCHES": "the tenant has as many open batches as allowed (metadata limit): finish, cancel or let one lapse",
    "NOTHING_TO_DELETE": "every customer of the batch was excluded (the items say why): nothing to approve",
    "RESTORE_CONFLICT": "a live customer now holds the external_ref (metadata names it)",
    "REQUEST_KIND_MISMATCH": "a MERGE request is executed by MergeCustomers, a deletion request by DeleteCustomer",
    "DELETED_BY_MERGE": "the customer was merged into another: UnmergeCustomers brings it back, not RestoreCustomer",
    "NOT_MERGED": "UnmergeCustomers of a customer no merge deleted",
    "RETENTION_EXPIRED": "the retention passed: the customer or record is being erased",
    "INVALID_STATUS_TRANSITION": "the record's status cannot change that way",
    "RECORD_NOT_DELETABLE": "a business record (order, contract) is cancelled or terminated, not deleted",
    "RECORD_DELETED": "the record is deleted: restore it first",
    "RECORD_NOT_DELETED": "restore of a record that is live",
    "LEGAL_HOLD": "the customer is under legal hold: an admin must lift it first",
    "OPEN_ORDER": "an open order blocks the deletion: complete or cancel it",
    "ACTIVE_CONTRACT": "an active contract blocks the deletion: terminate it or let it expire",
    "ACTIVE_PROJECT": "an active project blocks the deletion: finish it",
    "UNKNOWN_RECORD_STATE": "a record in a state the policy table does not know: contact an administrator",
    "SERVER_OVERLOADED": "too many calls in flight: retry after RetryInfo's delay",
    "SERVER_SHUTTING_DOWN": "the server is stopping: retry on another replica",
    "DATABASE_UNAVAILABLE": "the database cannot be reached: retry later",
    "DATABASE_BUSY": "the database is busy (locks, SQLite's writer): retry with backoff",
    "DEADLINE_EXCEEDED": "the call's deadline passed; a write was rolled back",
    "INTERNAL": "a bug or an unexpected database failure; the server logged its cause",
}


@dataclass
class RichError:
    """A failed call: its status code and message, and the decoded ``google.rpc`` details."""

    code: grpc.StatusCode
    message: str
    error_info: Optional[error_details_pb2.ErrorInfo] = None
    bad_request: Optional[error_details_pb2.BadRequest] = None
    precondition_failure: Optional[error_details_pb2.PreconditionFailure] = None
    details: List[object] = field(default_factory=list)  # every detail, decoded where known

    @property
    def reason(self) -> str:
        """ErrorInfo.reason, e.g. ``INVALID_FIELD``; empty if the error carries no ErrorInfo."""
        return self.error_info.reason if self.error_info else ""

    @property
    def domain(self) -> str:
        return self.error_info.domain if self.error_info else ""

    @property
    def metadata(self) -> Dict[str, str]:
        return dict(self.error_info.metadata) if self.error_info else {}

    @property
    def field_violations(self) -> Dict[str, str]:
        """BadRequest's field violations, field path -> description."""
        if not self.bad_request:
            return {}
        return {v.field: v.description for v in self.bad_request.field_violations}

    @property
    def precondition_violations(self) -> List[error_details_pb2.PreconditionFailure.Violation]:
        return list(self.precondition_failure.violations) if self.precondition_failure else []

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.reason:
            text += f" [{self.domain}/{self.reason}]"
        for path, why in self.field_violations.items():
            text += f"\n  {path}: {why}"
        for v in self.precondition_violations:
            text += f"\n  {v.type} {v.subject}: {v.description}"
        return text


def _unpack(detail: any_pb2.Any) -> object:
    type_name = detail.TypeName()
    cls = _KNOWN.get(type_name)
    if cls is None:
        return detail
    message = cls()
    detail.Unpack(message)
    return message


def rich_error(error: grpc.RpcError) -> RichError:
    """Decodes the error of a failed call (the ``grpc.RpcError`` a stub raised).

    Works for errors without details too (e.g. from a proxy): then only code and message are set.
    """
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    result = RichError(code=code, message=message or "")
    try:
        status = rpc_status.from_call(error)
    except ValueError:  # code or message of the trailer disagree with the call's: ignore it
        status = None
    if status is None:
        return result
    for detail in status.details:
        decoded = _unpack(detail)
        result.details.append(decoded)
        if isinstance(decoded, error_details_pb2.ErrorInfo) and result.error_info is None:
            result.error_info = decoded
        elif isinstance(decoded, error_details_pb2.BadRequest) and result.bad_request is None:
            result.bad_request = decoded
        elif (
            isinstance(decoded, error_details_pb2.PreconditionFailure)
            and result.precondition_failure is None
        ):
            result.precondition_failure = decoded
    return result
