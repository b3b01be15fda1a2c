//! Human sizes and durations (`256M`, `1.5s`): never a panic, and what parses prints back
//! to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(bytes) = isolette::parse_size(text) {
        assert_eq!(isolette::parse_size(&isolette::format_size(bytes)).unwrap(), bytes);
    }
    if let Ok(d) = isolette::parse_duration(text) {
        assert_eq!(isolette::parse_duration(&isolette::format_duration(d)).unwrap(), d);
    }
});
