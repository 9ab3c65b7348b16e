import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CustomerEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CUSTOMER_EVENT_TYPE_UNSPECIFIED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_CREATED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_UPDATED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_RECORD_CHANGED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_DELETION_REQUESTED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_DELETION_APPROVED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_DELETION_WITHDRAWN: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_DELETED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_RESTORED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_PURGED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_LEGAL_HOLD_CHANGED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_DELETION_BATCH_SUBMITTED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_DELETION_BATCH_DECIDED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_DELETION_BATCH_STARTED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_DELETION_BATCH_COMPLETED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_MERGED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_UNMERGED: _ClassVar[CustomerEventType]
    CUSTOMER_EVENT_TYPE_DELETION_ESCALATED: _ClassVar[CustomerEventType]
CUSTOMER_EVENT_TYPE_UNSPECIFIED: CustomerEventType
CUSTOMER_EVENT_TYPE_CREATED: CustomerEventType
CUSTOMER_EVENT_TYPE_UPDATED: CustomerEventType
CUSTOMER_EVENT_TYPE_RECORD_CHANGED: CustomerEventType
CUSTOMER_EVENT_TYPE_DELETION_REQUESTED: CustomerEventType
CUSTOMER_EVENT_TYPE_DELETION_APPROVED: CustomerEventType
CUSTOMER_EVENT_TYPE_DELETION_WITHDRAWN: CustomerEventType
CUSTOMER_EVENT_TYPE_DELETED: CustomerEventType
CUSTOMER_EVENT_TYPE_RESTORED: CustomerEventType
CUSTOMER_EVENT_TYPE_PURGED: CustomerEventType
CUSTOMER_EVENT_TYPE_LEGAL_HOLD_CHANGED: CustomerEventType
CUSTOMER_EVENT_TYPE_DELETION_BATCH_SUBMITTED: CustomerEventType
CUSTOMER_EVENT_TYPE_DELETION_BATCH_DECIDED: CustomerEventType
CUSTOMER_EVENT_TYPE_DELETION_BATCH_STARTED: CustomerEventType
CUSTOMER_EVENT_TYPE_DELETION_BATCH_COMPLETED: CustomerEventType
CUSTOMER_EVENT_TYPE_MERGED: CustomerEventType
CUSTOMER_EVENT_TYPE_UNMERGED: CustomerEventType
CUSTOMER_EVENT_TYPE_DELETION_ESCALATED: CustomerEventType

class CustomerEvent(_message.Message):
    __slots__ = ("sequence", "type", "customer_id", "record_type", "record_id", "action", "time", "counts")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    RECORD_TYPE_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    type: CustomerEventType
    customer_id: str
    record_type: str
    record_id: str
    action: str
    time: _timestamp_pb2.Timestamp
    counts: _containers.ScalarMap[str, int]
    def __init__(self, sequence: _Optional[int] = ..., type: _Optional[_Union[CustomerEventType, str]] = ..., customer_id: _Optional[str] = ..., record_type: _Optional[str] = ..., record_id: _Optional[str] = ..., action: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class WatchCustomerEventsRequest(_message.Message):
    __slots__ = ("after_sequence",)
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    after_sequence: int
    def __init__(self, after_sequence: _Optional[int] = ...) -> None: ...

class WatchCustomerEventsResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: CustomerEvent
    def __init__(self, event: _Optional[_Union[CustomerEvent, _Mapping]] = ...) -> None: ...

class ListCustomerEventsRequest(_message.Message):
    __slots__ = ("after_sequence", "page_size")
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    after_sequence: int
    page_size: int
    def __init__(self, after_sequence: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class ListCustomerEventsResponse(_message.Message):
    __slots__ = ("events", "last_sequence")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[CustomerEvent]
    last_sequence: int
    def __init__(self, events: _Optional[_Iterable[_Union[CustomerEvent, _Mapping]]] = ..., last_sequence: _Optional[int] = ...) -> None: ...
