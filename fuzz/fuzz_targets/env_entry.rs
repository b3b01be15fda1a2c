//! Environment entries (`KEY=VALUE`): never a panic; what parses is accepted by a sandbox.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|text: &str| {
    if let Ok((key, value)) = isolette::parse_env(text) {
        assert!(!key.is_empty() && !key.as_encoded_bytes().contains(&b'='));
        let b = isolette::Sandbox::builder(common::image()).env(key, value);
        assert!(b.check(["/bin/true"]).is_ok(), "{text:?}");
    }
});
