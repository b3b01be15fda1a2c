//! `.dockerignore` rules: reading any text gives rules or an error, never a panic; a path
//! is judged the same whatever `./`, `//` or trailing `/` it is written with, and comment
//! lines change nothing.
#![no_main]

use isolette::build::IgnoreRules;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    // The rules, then a line `---`, then paths to judge.
    let (rules_text, paths) = text.split_once("\n---\n").unwrap_or((text, "a/b\nREADME.md\nx/y/z.pyc"));
    let Ok(rules) = IgnoreRules::parse(rules_text, ".dockerignore") else { return };
    let commented = IgnoreRules::parse(&format!("# c\n{}\n# d", rules_text.replace('\n', "\n# e\n")), ".dockerignore")
        .expect("the same rules with comments read too");
    for path in paths.lines().filter(|p| !p.is_empty()) {
        let verdict = rules.is_ignored(path);
        assert_eq!(rules.is_ignored(&format!("./{path}/")), verdict, "{path:?} written another way");
        assert_eq!(rules.is_ignored(&path.replace('/', "//")), verdict, "{path:?} with doubled slashes");
        assert_eq!(commented.is_ignored(path), verdict, "{path:?} with comment lines added");
    }
});
