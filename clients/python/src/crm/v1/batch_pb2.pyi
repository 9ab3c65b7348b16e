import datetime

from crm.v1 import customer_pb2 as _customer_pb2
from crm.v1 import deletion_pb2 as _deletion_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeletionBatchState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELETION_BATCH_STATE_UNSPECIFIED: _ClassVar[DeletionBatchState]
    DELETION_BATCH_STATE_PENDING: _ClassVar[DeletionBatchState]
    DELETION_BATCH_STATE_APPROVED: _ClassVar[DeletionBatchState]
    DELETION_BATCH_STATE_REJECTED: _ClassVar[DeletionBatchState]
    DELETION_BATCH_STATE_CANCELLED: _ClassVar[DeletionBatchState]
    DELETION_BATCH_STATE_EXPIRED: _ClassVar[DeletionBatchState]
    DELETION_BATCH_STATE_RUNNING: _ClassVar[DeletionBatchState]
    DELETION_BATCH_STATE_COMPLETED: _ClassVar[DeletionBatchState]
    DELETION_BATCH_STATE_RESTORING: _ClassVar[DeletionBatchState]
    DELETION_BATCH_STATE_RESTORED: _ClassVar[DeletionBatchState]

class DeletionBatchItemState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELETION_BATCH_ITEM_STATE_UNSPECIFIED: _ClassVar[DeletionBatchItemState]
    DELETION_BATCH_ITEM_STATE_QUEUED: _ClassVar[DeletionBatchItemState]
    DELETION_BATCH_ITEM_STATE_EXCLUDED: _ClassVar[DeletionBatchItemState]
    DELETION_BATCH_ITEM_STATE_DELETED: _ClassVar[DeletionBatchItemState]
    DELETION_BATCH_ITEM_STATE_STALE: _ClassVar[DeletionBatchItemState]
    DELETION_BATCH_ITEM_STATE_BLOCKED: _ClassVar[DeletionBatchItemState]
    DELETION_BATCH_ITEM_STATE_RESTORED: _ClassVar[DeletionBatchItemState]
    DELETION_BATCH_ITEM_STATE_RESTORE_FAILED: _ClassVar[DeletionBatchItemState]
DELETION_BATCH_STATE_UNSPECIFIED: DeletionBatchState
DELETION_BATCH_STATE_PENDING: DeletionBatchState
DELETION_BATCH_STATE_APPROVED: DeletionBatchState
DELETION_BATCH_STATE_REJECTED: DeletionBatchState
DELETION_BATCH_STATE_CANCELLED: DeletionBatchState
DELETION_BATCH_STATE_EXPIRED: DeletionBatchState
DELETION_BATCH_STATE_RUNNING: DeletionBatchState
DELETION_BATCH_STATE_COMPLETED: DeletionBatchState
DELETION_BATCH_STATE_RESTORING: DeletionBatchState
DELETION_BATCH_STATE_RESTORED: DeletionBatchState
DELETION_BATCH_ITEM_STATE_UNSPECIFIED: DeletionBatchItemState
DELETION_BATCH_ITEM_STATE_QUEUED: DeletionBatchItemState
DELETION_BATCH_ITEM_STATE_EXCLUDED: DeletionBatchItemState
DELETION_BATCH_ITEM_STATE_DELETED: DeletionBatchItemState
DELETION_BATCH_ITEM_STATE_STALE: DeletionBatchItemState
DELETION_BATCH_ITEM_STATE_BLOCKED: DeletionBatchItemState
DELETION_BATCH_ITEM_STATE_RESTORED: DeletionBatchItemState
DELETION_BATCH_ITEM_STATE_RESTORE_FAILED: DeletionBatchItemState

class DeletionBatchFilter(_message.Message):
    __slots__ = ("query", "industry", "owner_id", "lifecycle_stage", "status")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    INDUSTRY_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_STAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    query: str
    industry: str
    owner_id: str
    lifecycle_stage: _customer_pb2.LifecycleStage
    status: _customer_pb2.CustomerStatus
    def __init__(self, query: _Optional[str] = ..., industry: _Optional[str] = ..., owner_id: _Optional[str] = ..., lifecycle_stage: _Optional[_Union[_customer_pb2.LifecycleStage, str]] = ..., status: _Optional[_Union[_customer_pb2.CustomerStatus, str]] = ...) -> None: ...

