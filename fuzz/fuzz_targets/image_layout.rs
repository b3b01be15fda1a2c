//! The image source readers (OCI `index.json`, manifests, configs, `docker save`
//! `manifest.json`) on arbitrary JSON-ish input: an `Error::Image`/`Io`, or a parsed image,
//! never a panic. `DIGEST` in the input is replaced by the digest of the blob, so the
//! fuzzer gets past digest checks into the manifest and config parsers.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

#[derive(Debug, Arbitrary)]
struct Input {
    docker: bool,
    top: String,
    blob: String,
}

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| std::env::temp_dir().join(format!("isolette-fuzz-layout-{}", std::process::id())))
}

fuzz_target!(|input: Input| {
    let dir = dir();
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    let digest = hex::encode(Sha256::digest(input.blob.as_bytes()));
    std::fs::write(dir.join("blobs/sha256").join(&digest), &input.blob).unwrap();
    let top = input.top.replace("DIGEST", &format!("sha256:{digest}")).replace("HEX", &digest);
    std::fs::write(dir.join(if input.docker { "manifest.json" } else { "index.json" }), top).unwrap();
    match isolette::fuzzing::read_layout(dir) {
        Ok(()) | Err(isolette::Error::Image { .. } | isolette::Error::Io { .. }) => {}
        Err(e) => panic!("unexpected kind of error: {e}"),
    }
});
