//! Registries: the OCI distribution API, for [`Store::pull`](crate::Store::pull) and
//! [`Store::push`](crate::Store::push).
//!
//! - `reference.rs`: image references as Docker writes them;
//! - `manifest.rs`: manifests and indexes, OCI and Docker schema 2, and platforms;
//! - `challenge.rs`: `WWW-Authenticate` challenges;
//! - `auth.rs`: credentials (environment, Docker's `config.json`);
//! - `client.rs`: HTTP to one registry: scheme, tokens, retries, resuming blob streams.
//!
//! The transfers themselves, which write into the store, are in `store/pull.rs` and
//! `store/push.rs`.

#[cfg(feature = "registry")]
mod auth;
#[cfg(any(feature = "registry", feature = "fuzzing"))]
pub(crate) mod challenge;
#[cfg(feature = "registry")]
pub(crate) mod client;
pub(crate) mod manifest;
mod reference;

#[cfg(feature = "registry")]
pub use auth::{Credentials, credentials_for, docker_config_path, store_credentials};
pub use reference::Reference;

/// Settings of a pull or push.
#[cfg(feature = "registry")]
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    pub(crate) platform: Option<String>,
    pub(crate) insecure: Vec<String>,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) concurrency: Option<usize>,
}

#[cfg(feature = "registry")]
impl RegistryOptions {
    /// Defaults: this machine's platform, HTTPS (plain HTTP only for loopback
    /// registries), credentials from the environment or Docker's `config.json`, three
    /// transfers at a time.
    pub fn new() -> RegistryOptions {
        RegistryOptions::default()
    }

    /// Picks `os/arch[/variant]` (e.g. `linux/arm64`) from a multi-platform image.
    pub fn platform(mut self, platform: impl Into<String>) -> Self {
        self.platform = Some(platform.into());
        self
    }

    /// Lets registry `host` (`HOST[:PORT]`, as the reference names it) be spoken to over
    /// plain HTTP when HTTPS fails.
    pub fn insecure_registry(mut self, host: impl Into<String>) -> Self {
        self.insecure.push(host.into());
        self
    }

    /// Uses these credentials instead of looking them up.
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// How many layers move at once (1 to 16; default 3).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }
}

/// Where one blob of a pull or push is, for a progress display.
#[cfg(feature = "registry")]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transfer {
    /// The layer's position in the image (0-based, lowest first).
    pub index: usize,
    /// How many layers the image has.
    pub count: usize,
    /// The blob's digest (`sha256:...`).
    pub digest: String,
    /// What is happening to it.
    pub state: TransferState,
    /// Bytes moved so far.
    pub bytes: u64,
    /// The blob's size.
    pub total: u64,
}

/// What is happening to one blob.
#[cfg(feature = "registry")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferState {
    /// Queued behind other transfers.
    Waiting,
    /// The store (pull) or the registry (push) has it already: nothing to move.
    Exists,
    /// Bytes are moving (a pull unpacks while it downloads).
    Moving,
    /// Moved, checked and in place.
    Done,
}

/// `HOST[:PORT]` of a registry as `login` takes it (`docker.io`, `ghcr.io`,
/// `localhost:5000`, or Docker Hub's `https://index.docker.io/v1/`): the name references
/// use, and where its API answers.
#[cfg(feature = "registry")]
fn registry_host(registry: &str) -> crate::Result<(String, String)> {
    let host = registry.trim_start_matches("https://").trim_start_matches("http://");
    let host = host.strip_suffix("/v1/").or_else(|| host.strip_suffix('/')).unwrap_or(host);
    // A host as a reference would read it: `myhost/x` is Docker Hub's `myhost`, so not that.
    let reference = Reference::parse(&format!("{host}/x")).ok().filter(|r| {
        !host.contains('/') && (r.registry() == host || matches!(host, "index.docker.io" | "registry-1.docker.io"))
    });
    match reference {
        Some(r) => Ok((r.registry().to_string(), r.api_host().to_string())),
        _ => Err(crate::Error::config(format!(
            "registry `{}`: expected HOST[:PORT], like ghcr.io or localhost:5000",
            registry.escape_debug()
        ))),
    }
}

/// Checks `credentials` against `registry` (`HOST[:PORT]`; `docker.io` for Docker Hub)
/// and, when they work, stores them in Docker's `config.json`, where pulls and pushes
/// find them. Returns the registry's name and the file written.
#[cfg(feature = "registry")]
pub fn login(
    registry: &str,
    credentials: &Credentials,
    options: &RegistryOptions,
) -> crate::Result<(String, std::path::PathBuf)> {
    let (name, api_host) = registry_host(registry)?;
    let client = client::Client::connect(&name, &api_host, None, false, &options.insecure, Some(credentials.clone()))?;
    let response = client.send("GET", "/v2/", &[], client::Body::Empty)?;
    if response.status().as_u16() != 200 {
        return Err(client.status_err(response, "the registry"));
    }
    let path = store_credentials(&name, Some(credentials))?;
    Ok((name, path))
}

/// Removes the stored credentials of `registry`; returns its name and the file written.
#[cfg(feature = "registry")]
pub fn logout(registry: &str) -> crate::Result<(String, std::path::PathBuf)> {
    let (name, _) = registry_host(registry)?;
    let path = store_credentials(&name, None)?;
    Ok((name, path))
}

#[cfg(all(test, feature = "registry"))]
mod tests {
    use super::*;

    #[test]
    fn login_hosts() {
        let host = |r: &str| registry_host(r).map(|(n, a)| format!("{n} {a}")).map_err(|e| e.to_string());
        assert_eq!(host("docker.io").unwrap(), "docker.io registry-1.docker.io");
        assert_eq!(host("https://index.docker.io/v1/").unwrap(), "docker.io registry-1.docker.io");
        assert_eq!(host("ghcr.io").unwrap(), "ghcr.io ghcr.io");
        assert_eq!(host("localhost:5000").unwrap(), "localhost:5000 localhost:5000");
        for bad in ["", "myhost", "ghcr.io/owner", "a b", "host:x"] {
            assert!(host(bad).unwrap_err().contains("HOST[:PORT]"), "{bad}");
        }
    }
}
