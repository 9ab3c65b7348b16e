import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TenantSettings(_message.Message):
    __slots__ = ("retention", "request_ttl", "escalate_after", "teams_claim", "supervises_claim", "phone_default_country_code", "two_person_rule", "etag", "update_time", "updated_by")
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TTL_FIELD_NUMBER: _ClassVar[int]
    ESCALATE_AFTER_FIELD_NUMBER: _ClassVar[int]
    TEAMS_CLAIM_FIELD_NUMBER: _ClassVar[int]
    SUPERVISES_CLAIM_FIELD_NUMBER: _ClassVar[int]
    PHONE_DEFAULT_COUNTRY_CODE_FIELD_NUMBER: _ClassVar[int]
    TWO_PERSON_RULE_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    retention: _duration_pb2.Duration
    request_ttl: _duration_pb2.Duration
    escalate_after: _duration_pb2.Duration
    teams_claim: str
    supervises_claim: str
    phone_default_country_code: str
    two_person_rule: TwoPersonRule
    etag: str
    update_time: _timestamp_pb2.Timestamp
    updated_by: str
    def __init__(self, retention: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., request_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., escalate_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., teams_claim: _Optional[str] = ..., supervises_claim: _Optional[str] = ..., phone_default_country_code: _Optional[str] = ..., two_person_rule: _Optional[_Union[TwoPersonRule, _Mapping]] = ..., etag: _Optional[str] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_by: _Optional[str] = ...) -> None: ...

class TwoPersonRule(_message.Message):
    __slots__ = ("open_pipeline_at_least", "records_at_least", "batch_size_above", "key_accounts", "admin_required")
    OPEN_PIPELINE_AT_LEAST_FIELD_NUMBER: _ClassVar[int]
    RECORDS_AT_LEAST_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_ABOVE_FIELD_NUMBER: _ClassVar[int]
    KEY_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    ADMIN_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    open_pipeline_at_least: _containers.RepeatedCompositeFieldContainer[CurrencyAmount]
    records_at_least: int
    batch_size_above: int
    key_accounts: bool
    admin_required: bool
    def __init__(self, open_pipeline_at_least: _Optional[_Iterable[_Union[CurrencyAmount, _Mapping]]] = ..., records_at_least: _Optional[int] = ..., batch_size_above: _Optional[int] = ..., key_accounts: _Optional[bool] = ..., admin_required: _Optional[bool] = ...) -> None: ...

class CurrencyAmount(_message.Message):
    __slots__ = ("currency", "amount_minor")
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    currency: str
    amount_minor: int
    def __init__(self, currency: _Optional[str] = ..., amount_minor: _Optional[int] = ...) -> None: ...

class GetTenantSettingsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetTenantSettingsResponse(_message.Message):
    __slots__ = ("tenant_settings",)
    TENANT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    tenant_settings: TenantSettings
    def __init__(self, tenant_settings: _Optional[_Union[TenantSettings, _Mapping]] = ...) -> None: ...

class UpdateTenantSettingsRequest(_message.Message):
    __slots__ = ("tenant_settings", "update_mask", "etag", "request_id")
    TENANT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_settings: TenantSettings
    update_mask: _field_mask_pb2.FieldMask
    etag: str
    request_id: str
    def __init__(self, tenant_settings: _Optional[_Union[TenantSettings, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class UpdateTenantSettingsResponse(_message.Message):
    __slots__ = ("tenant_settings",)
    TENANT_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    tenant_settings: TenantSettings
    def __init__(self, tenant_settings: _Optional[_Union[TenantSettings, _Mapping]] = ...) -> None: ...