class DeletionBatchExclusion(_message.Message):
    __slots__ = ("reason", "count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: str
    count: int
    def __init__(self, reason: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class DeletionBatchImpact(_message.Message):
    __slots__ = ("impacts", "warnings", "included_count", "excluded_count", "exclusions", "cascade_count", "keep_count")
    IMPACTS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    INCLUDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    EXCLUSIONS_FIELD_NUMBER: _ClassVar[int]
    CASCADE_COUNT_FIELD_NUMBER: _ClassVar[int]
    KEEP_COUNT_FIELD_NUMBER: _ClassVar[int]
    impacts: _containers.RepeatedCompositeFieldContainer[_deletion_pb2.RelationImpact]
    warnings: _containers.RepeatedCompositeFieldContainer[_deletion_pb2.PipelineWarning]
    included_count: int
    excluded_count: int
    exclusions: _containers.RepeatedCompositeFieldContainer[DeletionBatchExclusion]
    cascade_count: int
    keep_count: int
    def __init__(self, impacts: _Optional[_Iterable[_Union[_deletion_pb2.RelationImpact, _Mapping]]] = ..., warnings: _Optional[_Iterable[_Union[_deletion_pb2.PipelineWarning, _Mapping]]] = ..., included_count: _Optional[int] = ..., excluded_count: _Optional[int] = ..., exclusions: _Optional[_Iterable[_Union[DeletionBatchExclusion, _Mapping]]] = ..., cascade_count: _Optional[int] = ..., keep_count: _Optional[int] = ...) -> None: ...

class DeletionBatchProgress(_message.Message):
    __slots__ = ("total_items", "queued", "excluded", "deleted", "stale", "blocked", "restored", "restore_failed", "deleted_records", "restored_records")
    TOTAL_ITEMS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    RESTORE_FAILED_FIELD_NUMBER: _ClassVar[int]
    DELETED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    RESTORED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    total_items: int
    queued: int
    excluded: int
    deleted: int
    stale: int
    blocked: int
    restored: int
    restore_failed: int
    deleted_records: int
    restored_records: int
    def __init__(self, total_items: _Optional[int] = ..., queued: _Optional[int] = ..., excluded: _Optional[int] = ..., deleted: _Optional[int] = ..., stale: _Optional[int] = ..., blocked: _Optional[int] = ..., restored: _Optional[int] = ..., restore_failed: _Optional[int] = ..., deleted_records: _Optional[int] = ..., restored_records: _Optional[int] = ...) -> None: ...

class DeletionBatch(_message.Message):
    __slots__ = ("id", "requester_id", "reason", "state", "impact", "progress", "decided_by", "decision_comment", "decide_time", "expire_time", "create_time", "update_time", "started_by", "start_time", "finish_time", "restore_start_time", "restore_finish_time", "etag", "approval")
    ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    IMPACT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    DECISION_COMMENT_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    STARTED_BY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    RESTORE_START_TIME_FIELD_NUMBER: _ClassVar[int]
    RESTORE_FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    id: str
    requester_id: str
    reason: str
    state: DeletionBatchState
    impact: DeletionBatchImpact
    progress: DeletionBatchProgress
    decided_by: str
    decision_comment: str
    decide_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    started_by: str
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    restore_start_time: _timestamp_pb2.Timestamp
    restore_finish_time: _timestamp_pb2.Timestamp
    etag: str
    approval: _deletion_pb2.ApprovalStatus
    def __init__(self, id: _Optional[str] = ..., requester_id: _Optional[str] = ..., reason: _Optional[str] = ..., state: _Optional[_Union[DeletionBatchState, str]] = ..., impact: _Optional[_Union[DeletionBatchImpact, _Mapping]] = ..., progress: _Optional[_Union[DeletionBatchProgress, _Mapping]] = ..., decided_by: _Optional[str] = ..., decision_comment: _Optional[str] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_by: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., restore_start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., restore_finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., approval: _Optional[_Union[_deletion_pb2.ApprovalStatus, _Mapping]] = ...) -> None: ...

class DeletionBatchItem(_message.Message):
    __slots__ = ("customer_id", "customer_etag", "state", "excluded_reason", "blockers", "deletion_id", "deleted_records", "restore_problem", "restore_reason", "update_time")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ETAG_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_REASON_FIELD_NUMBER: _ClassVar[int]
    BLOCKERS_FIELD_NUMBER: _ClassVar[int]
    DELETION_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    RESTORE_PROBLEM_FIELD_NUMBER: _ClassVar[int]
    RESTORE_REASON_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    customer_etag: str
    state: DeletionBatchItemState
    excluded_reason: str
    blockers: _containers.RepeatedCompositeFieldContainer[_deletion_pb2.DeletionBlocker]
    deletion_id: str
    deleted_records: int
    restore_problem: str
    restore_reason: str
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, customer_id: _Optional[str] = ..., customer_etag: _Optional[str] = ..., state: _Optional[_Union[DeletionBatchItemState, str]] = ..., excluded_reason: _Optional[str] = ..., blockers: _Optional[_Iterable[_Union[_deletion_pb2.DeletionBlocker, _Mapping]]] = ..., deletion_id: _Optional[str] = ..., deleted_records: _Optional[int] = ..., restore_problem: _Optional[str] = ..., restore_reason: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubmitDeletionBatchRequest(_message.Message):
    __slots__ = ("customer_ids", "filter", "reason", "request_id")
    CUSTOMER_IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    customer_ids: _containers.RepeatedScalarFieldContainer[str]
    filter: DeletionBatchFilter
    reason: str
    request_id: str
    def __init__(self, customer_ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[DeletionBatchFilter, _Mapping]] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SubmitDeletionBatchResponse(_message.Message):
    __slots__ = ("batch", "items")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    batch: DeletionBatch
    items: _containers.RepeatedCompositeFieldContainer[DeletionBatchItem]
    def __init__(self, batch: _Optional[_Union[DeletionBatch, _Mapping]] = ..., items: _Optional[_Iterable[_Union[DeletionBatchItem, _Mapping]]] = ...) -> None: ...

class GetDeletionBatchRequest(_message.Message):
    __slots__ = ("batch_id",)
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    def __init__(self, batch_id: _Optional[str] = ...) -> None: ...

class GetDeletionBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: DeletionBatch
    def __init__(self, batch: _Optional[_Union[DeletionBatch, _Mapping]] = ...) -> None: ...

class ListDeletionBatchesRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state", "awaiting_my_decision")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AWAITING_MY_DECISION_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: DeletionBatchState
    awaiting_my_decision: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[DeletionBatchState, str]] = ..., awaiting_my_decision: _Optional[bool] = ...) -> None: ...

