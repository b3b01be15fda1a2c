//! Registry credentials (the challenges that ask for them are in `challenge.rs`).
//!
//! Credentials come, in this order, from
//! `ISOLETTE_REGISTRY_USER` and `ISOLETTE_REGISTRY_PASSWORD` (for the registry named by
//! `ISOLETTE_REGISTRY_HOST`, or for any when it is unset), then from Docker's
//! `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), whose
//! `auths` entries `isolette login` writes. Secrets are never formatted: [`Credentials`]'
//! `Debug` hides the password.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::error::{Error, Result};

use super::reference::DOCKER_HUB;

/// The key Docker writes Docker Hub's credentials under.
const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A user name and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user name.
    pub username: String,
    /// The password or access token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<hidden>").finish()
    }
}

impl Credentials {
    /// `Basic base64(user:password)`.
    pub(crate) fn basic_header(&self) -> String {
        format!("Basic {}", BASE64.encode(format!("{}:{}", self.username, self.password)))
    }
}

/// Where Docker keeps its client config: `$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`.
pub fn docker_config_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".docker/config.json"),
    }
}

/// The keys a registry's entry may have in `auths`.
fn auth_keys(registry: &str) -> Vec<String> {
    let mut keys = vec![registry.to_string(), format!("https://{registry}"), format!("http://{registry}")];
    if registry == DOCKER_HUB {
        keys.extend([DOCKER_HUB_AUTH_KEY, "index.docker.io", "registry-1.docker.io"].map(String::from));
    }
    keys
}

/// The key `isolette login` writes a registry's entry under.
fn login_key(registry: &str) -> &str {
    if registry == DOCKER_HUB { DOCKER_HUB_AUTH_KEY } else { registry }
}

/// Credentials for `registry` (as references name it, `docker.io` for Docker Hub) from
/// the environment or Docker's config; `None` means anonymous.
pub fn credentials_for(registry: &str) -> Result<Option<Credentials>> {
    if let (Ok(username), Ok(password)) =
        (std::env::var("ISOLETTE_REGISTRY_USER"), std::env::var("ISOLETTE_REGISTRY_PASSWORD"))
        && std::env::var("ISOLETTE_REGISTRY_HOST").ok().is_none_or(|h| h == registry)
    {
        return Ok(Some(Credentials { username, password }));
    }
    let path = docker_config_path();
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let config: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| Error::config(format!("{}: not valid JSON ({e}); fix or remove it", path.display())))?;
    let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else { return Ok(None) };
    for key in auth_keys(registry) {
        let Some(entry) = auths.get(&key) else { continue };
        if let Some(auth) = entry.get("auth").and_then(|a| a.as_str()).filter(|a| !a.is_empty()) {
            let bad = || {
                Error::config(format!(
                    "{}: the `auth` of `{key}` is not base64 of USER:PASSWORD; log in again with `isolette login {registry}`",
                    path.display()
                ))
            };
            let decoded = BASE64.decode(auth.trim()).map_err(|_| bad())?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = text.split_once(':').ok_or_else(bad)?;
            return Ok(Some(Credentials { username: username.into(), password: password.into() }));
        }
        if let (Some(u), Some(p)) =
            (entry.get("username").and_then(|v| v.as_str()), entry.get("password").and_then(|v| v.as_str()))
        {
            return Ok(Some(Credentials { username: u.into(), password: p.into() }));
        }
    }
    Ok(None)
}

/// Writes `credentials` for `registry` into Docker's `config.json` (keeping everything
/// else in it), readable by the owner only; `None` removes the entry. Returns the file.
pub fn store_credentials(registry: &str, credentials: Option<&Credentials>) -> Result<PathBuf> {
    let path = docker_config_path();
    let mut config: serde_json::Value = match std::fs::read(&path) {
        Ok(t) => serde_json::from_slice(&t)
            .map_err(|e| Error::config(format!("{}: not valid JSON ({e}); fix or remove it", path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let Some(root) = config.as_object_mut() else {
        return Err(Error::config(format!("{}: not a JSON object; fix or remove it", path.display())));
    };
    let auths = root.entry("auths").or_insert_with(|| serde_json::json!({}));
    let Some(auths) = auths.as_object_mut() else {
        return Err(Error::config(format!("{}: `auths` is not an object; fix or remove it", path.display())));
    };
    for key in auth_keys(registry) {
        auths.remove(&key);
    }
    if let Some(c) = credentials {
        let auth = BASE64.encode(format!("{}:{}", c.username, c.password));
        auths.insert(login_key(registry).to_string(), serde_json::json!({ "auth": auth }));
    }
    write_private(&path, &serde_json::to_vec_pretty(&config).unwrap_or_default())?;
    Ok(path)
}

/// Writes `bytes` to `path` through a mode-0600 temporary file and a rename.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("write", path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = Credentials { username: "u".into(), password: "hunter2".into() };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(c.basic_header(), "Basic dTpodW50ZXIy");
    }
}
