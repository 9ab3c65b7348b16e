//! Black-box tests of the gRPC API: the real server on an ephemeral port, the generated clients,
//! on SQLite and on PostgreSQL (each test as `<suite>::sqlite::<name>` and `<suite>::postgres::<name>`).

mod audit;
mod auth;
mod cli;
mod common;
mod concurrency;
mod customers;
mod deletion_races;
mod deletion_rules;
mod erasure_on_disk;
mod error_messages;
mod error_size;
mod events;
mod export;
mod first_run;
mod idempotency_window;
mod keys;
mod lifecycle;
mod limits;
mod malformed;
mod metadata_limits;
mod pagination;
mod preview_pipeline;
mod process;
mod purge;
mod readiness;
mod record_lifecycle;
mod records;
mod replicas;
mod request_states;
mod restore_property;
mod shutdown;
mod telemetry;
mod tenancy;
mod tls;
mod validation;
