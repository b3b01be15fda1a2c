//! The layer unpacker on arbitrary (possibly compressed) tar bytes: an error or a tree
//! inside the scratch directory, never a panic, never a write beside it.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static (PathBuf, PathBuf) {
    static DIRS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIRS.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("isolette-fuzz-tar-{}", std::process::id()));
        let (dest, canary) = (base.join("layer"), base.join("canary"));
        std::fs::create_dir_all(&canary).unwrap();
        (dest, canary)
    })
}

fuzz_target!(|bytes: &[u8]| {
    let (dest, canary) = scratch();
    let _ = std::fs::remove_dir_all(dest);
    std::fs::create_dir_all(dest).unwrap();
    let _ = isolette::fuzzing::unpack_layer(bytes, dest);
    assert_eq!(std::fs::read_dir(canary).unwrap().count(), 0, "something was written beside the layer");
});
