import datetime

from crm.v1 import deletion_pb2 as _deletion_pb2
from crm.v1 import records_pb2 as _records_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LifecycleStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LIFECYCLE_STAGE_UNSPECIFIED: _ClassVar[LifecycleStage]
    LIFECYCLE_STAGE_LEAD: _ClassVar[LifecycleStage]
    LIFECYCLE_STAGE_PROSPECT: _ClassVar[LifecycleStage]
    LIFECYCLE_STAGE_CUSTOMER: _ClassVar[LifecycleStage]

class CustomerStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CUSTOMER_STATUS_UNSPECIFIED: _ClassVar[CustomerStatus]
    CUSTOMER_STATUS_ACTIVE: _ClassVar[CustomerStatus]
    CUSTOMER_STATUS_INACTIVE: _ClassVar[CustomerStatus]

class DuplicateMatch(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DUPLICATE_MATCH_UNSPECIFIED: _ClassVar[DuplicateMatch]
    DUPLICATE_MATCH_EXTERNAL_REF: _ClassVar[DuplicateMatch]
    DUPLICATE_MATCH_EMAIL: _ClassVar[DuplicateMatch]
    DUPLICATE_MATCH_PHONE: _ClassVar[DuplicateMatch]
    DUPLICATE_MATCH_NAME: _ClassVar[DuplicateMatch]
LIFECYCLE_STAGE_UNSPECIFIED: LifecycleStage
LIFECYCLE_STAGE_LEAD: LifecycleStage
LIFECYCLE_STAGE_PROSPECT: LifecycleStage
LIFECYCLE_STAGE_CUSTOMER: LifecycleStage
CUSTOMER_STATUS_UNSPECIFIED: CustomerStatus
CUSTOMER_STATUS_ACTIVE: CustomerStatus
CUSTOMER_STATUS_INACTIVE: CustomerStatus
DUPLICATE_MATCH_UNSPECIFIED: DuplicateMatch
DUPLICATE_MATCH_EXTERNAL_REF: DuplicateMatch
DUPLICATE_MATCH_EMAIL: DuplicateMatch
DUPLICATE_MATCH_PHONE: DuplicateMatch
DUPLICATE_MATCH_NAME: DuplicateMatch

class Customer(_message.Message):
    __slots__ = ("id", "name", "phone", "email", "industry", "owner_id", "lifecycle_stage", "status", "external_ref", "legal_hold", "create_time", "update_time", "delete_time", "purge_time", "etag", "deletion_id", "key_account")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    INDUSTRY_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_STAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_REF_FIELD_NUMBER: _ClassVar[int]
    LEGAL_HOLD_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    DELETE_TIME_FIELD_NUMBER: _ClassVar[int]
    PURGE_TIME_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    DELETION_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    phone: str
    email: str
    industry: str
    owner_id: str
    lifecycle_stage: LifecycleStage
    status: CustomerStatus
    external_ref: str
    legal_hold: bool
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    delete_time: _timestamp_pb2.Timestamp
    purge_time: _timestamp_pb2.Timestamp
    etag: str
    deletion_id: str
    key_account: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., phone: _Optional[str] = ..., email: _Optional[str] = ..., industry: _Optional[str] = ..., owner_id: _Optional[str] = ..., lifecycle_stage: _Optional[_Union[LifecycleStage, str]] = ..., status: _Optional[_Union[CustomerStatus, str]] = ..., external_ref: _Optional[str] = ..., legal_hold: _Optional[bool] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., purge_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., etag: _Optional[str] = ..., deletion_id: _Optional[str] = ..., key_account: _Optional[bool] = ...) -> None: ...

