//! SeaORM entities: one module per table. Only `crate::store` uses them; the rest of the crate sees
//! domain types. Every table's key starts with `tenant_id`.

pub mod activity;
pub mod audit_event;
pub mod audit_head;
pub mod contact;
pub mod contract;
pub mod customer;
pub mod customer_event;
pub mod deal;
pub mod deletion_batch;
pub mod deletion_batch_item;
pub mod deletion_request;
pub mod idempotency_key;
pub mod merge_move;
pub mod project;
pub mod sales_order;
pub mod service_secret;
pub mod tenant_settings;
