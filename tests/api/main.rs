//! Black-box tests of the gRPC API: the real server on an ephemeral port, the generated clients,
//! on SQLite and on PostgreSQL (each test as `<suite>::sqlite::<name>` and `<suite>::postgres::<name>`).

mod audit;
mod auth;
mod common;
mod concurrency;
mod customers;
mod deletion_races;
mod deletion_rules;
mod events;
mod export;
mod idempotency_window;
mod keys;
mod lifecycle;
mod limits;
mod malformed;
mod pagination;
mod process;
mod purge;
mod record_lifecycle;
mod records;
mod replicas;
mod restore_property;
mod shutdown;
mod telemetry;
mod tenancy;
mod tls;
mod validation;
