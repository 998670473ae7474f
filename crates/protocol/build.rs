//! Compiles `proto/switchboard/v1/switchboard.proto` with protox (pure Rust, so no
//! system `protoc` is needed) and generates the prost types.

fn main() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let file = "switchboard/v1/switchboard.proto";
    println!("cargo:rerun-if-changed={root}/{file}");
    let fds = match protox::compile([file], [root]) {
        Ok(fds) => fds,
        Err(e) => panic!("proto schema does not compile: {e}"),
    };
    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    if let Err(e) = config.compile_fds(fds) {
        panic!("prost code generation failed: {e}");
    }
}
