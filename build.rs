//! Compiles `proto/` without a system `protoc`: protox parses the files, tonic-prost-build generates
//! the messages and services from its descriptor set, and the encoded set is written for reflection.

use std::{env, fs, path::PathBuf};

const PROTO_ROOT: &str = "proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Neither prost-build nor tonic-prost-build prints this; without it the script reruns on every
    // change anywhere in the package.
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let files = proto_files(&PathBuf::from(PROTO_ROOT).join("crm/v1"))?;

    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(&files)?;
    // Encoded by protox itself: prost_types' re-encoding would drop custom options.
    fs::write(
        out_dir.join("crm_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Undecodable requests are the client's mistake: the strict codec answers INVALID_ARGUMENT
        // where tonic-prost's codec answers INTERNAL.
        .codec_path("crate::api::codec::StrictCodec")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

/// The `.proto` files of the package, relative to the proto root, in a stable order.
fn proto_files(dir: &PathBuf) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "proto") {
            let relative = path
                .strip_prefix(PROTO_ROOT)
                .expect("listed under the proto root");
            files.push(relative.to_string_lossy().into_owned());
        }
    }
    files.sort();
    Ok(files)
}
