//! [`Image`]: an ordered list of read-only layer directories.
//!
//! Parent side only. The image is checked once when it is opened and never written to:
//! each run stacks its own writable layer on top of it with overlayfs.

use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::Flock;

use crate::error::{Error, Result};

/// An unpacked image: one root filesystem directory, or read-only layers stacked lowest first.
///
/// Opening checks that every layer exists and can be used by overlayfs; the directories are
/// never written to. An `Image` is cheap to clone and can be shared by many concurrent runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    layers: Vec<PathBuf>,
    config: ImageConfig,
    lease: Lease,
}

/// Shared `flock`s on a store image's layer directories, held for as long as any clone of
/// the [`Image`] lives, so that removing or pruning images never deletes a layer that a
/// caller may still run (the store's prune skips a layer it cannot lock exclusively). A
/// killed holder's locks go with its process. Not part of an image's identity.
#[derive(Clone, Default)]
pub(crate) struct Lease(Option<Arc<Vec<Flock<File>>>>);

impl Lease {
    pub(crate) fn new(locks: Vec<Flock<File>>) -> Lease {
        Lease(Some(Arc::new(locks)))
    }
}

impl PartialEq for Lease {
    fn eq(&self, _: &Lease) -> bool {
        true
    }
}

impl Eq for Lease {}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lease({} layers)", self.0.as_ref().map_or(0, |l| l.len()))
    }
}

/// Defaults a run takes from an image's config, each overridable by the caller exactly as
/// with `docker run`: the caller's environment entries win over the image's, an explicit
/// working directory or user wins, and a command the caller gives replaces `cmd` (the
/// `entrypoint` stays in front of it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "store", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct ImageConfig {
    /// `KEY=VALUE` entries.
    pub env: Vec<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`.
    pub user: Option<String>,
    /// Runs in front of the command.
    pub entrypoint: Vec<String>,
    /// The command when the caller gives none.
    pub cmd: Vec<String>,
    /// Its healthcheck (`HEALTHCHECK`), as Docker keeps it in the config: `{"Test":
    /// ["CMD", ...], "Interval": nanoseconds, "Timeout", "StartPeriod", "Retries"}`.
    #[cfg_attr(feature = "store", serde(default, skip_serializing_if = "Option::is_none"))]
    pub healthcheck: Option<serde_json::Value>,
}

#[cfg(feature = "store")]
impl ImageConfig {
    /// The config of `config`, whose JSON is `raw` (for what the OCI type leaves out:
    /// Docker's `Healthcheck`).
    pub(crate) fn from_oci(config: &oci_spec::image::ImageConfiguration, raw: &[u8]) -> ImageConfig {
        let Some(c) = config.config() else { return ImageConfig::default() };
        let healthcheck = serde_json::from_slice::<serde_json::Value>(raw)
            .ok()
            .and_then(|v| v.get("config")?.get("Healthcheck").cloned())
            .filter(|h| h.is_object());
        ImageConfig {
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
            user: c.user().clone().filter(|u| !u.is_empty()),
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            healthcheck,
        }
    }
}

impl Image {
    /// Opens an image made of one unpacked root filesystem directory.
    ///
    /// ```no_run
    /// let image = isolette::Image::open("images/python")?;
    /// # Ok::<(), isolette::Error>(())
    /// ```
    pub fn open(dir: impl AsRef<Path>) -> Result<Image> {
        Image::from_layers([dir])
    }

    /// Opens an image made of read-only layers, given lowest first (as in an OCI manifest).
    pub fn from_layers<I, P>(dirs: I) -> Result<Image>
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        let layers = dirs.into_iter().map(|d| check_layer(d.as_ref())).collect::<Result<Vec<_>>>()?;
        if layers.is_empty() {
            return Err(Error::config("an image needs at least one layer directory"));
        }
        if layers.len() > MAX_LAYERS {
            return Err(Error::Image {
                path: layers[0].clone(),
                reason: format!("{} layers; overlayfs takes at most {MAX_LAYERS}", layers.len()),
            });
        }
        Ok(Image { layers, config: ImageConfig::default(), lease: Lease::default() })
    }

    /// The same layers with these config defaults.
    pub fn with_config(mut self, config: ImageConfig) -> Image {
        self.config = config;
        self
    }

    /// The same image, holding `lease` on its layers.
    #[cfg(feature = "store")]
    pub(crate) fn with_lease(mut self, lease: Lease) -> Image {
        self.lease = lease;
        self
    }

    /// The defaults a run takes from the image.
    pub fn config(&self) -> &ImageConfig {
        &self.config
    }

    /// Resolves an image user (`uid`, `uid:gid`, `name` or `name:group`) to ids, looking
    /// names up in the image's own `/etc/passwd` and `/etc/group` (the top-most layer that
    /// has the file).
    pub(crate) fn resolve_user(&self, spec: &str) -> Result<(u32, u32)> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        // `root` is 0 with or without an /etc/passwd, as in Docker.
        let (user, group) = (if user == "root" { "0" } else { user }, group.map(|g| if g == "root" { "0" } else { g }));
        let bad = |what: &str| Error::Image {
            path: self.layers.last().cloned().unwrap_or_default(),
            reason: format!("image user `{spec}`: {what}"),
        };
        let lookup = |file: &str, name: &str| -> Option<(u32, Option<u32>)> {
            let text = self.layers.iter().rev().find_map(|l| std::fs::read_to_string(l.join(file)).ok())?;
            text.lines().find_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                (f.first() == Some(&name))
                    .then(|| Some((f.get(2)?.parse().ok()?, f.get(3).and_then(|g| g.parse().ok()))))?
            })
        };
        let (uid, primary_gid) = match user.parse::<u32>() {
            Ok(uid) => (uid, None),
            Err(_) => lookup("etc/passwd", user).ok_or_else(|| bad("not in the image's /etc/passwd"))?,
        };
        let gid = match group {
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => lookup("etc/group", g)
                    .map(|(gid, _)| gid)
                    .ok_or_else(|| bad("group not in the image's /etc/group"))?,
            },
            None => primary_gid.unwrap_or(uid),
        };
        Ok((uid, gid))
    }

    /// The layer directories, lowest first, as absolute canonical paths.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }
}

