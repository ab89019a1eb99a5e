//! Compiles `proto/cadenza/v1/*.proto` with a vendored `protoc`, so building needs no
//! system install, and writes the descriptor set that server reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let well_known = protoc_bin_vendored::include_path()?;
    set_protoc(&protoc);

    // Read at run time: a build-script binary may be reused for a checkout at
    // another path, and a compile-time path would point at the old one.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let dir = root.join("cadenza/v1");
    let mut protos: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    protos.sort();
    println!("cargo:rerun-if-changed={}", dir.display());

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("cadenza_descriptor.bin"))
        // Artifact bytes as `Bytes`: decoding slices the received buffer instead of
        // copying every chunk, and chunks go into an upload's parts as they are.
        .bytes(".cadenza.v1.PutObjectRequest.chunk")
        .bytes(".cadenza.v1.GetObjectResponse.chunk")
        .bytes(".cadenza.v1.ReadAssetResponse.data")
        .compile_protos(&protos, &[root, well_known])?;
    Ok(())
}

fn set_protoc(path: &std::path::Path) {
    // prost-build has no builder option for the protoc path; it reads `PROTOC`.
    #[allow(unsafe_code)]
    // SAFETY: a build script is a single-threaded process; nothing reads the
    // environment concurrently.
    unsafe {
        std::env::set_var("PROTOC", path);
    }
}
