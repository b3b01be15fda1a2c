//! Mount specs (`SRC:DST[:ro|:rw]`): never a panic; what parses has both paths.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(m) = isolette::MountSpec::parse(text) {
        assert!(!m.source.as_os_str().is_empty() && !m.target.as_os_str().is_empty());
        let mode = if m.writable { ":rw" } else { "" };
        let again = isolette::MountSpec::parse(&format!("{}:{}{mode}", m.source.display(), m.target.display()));
        assert_eq!(again.unwrap(), m);
    }
});