/// Overlayfs's own limit on lower layers.
const MAX_LAYERS: usize = 500;

fn check_layer(dir: &Path) -> Result<PathBuf> {
    let image_err = |reason: &str| Error::Image { path: dir.to_path_buf(), reason: reason.to_string() };
    if dir.as_os_str().is_empty() {
        return Err(Error::config("image path is empty"));
    }
    let canon = dir.canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => image_err(
            "no such directory; pass an unpacked root filesystem directory (scripts/build-test-images.sh makes some), or import the image into the store",
        ),
        std::io::ErrorKind::PermissionDenied => image_err("permission denied"),
        _ => image_err(&e.to_string()),
    })?;
    if !canon.is_dir() {
        return Err(image_err("is not a directory; pass an unpacked root filesystem directory"));
    }
    let text = canon.to_str().ok_or_else(|| image_err("path is not UTF-8"))?;
    // Overlayfs's mount options separate layers with `:` and options with `,`.
    if let Some(c) = text.chars().find(|c| matches!(c, ':' | ',' | '\\' | '\n' | '\0')) {
        return Err(image_err(&format!(
            "path contains {c:?}, which overlayfs mount options cannot carry; move or link the image elsewhere"
        )));
    }
    if canon == Path::new("/") {
        return Err(image_err("the host's root cannot be an image"));
    }
    Ok(canon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_a_directory_and_canonicalizes() {
        let tmp = tempfile::tempdir().unwrap();
        let img = Image::open(tmp.path().join(".")).unwrap();
        assert_eq!(img.layers(), &[tmp.path().canonicalize().unwrap()]);
    }

    #[test]
    fn refuses_missing_file_and_bad_chars() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = Image::open(tmp.path().join("nope")).unwrap_err();
        assert!(matches!(missing, Error::Image { .. }), "{missing}");
        assert!(missing.to_string().contains("no such directory"));

        let file = tmp.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(Image::open(&file).unwrap_err().to_string().contains("not a directory"));

        let colon = tmp.path().join("a:b");
        std::fs::create_dir(&colon).unwrap();
        assert!(Image::open(&colon).unwrap_err().to_string().contains("':'"));

        assert!(matches!(Image::from_layers(Vec::<PathBuf>::new()), Err(Error::Config(_))));
        assert!(matches!(Image::open(""), Err(Error::Config(_))));
        assert!(Image::open("/").is_err());
    }

    #[test]
    fn resolves_image_users() {
        let base = tempfile::tempdir().unwrap();
        let top = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(base.path().join("etc")).unwrap();
        std::fs::write(base.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n")
            .unwrap();
        std::fs::write(base.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let img = Image::from_layers([base.path(), top.path()]).unwrap();
        assert_eq!(img.resolve_user("1234").unwrap(), (1234, 1234));
        assert_eq!(img.resolve_user("1234:7").unwrap(), (1234, 7));
        assert_eq!(img.resolve_user("app").unwrap(), (1000, 1001), "the primary group from passwd");
        assert_eq!(img.resolve_user("app:staff").unwrap(), (1000, 50));
        assert!(matches!(img.resolve_user("nobody-here"), Err(Error::Image { .. })));
        assert!(matches!(img.resolve_user("app:nogroup"), Err(Error::Image { .. })));
        // A top layer's passwd shadows the base's.
        std::fs::create_dir_all(top.path().join("etc")).unwrap();
        std::fs::write(top.path().join("etc/passwd"), "app:x:2000:2000::/app:/bin/sh\n").unwrap();
        assert_eq!(img.resolve_user("app").unwrap(), (2000, 2000));
    }

    #[test]
    fn keeps_layer_order() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let img = Image::from_layers([a.path(), b.path()]).unwrap();
        assert_eq!(img.layers()[0], a.path().canonicalize().unwrap());
        assert_eq!(img.layers()[1], b.path().canonicalize().unwrap());
    }
}
