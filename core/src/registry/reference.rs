//! Image references as Docker writes them: `python`, `python:3.12`, `owner/name`,
//! `ghcr.io/owner/name:tag`, `localhost:5000/x`, `name@sha256:<hex>`.
//!
//! The grammar is the distribution project's: the first `/`-separated part is a registry
//! when it has a `.` or a `:`, or is `localhost`; path parts are lowercase alphanumerics
//! joined by `.`, `_`, `__` or dashes; a tag is up to 128 of `[A-Za-z0-9_.-]` not starting
//! with `.` or `-`; a digest is `sha256:` and 64 lowercase hex digits. Docker Hub is the
//! default registry, and a single-part name there is in `library/`.

use std::fmt;

use crate::error::{Error, Result};

/// Docker Hub's name in references.
pub(crate) const DOCKER_HUB: &str = "docker.io";
/// Where Docker Hub's registry API answers.
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Parses `reference`; a bad one is a [`Error::Config`] saying what is wrong.
    pub fn parse(reference: &str) -> Result<Reference> {
        let bad = |why: &str| {
            Error::config(format!(
                "image reference `{}`: {why} (expected [REGISTRY/]NAME[:TAG][@sha256:DIGEST], like `python:3.12`)",
                reference.escape_debug()
            ))
        };
        if reference.is_empty() || reference.len() > 1024 {
            return Err(bad("empty or too long"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (reference, None),
        };
        if let Some(d) = digest
            && !is_sha256_digest(d)
        {
            return Err(bad("the digest must be sha256: and 64 lowercase hex digits"));
        }
        // A `:` after the last `/` starts the tag; before it, it is a registry's port.
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag
            && !is_tag(t)
        {
            return Err(bad("a tag is 1 to 128 of A-Z a-z 0-9 _ . - and does not start with . or -"));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => (first, path),
            _ => (DOCKER_HUB, name),
        };
        if !is_registry(registry) {
            return Err(bad("the registry must be a host name or address, with an optional :PORT"));
        }
        let registry = match registry {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
            r => r,
        };
        if path.is_empty() || !path.split('/').all(is_path_part) {
            return Err(bad("a name is lowercase letters, digits and separators (. _ __ -), in /-separated parts"));
        }
        let repository =
            if registry == DOCKER_HUB && !path.contains('/') { format!("library/{path}") } else { path.to_string() };
        if repository.len() > 255 {
            return Err(bad("the name is over 255 characters"));
        }
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The registry as the reference names it (`docker.io` for Docker Hub).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host (and port) the registry's API answers on.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB { DOCKER_HUB_API } else { &self.registry }
    }

    /// The repository in the registry (`library/python`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`sha256:...`), if the reference has one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// What to ask the registry for: the digest when there is one, else the tag
    /// (`latest` when there is neither).
    pub fn target(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }

    /// The name without tag or digest, as Docker shows it: `python`, `owner/name`,
    /// `ghcr.io/owner/name`, `localhost:5000/x`.
    pub fn familiar_repository(&self) -> String {
        if self.registry == DOCKER_HUB {
            // `library/x` is `x`; `library/a/b` stays (`a/b` would be another repository).
            let first = self.repository.split('/').next().unwrap_or("");
            match self.repository.strip_prefix("library/") {
                Some(short) if !short.contains('/') => short.to_string(),
                // `docker.io/a.b/c` without its registry would read as registry `a.b`.
                _ if first.contains('.') || first == "localhost" => format!("{DOCKER_HUB}/{}", self.repository),
                _ => self.repository.clone(),
            }
        } else {
            format!("{}/{}", self.registry, self.repository)
        }
    }

    /// The name the store keeps the image under: `NAME:TAG` (tag `latest` by default), or
    /// `NAME@sha256:...` for a reference by digest.
    pub fn familiar(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("{}@{d}", self.familiar_repository()),
            (None, t) => format!("{}:{}", self.familiar_repository(), t.as_deref().unwrap_or("latest")),
        }
    }

    /// The same reference by `digest` instead of its tag.
    pub fn with_digest(&self, digest: &str) -> Reference {
        Reference { digest: Some(digest.to_string()), tag: None, ..self.clone() }
    }

    /// The same repository with another tag.
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference { tag: Some(tag.to_string()), digest: None, ..self.clone() }
    }
}

