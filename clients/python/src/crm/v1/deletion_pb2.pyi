import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeletionRequestKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELETION_REQUEST_KIND_UNSPECIFIED: _ClassVar[DeletionRequestKind]
    DELETION_REQUEST_KIND_DELETE: _ClassVar[DeletionRequestKind]
    DELETION_REQUEST_KIND_MERGE: _ClassVar[DeletionRequestKind]

class DeletionPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELETION_POLICY_UNSPECIFIED: _ClassVar[DeletionPolicy]
    DELETION_POLICY_CASCADE: _ClassVar[DeletionPolicy]
    DELETION_POLICY_BLOCK: _ClassVar[DeletionPolicy]
    DELETION_POLICY_KEEP: _ClassVar[DeletionPolicy]

class DeletionRequestState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELETION_REQUEST_STATE_UNSPECIFIED: _ClassVar[DeletionRequestState]
    DELETION_REQUEST_STATE_PENDING: _ClassVar[DeletionRequestState]
    DELETION_REQUEST_STATE_APPROVED: _ClassVar[DeletionRequestState]
    DELETION_REQUEST_STATE_REJECTED: _ClassVar[DeletionRequestState]
    DELETION_REQUEST_STATE_CANCELLED: _ClassVar[DeletionRequestState]
    DELETION_REQUEST_STATE_EXPIRED: _ClassVar[DeletionRequestState]
    DELETION_REQUEST_STATE_STALE: _ClassVar[DeletionRequestState]
    DELETION_REQUEST_STATE_EXECUTED: _ClassVar[DeletionRequestState]
DELETION_REQUEST_KIND_UNSPECIFIED: DeletionRequestKind
DELETION_REQUEST_KIND_DELETE: DeletionRequestKind
DELETION_REQUEST_KIND_MERGE: DeletionRequestKind
DELETION_POLICY_UNSPECIFIED: DeletionPolicy
DELETION_POLICY_CASCADE: DeletionPolicy
DELETION_POLICY_BLOCK: DeletionPolicy
DELETION_POLICY_KEEP: DeletionPolicy
DELETION_REQUEST_STATE_UNSPECIFIED: DeletionRequestState
DELETION_REQUEST_STATE_PENDING: DeletionRequestState
DELETION_REQUEST_STATE_APPROVED: DeletionRequestState
DELETION_REQUEST_STATE_REJECTED: DeletionRequestState
DELETION_REQUEST_STATE_CANCELLED: DeletionRequestState
DELETION_REQUEST_STATE_EXPIRED: DeletionRequestState
DELETION_REQUEST_STATE_STALE: DeletionRequestState
DELETION_REQUEST_STATE_EXECUTED: DeletionRequestState

class MergeTerms(_message.Message):
    __slots__ = ("survivor_id", "survivor_etag", "take_fields")
    SURVIVOR_ID_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_ETAG_FIELD_NUMBER: _ClassVar[int]
    TAKE_FIELDS_FIELD_NUMBER: _ClassVar[int]
    survivor_id: str
    survivor_etag: str
    take_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, survivor_id: _Optional[str] = ..., survivor_etag: _Optional[str] = ..., take_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class RelationImpact(_message.Message):
    __slots__ = ("relation", "state", "policy", "count", "sample_ids")
    RELATION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    relation: str
    state: str
    policy: DeletionPolicy
    count: int
    sample_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, relation: _Optional[str] = ..., state: _Optional[str] = ..., policy: _Optional[_Union[DeletionPolicy, str]] = ..., count: _Optional[int] = ..., sample_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeletionBlocker(_message.Message):
    __slots__ = ("reason", "relation", "count", "sample_ids", "resolution")
    REASON_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_IDS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    reason: str
    relation: str
    count: int
    sample_ids: _containers.RepeatedScalarFieldContainer[str]
    resolution: str
    def __init__(self, reason: _Optional[str] = ..., relation: _Optional[str] = ..., count: _Optional[int] = ..., sample_ids: _Optional[_Iterable[str]] = ..., resolution: _Optional[str] = ...) -> None: ...

class PipelineWarning(_message.Message):
    __slots__ = ("currency", "open_amount_minor", "open_deals", "open_amount_saturated")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    OPEN_AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    OPEN_DEALS_FIELD_NUMBER: _ClassVar[int]
    OPEN_AMOUNT_SATURATED_FIELD_NUMBER: _ClassVar[int]
    currency: str
    open_amount_minor: int
    open_deals: int
    open_amount_saturated: bool
    def __init__(self, currency: _Optional[str] = ..., open_amount_minor: _Optional[int] = ..., open_deals: _Optional[int] = ..., open_amount_saturated: _Optional[bool] = ...) -> None: ...

