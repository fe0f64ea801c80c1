//! Compiles the `.proto` files with the protoc shipped by `protoc-bin-vendored`, so no system protoc is needed.
fn main() {
    let protoc = protoc_bin_vendored::protoc_bin_path().expect("vendored protoc for this platform");
    let protos = [
        "proto/rpc.proto",
        "proto/coord.proto",
        "proto/tablet.proto",
        "proto/nameserver.proto",
        "proto/taskmanager.proto",
    ];
    for p in protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    // `bytes` fields as `Bytes`, so payloads pass between frame and handler without copies.
    config.bytes(["."]);
    config.compile_protos(&protos, &["proto"]).expect("compile .proto files");
}
