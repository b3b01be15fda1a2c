//! `WWW-Authenticate` header values, as a registry (or anyone on the path) sends them: a
//! challenge or nothing, never a panic; a Bearer realm is always an http(s) URL.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|header: &str| {
    if let Some(challenge) = isolette::fuzzing::parse_challenge(header)
        && challenge.starts_with("Bearer")
    {
        assert!(challenge.contains("realm: \"http://") || challenge.contains("realm: \"https://"), "{challenge}");
    }
});
