//! crm-service: a gRPC service that owns a CRM's customers and makes deleting one safe,
//! reviewable and reversible. `main.rs` is a thin CLI over this library.

pub mod api;
pub mod app;
pub mod auth;
pub mod call;
pub mod config;
pub mod domain;
pub mod error;
pub mod layers;
pub mod proto;
pub mod reason;
pub mod relay;
pub mod seed;
pub mod store;
pub mod telemetry;

pub use error::{Error, Result};
