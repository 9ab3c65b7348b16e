//! The domain's values: what a customer, a record, a deletion request, an audit event and a
//! customer event are, with the pure rules that belong to the value itself (a request's state as
//! a reader sees it). Nothing here reads or writes: these files import neither `crate::store` nor
//! the domain's operations, so the store can persist them and the dependencies run one way:
//! api → domain operations → store → model.

pub mod approval;
pub mod audit;
pub mod batch;
pub mod customer;
pub mod deletion;
pub mod event;
pub mod matching;
pub mod record;
pub mod recycle_bin;
pub mod request_filter;
pub mod tenant_settings;
