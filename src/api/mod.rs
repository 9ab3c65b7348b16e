//! The gRPC adapters: decode, authenticate, convert to domain types, call the domain, convert back.
//! No rules and no database access here.

pub mod codec;