impl fmt::Display for Reference {
    /// The full form: `docker.io/library/python:3.12`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// `sha256:` and 64 lowercase hex digits.
pub(crate) fn is_sha256_digest(d: &str) -> bool {
    d.strip_prefix("sha256:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

fn is_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 128
        && !t.starts_with(['.', '-'])
        && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// `host`, `host:port`, `1.2.3.4:5000`, `[::1]:5000`.
fn is_registry(r: &str) -> bool {
    let (host, port) = match r.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((addr, rest)) if addr.parse::<std::net::Ipv6Addr>().is_ok() => ("x", rest.strip_prefix(':')),
            _ => return false,
        },
        None => match r.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (r, None),
        },
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0) && !p.starts_with('0'));
    host_ok && port_ok
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or any number of `-`.
fn is_path_part(part: &str) -> bool {
    let bytes = part.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        match &part[start..i] {
            "." | "_" | "__" => {}
            sep if sep.bytes().all(|b| b == b'-') => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(r: &str) -> (String, String, Option<String>, Option<String>) {
        let r = Reference::parse(r).unwrap();
        (r.registry.clone(), r.repository.clone(), r.tag.clone(), r.digest.clone())
    }

    #[test]
    fn docker_forms() {
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(parts("python"), ("docker.io".into(), "library/python".into(), None, None));
        assert_eq!(parts("python:3.12-slim").2.as_deref(), Some("3.12-slim"));
        assert_eq!(parts("library/python").1, "library/python");
        assert_eq!(parts("owner/name:v1").1, "owner/name");
        assert_eq!(parts("ghcr.io/owner/name:tag").0, "ghcr.io");
        assert_eq!(parts("localhost:5000/x"), ("localhost:5000".into(), "x".into(), None, None));
        assert_eq!(parts("localhost/x:1").0, "localhost");
        assert_eq!(parts(&format!("name@{d}")).3, Some(d.clone()));
        assert_eq!(parts(&format!("a/b:t@{d}")).2.as_deref(), Some("t"));
        assert_eq!(parts("docker.io/python").1, "library/python");
        assert_eq!(parts("index.docker.io/a/b").0, "docker.io");
        assert_eq!(parts("[::1]:5000/x:1").0, "[::1]:5000");
        assert_eq!(parts("127.0.0.1:5000/a__b/c-d--e.f").1, "a__b/c-d--e.f");
    }

    #[test]
    fn familiar_and_full_names() {
        let r = Reference::parse("python:3.12").unwrap();
        assert_eq!((r.familiar(), r.to_string()), ("python:3.12".into(), "docker.io/library/python:3.12".into()));
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(Reference::parse("docker.io/library/gcc").unwrap().familiar(), "gcc:latest");
        assert_eq!(Reference::parse("owner/x").unwrap().familiar(), "owner/x:latest");
        // Found by fuzz/image_reference: only a one-part name loses `library/`.
        assert_eq!(Reference::parse("library/a/b").unwrap().familiar(), "library/a/b:latest");
        assert_eq!(Reference::parse("docker.io/a.b/c").unwrap().familiar(), "docker.io/a.b/c:latest");
        let local = Reference::parse("localhost:5000/py:3.11").unwrap();
        assert_eq!((local.familiar(), local.api_host()), ("localhost:5000/py:3.11".into(), "localhost:5000"));
        let d = format!("sha256:{}", "0".repeat(64));
        assert_eq!(Reference::parse(&format!("x:1@{d}")).unwrap().familiar(), format!("x@{d}"));
        assert_eq!(Reference::parse("x").unwrap().target(), "latest");
    }

    #[test]
    fn bad_references() {
        for bad in [
            "",
            "Python",
            "a/../b",
            "../x",
            "a:",
            "a:b c",
            "a//b",
            "x:\0",
            "a:-x",
            "x@sha256:abc",
            "x@md5:00",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "host:0/x",
            "host:99999/x",
            "[zz]:1/x",
            "a/b/",
            "a@",
            &format!("x:{}", "t".repeat(129)),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?}");
        }
    }
}
