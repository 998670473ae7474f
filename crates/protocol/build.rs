//! Compiles `proto/switchboard/v1/switchboard.proto` with protox (pure Rust, so no
//! system `protoc` is needed) and generates the prost types.

fn main() {
    // Read at run time, not baked in with env!(): a target dir moved or shared between
    // checkouts reuses this script's binary, and a baked-in path would point elsewhere.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = format!("{manifest}/../../proto");
    let file = "switchboard/v1/switchboard.proto";
    println!("cargo:rerun-if-changed={root}/{file}");
    let fds = match protox::compile([file], [&root]) {
        Ok(fds) => fds,
        Err(e) => panic!("proto schema does not compile: {e}"),
    };
    let mut config = prost_build::Config::new();
    config.bytes(["."]);
    if let Err(e) = config.compile_fds(fds) {
        panic!("prost code generation failed: {e}");
    }
}
