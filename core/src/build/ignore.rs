//! `.dockerignore`: which files of a build's context a `COPY` or `ADD` never sees, with
//! Docker's semantics. Each line is a pattern, anchored at the context's root (a leading
//! `/` changes nothing), cleaned as a path (`a//b/../c/` is `a/c`); `*` and `?` stop at
//! `/`, `**` matches any number of directories, `[...]` a class, `\` escapes; `#` starts
//! a comment line; `!` makes an exception. A pattern that matches a directory matches
//! everything below it, and the last pattern that matches a path decides.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{Error, Result};

/// The rules of one ignore file.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct Rule {
    glob: GlobMatcher,
    /// `!pattern`: what it matches is kept.
    keep: bool,
}

impl IgnoreRules {
    /// Reads an ignore file's text; `name` (its path) is for the errors, which name the line.
    pub fn parse(text: &str, name: &str) -> Result<IgnoreRules> {
        let mut rules = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (keep, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let pattern = clean(pattern);
            // Braces are literal to Docker, alternatives to globset.
            let literal_braces = pattern.replace('{', "\\{").replace('}', "\\}");
            let glob = GlobBuilder::new(&literal_braces)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::config(format!("{name} line {}: pattern `{line}`: {}", i + 1, e.kind())))?;
            rules.push(Rule { glob: glob.compile_matcher(), keep });
        }
        Ok(IgnoreRules { rules })
    }

    /// Whether the file or directory `path` (relative to the context, `/`-separated) is
    /// left out of the context.
    pub fn is_ignored(&self, path: &str) -> bool {
        self.is_ignored_path(Path::new(&clean(path)))
    }

    /// [`is_ignored`](Self::is_ignored) for a path already clean (names joined by `/`, as
    /// a directory walk makes it), whose names are bytes and need not be UTF-8.
    pub fn is_ignored_path(&self, path: &Path) -> bool {
        let mut ignored = false;
        for rule in &self.rules {
            if path.ancestors().filter(|p| !p.as_os_str().is_empty()).any(|p| rule.glob.is_match(p)) {
                ignored = !rule.keep;
            }
        }
        ignored
    }

    /// Whether there are no rules: nothing is left out.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// A path cleaned lexically, as Go's `filepath.Clean` does, without a leading `/`:
/// repeated `/` and `.` parts dropped, `..` taken against the part before (never above
/// the root), no trailing `/`; the root itself is `.`.
fn clean(path: &str) -> String {
    clean_parts(path).0
}

/// [`clean`]'s path, and whether a `..` would have left the root: an ignore pattern stays
/// at the root, where a `COPY` source that leaves it is refused (`context.rs`).
pub(crate) fn clean_parts(path: &str) -> (String, bool) {
    let mut parts: Vec<&str> = Vec::new();
    let mut left = false;
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => left |= parts.pop().is_none(),
            _ => parts.push(part),
        }
    }
    (if parts.is_empty() { ".".to_string() } else { parts.join("/") }, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(text, ".dockerignore").unwrap()
    }

    #[test]
    fn docker_semantics() {
        let r = rules("# a comment\n\n*.md\n!README.md\n/build/\nnode_modules\n**/*.pyc\ndocs/**/draft*\n  tmp  \n");
        for (path, ignored) in [
            ("notes.md", true),
            ("README.md", false),
            ("sub/notes.md", false), // `*` stops at `/`: anchored at the root
            ("build", true),
            ("build/out/x.o", true), // below an ignored directory
            ("node_modules/a/b.js", true),
            ("src/node_modules", false),
            ("a.pyc", true),
            ("x/y/z.pyc", true),
            ("docs/draft1", true),
            ("docs/a/b/draft2.txt", true),
            ("docs/final", false),
            ("tmp", true),
            ("./tmp/", true),
            ("main.py", false),
        ] {
            assert_eq!(r.is_ignored(path), ignored, "{path}");
        }
        // Names are bytes: one that is not UTF-8 matches as it is.
        let odd = Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"docs/\xff/draft"));
        assert!(r.is_ignored_path(odd));
        assert!(
            r.is_ignored_path(Path::new(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"\xfe.md")))
        );
    }

    #[test]
    fn the_last_match_wins() {
        let r = rules("logs\n!logs/keep.txt\n");
        assert!(r.is_ignored("logs/a.txt"));
        assert!(!r.is_ignored("logs/keep.txt"));
        let r = rules("!logs/keep.txt\nlogs\n");
        assert!(r.is_ignored("logs/keep.txt"), "the later rule wins");
    }

    #[test]
    fn patterns_are_cleaned_and_braces_are_literal() {
        let r = rules("a//b/../c/\n{x,y}\n[ab]?.txt\n\\*star\n");
        assert!(r.is_ignored("a/c"));
        assert!(r.is_ignored("a/c/d"));
        assert!(!r.is_ignored("a/b"));
        assert!(r.is_ignored("{x,y}"));
        assert!(!r.is_ignored("x"));
        assert!(r.is_ignored("b1.txt"));
        assert!(!r.is_ignored("c1.txt"));
        assert!(r.is_ignored("*star"));
        assert!(!r.is_ignored("xstar"));
        assert!(rules("").is_empty());
    }

    #[test]
    fn a_bad_pattern_names_its_line() {
        let e = IgnoreRules::parse("ok\n[unclosed\n", "ctx/.dockerignore").unwrap_err().to_string();
        assert!(e.contains("ctx/.dockerignore line 2") && e.contains("[unclosed"), "{e}");
    }

    #[test]
    fn paths_clean_as_go_does() {
        for (path, want) in [("", "."), ("/", "."), ("a/./b//", "a/b"), ("../a", "a"), ("a/../../b", "b"), ("/x", "x")]
        {
            assert_eq!(clean(path), want, "{path}");
        }
    }
}
