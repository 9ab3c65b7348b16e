//! Black-box tests of the gRPC API: the real server on an ephemeral port, the generated clients,
//! on SQLite and on PostgreSQL (each test as `<suite>::sqlite::<name>` and `<suite>::postgres::<name>`).

mod auth;
mod common;
mod concurrency;
mod customers;
mod keys;
mod lifecycle;
mod malformed;
mod pagination;
mod records;
mod replicas;
mod tenancy;
mod validation;
