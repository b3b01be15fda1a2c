//! Node addon linkage (napi's symbols come from the Node process at load time).
fn main() {
    napi_build::setup();
}
