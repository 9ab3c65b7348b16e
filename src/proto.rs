//! The generated code of `proto/crm/v1`, included once, and its descriptor set for reflection.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod crm {
    pub mod v1 {
        tonic::include_proto!("crm.v1");
    }
}

/// Encoded `FileDescriptorSet` of the project's protos, served by reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("crm_descriptor");
