//! Compiles the etcd v3 API `.proto` files under `proto/` into prost messages and tonic
//! client/server stubs, using the `protoc` shipped by `protoc-bin-vendored` (no system protoc).

use std::path::PathBuf;

const PROTO_ROOT: &str = "proto";

const PROTOS: &[&str] = &[
    "proto/etcd/mvccpb/kv.proto",
    "proto/etcd/authpb/auth.proto",
    "proto/etcd/etcdserverpb/rpc.proto",
    "proto/etcd/v3lockpb/v3lock.proto",
    "proto/etcd/v3electionpb/v3election.proto",
    "proto/mainstay/peer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    println!("cargo:rerun-if-changed=build.rs");

    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // The well-known types' include directory; not needed by the etcd protos today, but it keeps
    // `import "google/protobuf/..."` working without a system protobuf installation.
    let well_known: PathBuf = protoc_bin_vendored::include_path()?;

    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);

    let includes = [PathBuf::from(PROTO_ROOT), well_known];
    let protos: Vec<PathBuf> = PROTOS.iter().map(PathBuf::from).collect();

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_with_config(config, &protos, &includes)?;
    Ok(())
}
