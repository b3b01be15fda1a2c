//! Manifests and indexes as a registry serves them (OCI and Docker schema 2), and the
//! platform pick from an index: a description or a reason, never a panic; a digest that
//! comes out is always `sha256:` and 64 lowercase hex digits. The first byte picks the
//! `Content-Type` and the platform; the rest is the body (so the seeds are JSON with one
//! byte in front).
#![no_main]

use libfuzzer_sys::fuzz_target;

const TYPES: [Option<&str>; 6] = [
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json; charset=utf-8"),
    Some("text/html"),
];
const PLATFORMS: [&str; 5] = ["linux/amd64", "linux/arm64", "linux/arm/v7", "windows/amd64", "linux"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else { return };
    let content_type = TYPES[usize::from(pick) % TYPES.len()];
    let platform = PLATFORMS[usize::from(pick / 8) % PLATFORMS.len()];
    if let Ok(described) = isolette::fuzzing::parse_manifest(body, content_type, platform) {
        // The config's digest (an image) or the entry's (an index) comes first.
        let digest = described.split(' ').next().unwrap_or_default();
        assert!(digest.len() == 71 && digest[7..].bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
});