class ListDeletionBatchesResponse(_message.Message):
    __slots__ = ("batches", "next_page_token")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    batches: _containers.RepeatedCompositeFieldContainer[DeletionBatch]
    next_page_token: str
    def __init__(self, batches: _Optional[_Iterable[_Union[DeletionBatch, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListDeletionBatchItemsRequest(_message.Message):
    __slots__ = ("batch_id", "page_size", "page_token", "state")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    page_size: int
    page_token: str
    state: DeletionBatchItemState
    def __init__(self, batch_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[DeletionBatchItemState, str]] = ...) -> None: ...

class ListDeletionBatchItemsResponse(_message.Message):
    __slots__ = ("items", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[DeletionBatchItem]
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[DeletionBatchItem, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ApproveDeletionBatchRequest(_message.Message):
    __slots__ = ("batch_id", "comment", "request_id")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    comment: str
    request_id: str
    def __init__(self, batch_id: _Optional[str] = ..., comment: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ApproveDeletionBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: DeletionBatch
    def __init__(self, batch: _Optional[_Union[DeletionBatch, _Mapping]] = ...) -> None: ...

class RejectDeletionBatchRequest(_message.Message):
    __slots__ = ("batch_id", "comment", "request_id")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    comment: str
    request_id: str
    def __init__(self, batch_id: _Optional[str] = ..., comment: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RejectDeletionBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: DeletionBatch
    def __init__(self, batch: _Optional[_Union[DeletionBatch, _Mapping]] = ...) -> None: ...

class CancelDeletionBatchRequest(_message.Message):
    __slots__ = ("batch_id", "comment", "request_id")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    comment: str
    request_id: str
    def __init__(self, batch_id: _Optional[str] = ..., comment: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CancelDeletionBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: DeletionBatch
    def __init__(self, batch: _Optional[_Union[DeletionBatch, _Mapping]] = ...) -> None: ...

class RunDeletionBatchRequest(_message.Message):
    __slots__ = ("batch_id", "request_id")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    request_id: str
    def __init__(self, batch_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class RunDeletionBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: DeletionBatch
    def __init__(self, batch: _Optional[_Union[DeletionBatch, _Mapping]] = ...) -> None: ...

class RestoreDeletionBatchRequest(_message.Message):
    __slots__ = ("batch_id", "validate_only", "request_id")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    validate_only: bool
    request_id: str
    def __init__(self, batch_id: _Optional[str] = ..., validate_only: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class RestoreDeletionBatchResponse(_message.Message):
    __slots__ = ("batch", "items")
    BATCH_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    batch: DeletionBatch
    items: _containers.RepeatedCompositeFieldContainer[DeletionBatchItem]
    def __init__(self, batch: _Optional[_Union[DeletionBatch, _Mapping]] = ..., items: _Optional[_Iterable[_Union[DeletionBatchItem, _Mapping]]] = ...) -> None: ...
