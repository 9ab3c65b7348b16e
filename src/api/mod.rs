//! The gRPC adapters: decode, take the authenticated caller, convert to domain types, call the
//! domain, convert back. No rules and no database access here.

pub mod audit;
pub mod batches;
pub mod codec;
pub mod convert;
pub mod customers;
pub mod deletion;
pub mod events;
pub mod records;
pub mod settings;