class DeletionPreview(_message.Message):
    __slots__ = ("customer_id", "etag", "impacts", "blockers", "warnings", "approval_required", "cascade_count", "keep_count", "alternatives", "approvals_required", "admin_approval_required", "approval_reasons")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    IMPACTS_FIELD_NUMBER: _ClassVar[int]
    BLOCKERS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    CASCADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    KEEP_COUNT_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    ADMIN_APPROVAL_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_REASONS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    etag: str
    impacts: _containers.RepeatedCompositeFieldContainer[RelationImpact]
    blockers: _containers.RepeatedCompositeFieldContainer[DeletionBlocker]
    warnings: _containers.RepeatedCompositeFieldContainer[PipelineWarning]
    approval_required: bool
    cascade_count: int
    keep_count: int
    alternatives: _containers.RepeatedCompositeFieldContainer[DeletionAlternative]
    approvals_required: int
    admin_approval_required: bool
    approval_reasons: _containers.RepeatedCompositeFieldContainer[ApprovalReason]
    def __init__(self, customer_id: _Optional[str] = ..., etag: _Optional[str] = ..., impacts: _Optional[_Iterable[_Union[RelationImpact, _Mapping]]] = ..., blockers: _Optional[_Iterable[_Union[DeletionBlocker, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[PipelineWarning, _Mapping]]] = ..., approval_required: _Optional[bool] = ..., cascade_count: _Optional[int] = ..., keep_count: _Optional[int] = ..., alternatives: _Optional[_Iterable[_Union[DeletionAlternative, _Mapping]]] = ..., approvals_required: _Optional[int] = ..., admin_approval_required: _Optional[bool] = ..., approval_reasons: _Optional[_Iterable[_Union[ApprovalReason, _Mapping]]] = ...) -> None: ...

class ApprovalReason(_message.Message):
    __slots__ = ("code", "description")
    CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    code: str
    description: str
    def __init__(self, code: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class Approval(_message.Message):
    __slots__ = ("approver_id", "admin", "approve_time", "comment")
    APPROVER_ID_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    APPROVE_TIME_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    approver_id: str
    admin: bool
    approve_time: _timestamp_pb2.Timestamp
    comment: str
    def __init__(self, approver_id: _Optional[str] = ..., admin: _Optional[bool] = ..., approve_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., comment: _Optional[str] = ...) -> None: ...

class ApprovalStatus(_message.Message):
    __slots__ = ("routed_to_teams", "approvals_required", "admin_approval_required", "reasons", "approvals", "waiting_for", "escalate_time")
    ROUTED_TO_TEAMS_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    ADMIN_APPROVAL_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    APPROVALS_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    ESCALATE_TIME_FIELD_NUMBER: _ClassVar[int]
    routed_to_teams: _containers.RepeatedScalarFieldContainer[str]
    approvals_required: int
    admin_approval_required: bool
    reasons: _containers.RepeatedCompositeFieldContainer[ApprovalReason]
    approvals: _containers.RepeatedCompositeFieldContainer[Approval]
    waiting_for: str
    escalate_time: _timestamp_pb2.Timestamp
    def __init__(self, routed_to_teams: _Optional[_Iterable[str]] = ..., approvals_required: _Optional[int] = ..., admin_approval_required: _Optional[bool] = ..., reasons: _Optional[_Iterable[_Union[ApprovalReason, _Mapping]]] = ..., approvals: _Optional[_Iterable[_Union[Approval, _Mapping]]] = ..., waiting_for: _Optional[str] = ..., escalate_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeletionAlternative(_message.Message):
    __slots__ = ("code", "explanation")
    CODE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    code: str
    explanation: str
    def __init__(self, code: _Optional[str] = ..., explanation: _Optional[str] = ...) -> None: ...

class DeletionRequest(_message.Message):
    __slots__ = ("id", "customer_id", "requester_id", "reason", "preview", "state", "decided_by", "decision_comment", "decide_time", "expire_time", "create_time", "execute_time", "etag", "kind", "merge", "approval")
    ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECISION_COMMENT_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXECUTE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MERGE_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    customer_id: str
    requester_id: str
    reason: str
    preview: DeletionPreview
    state: DeletionRequestState
    decided_by: str
    decision_comment: str
    decide_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    execute_time: _timestamp_pb2.Timestamp
    etag: str
    kind: DeletionRequestKind
    merge: MergeTerms
    approval: ApprovalStatus
    def __init__(self, id: _Optional[str] = ..., customer_id: _Optional[str] = ..., requester_id: _Optional[str] = ..., reason: _Optional[str] = ..., preview: _Optional[_Union[DeletionPreview, _Mapping]] = ..., state: _Optional[_Union[DeletionRequestState, str]] = ..., decided_by: _Optional[str] = ..., decision_comment: _Optional[str] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., execute_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., kind: _Optional[_Union[DeletionRequestKind, str]] = ..., merge: _Optional[_Union[MergeTerms, _Mapping]] = ..., approval: _Optional[_Union[ApprovalStatus, _Mapping]] = ...) -> None: ...

class SubmitDeletionRequestRequest(_message.Message):
    __slots__ = ("customer_id", "preview_etag", "reason", "request_id")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_ETAG_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    preview_etag: str
    reason: str
    request_id: str
    def __init__(self, customer_id: _Optional[str] = ..., preview_etag: _Optional[str] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SubmitDeletionRequestResponse(_message.Message):
    __slots__ = ("deletion_request",)
    DELETION_REQUEST_FIELD_NUMBER: _ClassVar[int]
    deletion_request: DeletionRequest
    def __init__(self, deletion_request: _Optional[_Union[DeletionRequest, _Mapping]] = ...) -> None: ...

class GetDeletionRequestRequest(_message.Message):
    __slots__ = ("deletion_request_id",)
    DELETION_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    deletion_request_id: str
    def __init__(self, deletion_request_id: _Optional[str] = ...) -> None: ...

class GetDeletionRequestResponse(_message.Message):
    __slots__ = ("deletion_request",)
    DELETION_REQUEST_FIELD_NUMBER: _ClassVar[int]
    deletion_request: DeletionRequest
    def __init__(self, deletion_request: _Optional[_Union[DeletionRequest, _Mapping]] = ...) -> None: ...

class ListDeletionRequestsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state", "customer_id", "awaiting_my_decision")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AWAITING_MY_DECISION_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: DeletionRequestState
    customer_id: str
    awaiting_my_decision: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[DeletionRequestState, str]] = ..., customer_id: _Optional[str] = ..., awaiting_my_decision: _Optional[bool] = ...) -> None: ...

class ListDeletionRequestsResponse(_message.Message):
    __slots__ = ("deletion_requests", "next_page_token")
    DELETION_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deletion_requests: _containers.RepeatedCompositeFieldContainer[DeletionRequest]
    next_page_token: str
    def __init__(self, deletion_requests: _Optional[_Iterable[_Union[DeletionRequest, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ApproveDeletionRequestRequest(_message.Message):
    __slots__ = ("deletion_request_id", "comment", "request_id")
    DELETION_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    deletion_request_id: str
    comment: str
    request_id: str
    def __init__(self, deletion_request_id: _Optional[str] = ..., comment: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ApproveDeletionRequestResponse(_message.Message):
    __slots__ = ("deletion_request",)
    DELETION_REQUEST_FIELD_NUMBER: _ClassVar[int]
    deletion_request: DeletionRequest
    def __init__(self, deletion_request: _Optional[_Union[DeletionRequest, _Mapping]] = ...) -> None: ...

class RejectDeletionRequestRequest(_message.Message):
    __slots__ = ("deletion_request_id", "comment", "request_id")
    DELETION_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    deletion_request_id: str
    comment: str
    request_id: str
    def __init__(self, deletion_request_id: _Optional[str] = ..., comment: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RejectDeletionRequestResponse(_message.Message):
    __slots__ = ("deletion_request",)
    DELETION_REQUEST_FIELD_NUMBER: _ClassVar[int]
    deletion_request: DeletionRequest
    def __init__(self, deletion_request: _Optional[_Union[DeletionRequest, _Mapping]] = ...) -> None: ...

class CancelDeletionRequestRequest(_message.Message):
    __slots__ = ("deletion_request_id", "comment", "request_id")
    DELETION_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    deletion_request_id: str
    comment: str
    request_id: str
    def __init__(self, deletion_request_id: _Optional[str] = ..., comment: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CancelDeletionRequestResponse(_message.Message):
    __slots__ = ("deletion_request",)
    DELETION_REQUEST_FIELD_NUMBER: _ClassVar[int]
    deletion_request: DeletionRequest
    def __init__(self, deletion_request: _Optional[_Union[DeletionRequest, _Mapping]] = ...) -> None: ...

class SubmitMergeRequestRequest(_message.Message):
    __slots__ = ("duplicate_id", "survivor_id", "duplicate_etag", "survivor_etag", "take_fields", "reason", "request_id")
    DUPLICATE_ID_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_ETAG_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_ETAG_FIELD_NUMBER: _ClassVar[int]
    TAKE_FIELDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    duplicate_id: str
    survivor_id: str
    duplicate_etag: str
    survivor_etag: str
    take_fields: _containers.RepeatedScalarFieldContainer[str]
    reason: str
    request_id: str
    def __init__(self, duplicate_id: _Optional[str] = ..., survivor_id: _Optional[str] = ..., duplicate_etag: _Optional[str] = ..., survivor_etag: _Optional[str] = ..., take_fields: _Optional[_Iterable[str]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SubmitMergeRequestResponse(_message.Message):
    __slots__ = ("deletion_request",)
    DELETION_REQUEST_FIELD_NUMBER: _ClassVar[int]
    deletion_request: DeletionRequest
    def __init__(self, deletion_request: _Optional[_Union[DeletionRequest, _Mapping]] = ...) -> None: ...