class CreateCustomerRequest(_message.Message):
    __slots__ = ("customer", "request_id")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    request_id: str
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateCustomerResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class BatchCreateCustomersRequest(_message.Message):
    __slots__ = ("requests", "request_id")
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[CreateCustomerRequest]
    request_id: str
    def __init__(self, requests: _Optional[_Iterable[_Union[CreateCustomerRequest, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class BatchCreateCustomersResponse(_message.Message):
    __slots__ = ("customers",)
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    customers: _containers.RepeatedCompositeFieldContainer[Customer]
    def __init__(self, customers: _Optional[_Iterable[_Union[Customer, _Mapping]]] = ...) -> None: ...

class GetCustomerRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class GetCustomerResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class ListCustomersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "show_deleted", "query", "industry", "owner_id", "lifecycle_stage", "status")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    SHOW_DELETED_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    INDUSTRY_FIELD_NUMBER: _ClassVar[int]
    OWNER_ID_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_STAGE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    show_deleted: bool
    query: str
    industry: str
    owner_id: str
    lifecycle_stage: LifecycleStage
    status: CustomerStatus
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., show_deleted: _Optional[bool] = ..., query: _Optional[str] = ..., industry: _Optional[str] = ..., owner_id: _Optional[str] = ..., lifecycle_stage: _Optional[_Union[LifecycleStage, str]] = ..., status: _Optional[_Union[CustomerStatus, str]] = ...) -> None: ...

class ListCustomersResponse(_message.Message):
    __slots__ = ("customers", "next_page_token")
    CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customers: _containers.RepeatedCompositeFieldContainer[Customer]
    next_page_token: str
    def __init__(self, customers: _Optional[_Iterable[_Union[Customer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListDeletedCustomersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "requested_by", "deletion_request_id", "deletion_batch_id", "purge_before")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    DELETION_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DELETION_BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PURGE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    requested_by: str
    deletion_request_id: str
    deletion_batch_id: str
    purge_before: _timestamp_pb2.Timestamp
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., requested_by: _Optional[str] = ..., deletion_request_id: _Optional[str] = ..., deletion_batch_id: _Optional[str] = ..., purge_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeletedCustomersResponse(_message.Message):
    __slots__ = ("deleted_customers", "next_page_token")
    DELETED_CUSTOMERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deleted_customers: _containers.RepeatedCompositeFieldContainer[DeletedCustomer]
    next_page_token: str
    def __init__(self, deleted_customers: _Optional[_Iterable[_Union[DeletedCustomer, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeletedCustomer(_message.Message):
    __slots__ = ("customer", "requested_by", "approved_by", "deletion_request_id", "deletion_batch_id", "deleted_records", "merged_into_customer_id")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    DELETION_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    DELETION_BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    MERGED_INTO_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    requested_by: str
    approved_by: str
    deletion_request_id: str
    deletion_batch_id: str
    deleted_records: int
    merged_into_customer_id: str
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ..., requested_by: _Optional[str] = ..., approved_by: _Optional[str] = ..., deletion_request_id: _Optional[str] = ..., deletion_batch_id: _Optional[str] = ..., deleted_records: _Optional[int] = ..., merged_into_customer_id: _Optional[str] = ...) -> None: ...

class UpdateCustomerRequest(_message.Message):
    __slots__ = ("customer", "update_mask", "etag", "request_id")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    request_id: str
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateCustomerResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class PreviewDeleteCustomerRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class PreviewDeleteCustomerResponse(_message.Message):
    __slots__ = ("preview",)
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    preview: _deletion_pb2.DeletionPreview
    def __init__(self, preview: _Optional[_Union[_deletion_pb2.DeletionPreview, _Mapping]] = ...) -> None: ...

class DeleteCustomerRequest(_message.Message):
    __slots__ = ("customer_id", "deletion_request_id", "etag", "request_id")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DELETION_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    deletion_request_id: str
    etag: str
    request_id: str
    def __init__(self, customer_id: _Optional[str] = ..., deletion_request_id: _Optional[str] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteCustomerResponse(_message.Message):
    __slots__ = ("customer", "deleted_records")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    DELETED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    deleted_records: int
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ..., deleted_records: _Optional[int] = ...) -> None: ...

class RestoreCustomerRequest(_message.Message):
    __slots__ = ("customer_id", "validate_only", "request_id")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    validate_only: bool
    request_id: str
    def __init__(self, customer_id: _Optional[str] = ..., validate_only: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class RestoreCustomerResponse(_message.Message):
    __slots__ = ("customer", "restored_records")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    RESTORED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    restored_records: int
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ..., restored_records: _Optional[int] = ...) -> None: ...

class PurgeCustomerRequest(_message.Message):
    __slots__ = ("customer_id", "validate_only", "request_id")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    validate_only: bool
    request_id: str
    def __init__(self, customer_id: _Optional[str] = ..., validate_only: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class PurgeCustomerResponse(_message.Message):
    __slots__ = ("customer_id", "erased_records", "kept_records")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    ERASED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    KEPT_RECORDS_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    erased_records: int
    kept_records: int
    def __init__(self, customer_id: _Optional[str] = ..., erased_records: _Optional[int] = ..., kept_records: _Optional[int] = ...) -> None: ...

class SetLegalHoldRequest(_message.Message):
    __slots__ = ("customer_id", "legal_hold", "reason", "request_id")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    LEGAL_HOLD_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    legal_hold: bool
    reason: str
    request_id: str
    def __init__(self, customer_id: _Optional[str] = ..., legal_hold: _Optional[bool] = ..., reason: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetLegalHoldResponse(_message.Message):
    __slots__ = ("customer",)
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ...) -> None: ...

class ExportCustomerRequest(_message.Message):
    __slots__ = ("customer_id",)
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    def __init__(self, customer_id: _Optional[str] = ...) -> None: ...

class ExportCustomerResponse(_message.Message):
    __slots__ = ("customer", "contacts", "deals", "orders", "contracts", "projects", "activities", "deletion_requests")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    DEALS_FIELD_NUMBER: _ClassVar[int]
    ORDERS_FIELD_NUMBER: _ClassVar[int]
    CONTRACTS_FIELD_NUMBER: _ClassVar[int]
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    ACTIVITIES_FIELD_NUMBER: _ClassVar[int]
    DELETION_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    contacts: _containers.RepeatedCompositeFieldContainer[_records_pb2.Contact]
    deals: _containers.RepeatedCompositeFieldContainer[_records_pb2.Deal]
    orders: _containers.RepeatedCompositeFieldContainer[_records_pb2.Order]
    contracts: _containers.RepeatedCompositeFieldContainer[_records_pb2.Contract]
    projects: _containers.RepeatedCompositeFieldContainer[_records_pb2.Project]
    activities: _containers.RepeatedCompositeFieldContainer[_records_pb2.Activity]
    deletion_requests: _containers.RepeatedCompositeFieldContainer[_deletion_pb2.DeletionRequest]
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ..., contacts: _Optional[_Iterable[_Union[_records_pb2.Contact, _Mapping]]] = ..., deals: _Optional[_Iterable[_Union[_records_pb2.Deal, _Mapping]]] = ..., orders: _Optional[_Iterable[_Union[_records_pb2.Order, _Mapping]]] = ..., contracts: _Optional[_Iterable[_Union[_records_pb2.Contract, _Mapping]]] = ..., projects: _Optional[_Iterable[_Union[_records_pb2.Project, _Mapping]]] = ..., activities: _Optional[_Iterable[_Union[_records_pb2.Activity, _Mapping]]] = ..., deletion_requests: _Optional[_Iterable[_Union[_deletion_pb2.DeletionRequest, _Mapping]]] = ...) -> None: ...

class DuplicateCandidate(_message.Message):
    __slots__ = ("customer", "matches", "score")
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    customer: Customer
    matches: _containers.RepeatedScalarFieldContainer[DuplicateMatch]
    score: int
    def __init__(self, customer: _Optional[_Union[Customer, _Mapping]] = ..., matches: _Optional[_Iterable[_Union[DuplicateMatch, str]]] = ..., score: _Optional[int] = ...) -> None: ...

class ListDuplicateCandidatesRequest(_message.Message):
    __slots__ = ("customer_id", "page_size", "page_token")
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    customer_id: str
    page_size: int
    page_token: str
    def __init__(self, customer_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDuplicateCandidatesResponse(_message.Message):
    __slots__ = ("candidates", "next_page_token")
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    candidates: _containers.RepeatedCompositeFieldContainer[DuplicateCandidate]
    next_page_token: str
    def __init__(self, candidates: _Optional[_Iterable[_Union[DuplicateCandidate, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PreviewMergeCustomersRequest(_message.Message):
    __slots__ = ("duplicate_id", "survivor_id")
    DUPLICATE_ID_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_ID_FIELD_NUMBER: _ClassVar[int]
    duplicate_id: str
    survivor_id: str
    def __init__(self, duplicate_id: _Optional[str] = ..., survivor_id: _Optional[str] = ...) -> None: ...

class FieldConflict(_message.Message):
    __slots__ = ("field", "duplicate_value", "survivor_value")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_VALUE_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_VALUE_FIELD_NUMBER: _ClassVar[int]
    field: str
    duplicate_value: str
    survivor_value: str
    def __init__(self, field: _Optional[str] = ..., duplicate_value: _Optional[str] = ..., survivor_value: _Optional[str] = ...) -> None: ...

class MergePreview(_message.Message):
    __slots__ = ("duplicate_id", "survivor_id", "duplicate_etag", "survivor_etag", "moves", "move_count", "conflicts", "blockers")
    DUPLICATE_ID_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_ETAG_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_ETAG_FIELD_NUMBER: _ClassVar[int]
    MOVES_FIELD_NUMBER: _ClassVar[int]
    MOVE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    BLOCKERS_FIELD_NUMBER: _ClassVar[int]
    duplicate_id: str
    survivor_id: str
    duplicate_etag: str
    survivor_etag: str
    moves: _containers.RepeatedCompositeFieldContainer[_deletion_pb2.RelationImpact]
    move_count: int
    conflicts: _containers.RepeatedCompositeFieldContainer[FieldConflict]
    blockers: _containers.RepeatedCompositeFieldContainer[_deletion_pb2.DeletionBlocker]
    def __init__(self, duplicate_id: _Optional[str] = ..., survivor_id: _Optional[str] = ..., duplicate_etag: _Optional[str] = ..., survivor_etag: _Optional[str] = ..., moves: _Optional[_Iterable[_Union[_deletion_pb2.RelationImpact, _Mapping]]] = ..., move_count: _Optional[int] = ..., conflicts: _Optional[_Iterable[_Union[FieldConflict, _Mapping]]] = ..., blockers: _Optional[_Iterable[_Union[_deletion_pb2.DeletionBlocker, _Mapping]]] = ...) -> None: ...

class PreviewMergeCustomersResponse(_message.Message):
    __slots__ = ("preview",)
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    preview: MergePreview
    def __init__(self, preview: _Optional[_Union[MergePreview, _Mapping]] = ...) -> None: ...

class MergeCustomersRequest(_message.Message):
    __slots__ = ("deletion_request_id", "request_id")
    DELETION_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    deletion_request_id: str
    request_id: str
    def __init__(self, deletion_request_id: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class MergeCustomersResponse(_message.Message):
    __slots__ = ("survivor", "duplicate", "moved_records", "taken_fields")
    SURVIVOR_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    MOVED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    TAKEN_FIELDS_FIELD_NUMBER: _ClassVar[int]
    survivor: Customer
    duplicate: Customer
    moved_records: int
    taken_fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, survivor: _Optional[_Union[Customer, _Mapping]] = ..., duplicate: _Optional[_Union[Customer, _Mapping]] = ..., moved_records: _Optional[int] = ..., taken_fields: _Optional[_Iterable[str]] = ...) -> None: ...

class UnmergeCustomersRequest(_message.Message):
    __slots__ = ("duplicate_id", "validate_only", "request_id")
    DUPLICATE_ID_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    duplicate_id: str
    validate_only: bool
    request_id: str
    def __init__(self, duplicate_id: _Optional[str] = ..., validate_only: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class KeptField(_message.Message):
    __slots__ = ("field", "value")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    field: str
    value: str
    def __init__(self, field: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class UnmergeCustomersResponse(_message.Message):
    __slots__ = ("duplicate", "survivor", "moved_back_records", "reverted_fields", "kept_fields")
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    SURVIVOR_FIELD_NUMBER: _ClassVar[int]
    MOVED_BACK_RECORDS_FIELD_NUMBER: _ClassVar[int]
    REVERTED_FIELDS_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELDS_FIELD_NUMBER: _ClassVar[int]
    duplicate: Customer
    survivor: Customer
    moved_back_records: int
    reverted_fields: _containers.RepeatedScalarFieldContainer[str]
    kept_fields: _containers.RepeatedCompositeFieldContainer[KeptField]
    def __init__(self, duplicate: _Optional[_Union[Customer, _Mapping]] = ..., survivor: _Optional[_Union[Customer, _Mapping]] = ..., moved_back_records: _Optional[int] = ..., reverted_fields: _Optional[_Iterable[str]] = ..., kept_fields: _Optional[_Iterable[_Union[KeptField, _Mapping]]] = ...) -> None: ...
