//! Image references (`python:3.12`, `ghcr.io/o/n@sha256:...`): a reference or a config
//! error, never a panic; what parses prints back to a reference that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(r) = isolette::Reference::parse(text) {
        let again = isolette::Reference::parse(&r.to_string()).expect("the full form parses");
        assert_eq!(again, r);
        let familiar = isolette::Reference::parse(&r.familiar()).expect("the familiar form parses");
        assert_eq!((familiar.registry(), familiar.repository()), (r.registry(), r.repository()));
    }
});
