//! The image store: images imported from OCI layouts, `oci-archive` tars and `docker save`
//! archives, kept as a content-addressed set of unpacked layers shared by every image that
//! has them.
//!
//! Parent side, no sandbox code. On disk, under the store's directory:
//! - `layers/sha256/<diff id>/`: one unpacked layer, named by the digest of its uncompressed
//!   tar, so two images sharing a base layer share one directory whatever its compression;
//! - `images/<name>.json`: an image record (name, id, ordered layers, config defaults);
//! - `tmp/`: work in progress; everything lands by `rename`, so readers never see half an
//!   import, and a killed import leaves only `tmp/` entries that the next one removes;
//! - `volumes/<name>/`: a named volume (`volume.rs`);
//! - `lock`: `flock`ed by imports, removals and prunes, which therefore never interleave.
//!
//! An [`Image`] opened from the store holds a shared `flock` on each of its layer
//! directories for as long as it lives; prune removes only the unused layers it can lock
//! exclusively, so an image removed while a caller still runs it keeps its layers until
//! the caller lets go (and the next prune takes them).

mod import;
mod unpack;
mod volume;

pub use volume::{Volume, VolumeRecord};

use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image::{Image, ImageConfig, Lease};

/// Entry points for `fuzz/`: the parsers of image sources, without a store.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use std::path::Path;

    use crate::error::Result;

    /// Unpacks a layer tar (any compression) from `bytes` into the directory `dest`.
    pub fn unpack_layer(bytes: &[u8], dest: &Path) -> Result<()> {
        let mut raw: &[u8] = bytes;
        let reader: &mut dyn std::io::Read = &mut raw;
        let decompressed = super::import::decompress(std::io::BufReader::new(reader))
            .map_err(|e| crate::Error::io("read layer", dest, e))?;
        super::unpack::unpack(decompressed, dest, Path::new("fuzz"), true).map(drop)
    }

    /// Reads the image in an OCI layout or `docker save` directory (manifests, index,
    /// config, digests), unpacking nothing.
    pub fn read_layout(dir: &Path) -> Result<()> {
        super::import::read_layout(dir, None).map(drop)
    }
}

/// A content-addressed store of image layers and image records.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// What the store knows of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageRecord {
    /// `name:tag`.
    pub name: String,
    /// The image id: `sha256:` digest of its config.
    pub id: String,
    /// Layer diff ids (`sha256:`), lowest first.
    pub layers: Vec<String>,
    /// Bytes of the unpacked layers.
    pub size: u64,
    /// When the image was built, as its config says.
    pub created: Option<String>,
    /// Defaults a run takes from the image.
    pub config: ImageConfig,
}

/// Where an import is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// The layer being unpacked (0-based), and how many there are.
    pub layer: usize,
    /// Number of layers in the image.
    pub layers: usize,
    /// Blob bytes read so far, over all layers.
    pub bytes: u64,
    /// Blob bytes in all layers that need unpacking.
    pub total_bytes: u64,
}

impl Store {
    /// The store's default directory: `$ISOLETTE_STORE`, else `/var/lib/isolette` for
    /// root, else `$XDG_DATA_HOME/isolette` (`~/.local/share/isolette`).
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("ISOLETTE_STORE") {
            return dir.into();
        }
        if nix::unistd::geteuid().is_root() {
            return "/var/lib/isolette".into();
        }
        match std::env::var_os("XDG_DATA_HOME") {
            Some(d) => PathBuf::from(d).join("isolette"),
            None => {
                PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into())).join(".local/share/isolette")
            }
        }
    }

    /// Opens the store at [`Store::default_dir`].
    pub fn open_default() -> Result<Store> {
        Store::open(Store::default_dir())
    }

    /// Opens (creating if needed) the store in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store> {
        let root = dir.into();
        for sub in ["layers/sha256", "images", "tmp"] {
            let d = root.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| Error::io("create store directory", &d, e))?;
        }
        let root = root.canonicalize().map_err(|e| Error::io("open store", &root, e))?;
        Ok(Store { root })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.root
    }

    fn lock(&self) -> Result<Flock<File>> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| Error::io("flock", &path, e.into()))
    }

    fn layer_dir(&self, hex: &str) -> PathBuf {
        self.root.join("layers/sha256").join(hex)
    }

    fn record_path(&self, name: &str) -> PathBuf {
        self.root.join("images").join(format!("{}.json", name.replace('/', "%")))
    }

    /// Imports an OCI image layout directory, an `oci-archive` tar or a `docker save`
    /// archive. `name` (`NAME[:TAG]`) overrides the name the source gives. Digests are
    /// verified; a bad source is an error and leaves nothing half-imported. Layers the
    /// store already has are not unpacked again.
    pub fn import(&self, source: &Path, name: Option<&str>, progress: &mut dyn FnMut(Progress)) -> Result<ImageRecord> {
        let wanted = name.map(normalize_name).transpose()?;
        let wanted_tag = wanted.as_deref().and_then(|n| n.rsplit_once(':')).map(|(_, t)| t);
        let _lock = self.lock()?;
        self.clean_tmp();
        let work = TempDir::new(&self.root.join("tmp"), "import")?;
        let layout = if source.is_dir() {
            source.to_path_buf()
        } else {
            let file = import::open(source)?;
            let dir = work.path().join("source");
            std::fs::create_dir(&dir).map_err(|e| Error::io("mkdir", &dir, e))?;
            unpack::unpack(BufReader::new(file), &dir, source, false)?;
            dir
        };
        let src = import::read_layout(&layout, wanted_tag)?;
        let name = match wanted {
            Some(n) => n,
            None => normalize_name(src.name.as_deref().ok_or_else(|| Error::Image {
                path: source.to_path_buf(),
                reason: "the image has no name; give one with --name NAME:TAG".into(),
            })?)?,
        };

        let missing: Vec<&import::LayerSource> =
            src.layers.iter().filter(|l| !self.layer_dir(&l.diff_id).exists()).collect();
        let total_bytes = missing.iter().map(|l| l.size).sum();
        let mut done = 0u64;
        for (i, layer) in src.layers.iter().enumerate() {
            if self.layer_dir(&layer.diff_id).exists() {
                continue;
            }
            let mut report = |n: u64| {
                done += n;
                progress(Progress { layer: i, layers: src.layers.len(), bytes: done, total_bytes });
            };
            self.unpack_layer(layer, &work, &mut report)?;
        }
        let size = src.layers.iter().map(|l| self.layer_size(&l.diff_id)).sum();
        let record = ImageRecord {
            name,
            id: format!("sha256:{}", src.id),
            layers: src.layers.iter().map(|l| format!("sha256:{}", l.diff_id)).collect(),
            size,
            created: src.config.created().clone(),
            config: ImageConfig::from_oci(&src.config),
        };
        self.write_record(&record, &work)?;
        Ok(record)
    }

    /// Unpacks one layer into `tmp/`, checks both digests, and renames it into place.
    fn unpack_layer(&self, layer: &import::LayerSource, work: &TempDir, report: &mut dyn FnMut(u64)) -> Result<()> {
        let dest = work.path().join(&layer.diff_id);
        std::fs::create_dir(&dest).map_err(|e| Error::io("mkdir", &dest, e))?;
        let file = import::open(&layer.blob)?;
        let mut blob = import::Hashing::new(file, report);
        let mut none = |_: u64| {};
        let diff_hex = {
            let reader: &mut dyn std::io::Read = &mut blob;
            let decompressed =
                import::decompress(BufReader::new(reader)).map_err(|e| Error::io("read layer", &layer.blob, e))?;
            let mut tar = import::Hashing::new(decompressed, &mut none);
            unpack::unpack(&mut tar, &dest, &layer.blob, true)?;
            tar.finish().map_err(|e| Error::io("read layer", &layer.blob, e))?
        };
        let blob_hex = blob.finish().map_err(|e| Error::io("read layer", &layer.blob, e))?;
        let mismatch = |what: &str, want: &str, got: &str| Error::Image {
            path: layer.blob.clone(),
            reason: format!("{what} digest mismatch: expected sha256:{want}, the content has sha256:{got}"),
        };
        if let Some(want) = &layer.blob_digest
            && *want != blob_hex
        {
            return Err(mismatch("layer", want, &blob_hex));
        }
        if layer.diff_id != diff_hex {
            return Err(mismatch("uncompressed layer (diff id)", &layer.diff_id, &diff_hex));
        }
        let size = dir_size(&dest);
        std::fs::write(dest.with_extension("size"), size.to_string()).map_err(|e| Error::io("write", &dest, e))?;
        let final_dir = self.layer_dir(&layer.diff_id);
        std::fs::rename(dest.with_extension("size"), final_dir.with_extension("size"))
            .map_err(|e| Error::io("rename", &final_dir, e))?;
        std::fs::rename(&dest, &final_dir).map_err(|e| Error::io("rename into the store", &final_dir, e))
    }

    fn layer_size(&self, hex: &str) -> u64 {
        std::fs::read_to_string(self.layer_dir(hex).with_extension("size"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    fn write_record(&self, record: &ImageRecord, work: &TempDir) -> Result<()> {
        let tmp = work.path().join("record.json");
        let json =
            serde_json::to_vec_pretty(record).map_err(|e| Error::io("encode", &tmp, std::io::Error::other(e)))?;
        std::fs::write(&tmp, json).map_err(|e| Error::io("write", &tmp, e))?;
        let path = self.record_path(&record.name);
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))
    }

    /// The record of image `name` (`NAME[:TAG]`, tag `latest` when left out).
    pub fn record(&self, name: &str) -> Result<ImageRecord> {
        let name = normalize_name(name)?;
        let path = self.record_path(&name);
        let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::Image {
                path: self.root.clone(),
                reason: format!(
                    "no image `{name}` in the store; import it with `isolette image import FILE --name {name}`"
                ),
            },
            _ => Error::io("read", &path, e),
        })?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Image { path, reason: format!("damaged image record: {e}") })
    }

    /// Opens image `name` for running. The image holds its layers (a shared lock on each)
    /// while it or any clone of it lives: `remove` and `prune` leave them alone until then.
    pub fn image(&self, name: &str) -> Result<Image> {
        let record = self.record(name)?;
        let dirs = record
            .layers
            .iter()
            .map(|d| Ok(self.layer_dir(&import::sha256_hex(d, &self.root)?)))
            .collect::<Result<Vec<_>>>()?;
        let locks = dirs.iter().map(|d| lease_layer(d, &record.name)).collect::<Result<Vec<_>>>()?;
        Ok(Image::from_layers(dirs)?.with_config(record.config).with_lease(Lease::new(locks)))
    }

    /// Every image in the store, by name.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let dir = self.root.join("images");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(|e| Error::io("read", &dir, e))?.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Ok(bytes) = std::fs::read(&path)
                && let Ok(record) = serde_json::from_slice::<ImageRecord>(&bytes)
            {
                out.push(record);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes image `name`, then every layer no image uses any more.
    pub fn remove(&self, name: &str) -> Result<Vec<String>> {
        let record = self.record(name)?;
        {
            let _lock = self.lock()?;
            let path = self.record_path(&record.name);
            std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, e))?;
        }
        self.prune()
    }

    /// Removes the layers no image uses and what interrupted imports left in `tmp/`;
    /// returns the removed layers' diff ids.
    pub fn prune(&self) -> Result<Vec<String>> {
        let _lock = self.lock()?;
        self.clean_tmp();
        let used: std::collections::HashSet<String> = self.list()?.into_iter().flat_map(|r| r.layers).collect();
        let layers = self.root.join("layers/sha256");
        let mut removed = Vec::new();
        for entry in std::fs::read_dir(&layers).map_err(|e| Error::io("read", &layers, e))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.path().is_dir() || used.contains(&format!("sha256:{name}")) {
                continue;
            }
            // A layer some caller's image still holds is in use, whatever the records say.
            let Some(_held) =
                File::open(entry.path()).ok().and_then(|f| Flock::lock(f, FlockArg::LockExclusiveNonblock).ok())
            else {
                continue;
            };
            // Out of sight first (one rename), then deleted, all under the exclusive lock.
            let doomed = self.root.join("tmp").join(format!("prune-{name}"));
            std::fs::rename(entry.path(), &doomed).map_err(|e| Error::io("rename", entry.path(), e))?;
            let _ = std::fs::remove_file(entry.path().with_extension("size"));
            std::fs::remove_dir_all(&doomed).map_err(|e| Error::io("remove", &doomed, e))?;
            removed.push(format!("sha256:{name}"));
        }
        Ok(removed)
    }

    /// Removes `tmp/` entries; called with the lock held, so none is in use.
    fn clean_tmp(&self) {
        if let Ok(entries) = std::fs::read_dir(self.root.join("tmp")) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path()).or_else(|_| std::fs::remove_file(e.path()));
            }
        }
    }
}

/// Takes a shared lock on one layer directory of image `name`. A prune that got its
/// exclusive lock first renames the directory away before letting go, so once the shared
/// lock is granted the path must still lead to the same directory.
fn lease_layer(dir: &Path, name: &str) -> Result<Flock<File>> {
    let gone = || Error::Image {
        path: dir.to_path_buf(),
        reason: format!("a layer of `{name}` was removed from the store while being opened; import it again"),
    };
    let file = File::open(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => gone(),
        _ => Error::io("open", dir, e),
    })?;
    let lock = Flock::lock(file, FlockArg::LockShared).map_err(|(_, e)| Error::io("flock", dir, e.into()))?;
    let held = lock.metadata().map_err(|e| Error::io("stat", dir, e))?;
    match std::fs::metadata(dir) {
        Ok(now) if (now.dev(), now.ino()) == (held.dev(), held.ino()) => Ok(lock),
        _ => Err(gone()),
    }
}

/// `name[:tag]` → `name:tag` (tag `latest` by default); names are `[a-z0-9._/-]`, tags
/// `[A-Za-z0-9._-]`, as in Docker references.
pub(crate) fn normalize_name(name: &str) -> Result<String> {
    let bad =
        || Error::config(format!("image name `{}`: expected NAME[:TAG], like `python:3.12`", name.escape_debug()));
    let (repo, tag) = match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (name, "latest"),
    };
    let repo_ok = !repo.is_empty()
        && repo.len() <= 200
        && repo.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._/-".contains(&b))
        && !repo.split('/').any(|part| part.is_empty() || part == "." || part == "..");
    let tag_ok =
        !tag.is_empty() && tag.len() <= 128 && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !repo_ok || !tag_ok {
        return Err(bad());
    }
    Ok(format!("{repo}:{tag}"))
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// A directory in the store's `tmp/`, removed when dropped (whatever happened).
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: &Path, what: &str) -> Result<TempDir> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = parent.join(format!("{what}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir(&dir).map_err(|e| Error::io("mkdir", &dir, e))?;
        Ok(TempDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(normalize_name("python").unwrap(), "python:latest");
        assert_eq!(normalize_name("python:3.12").unwrap(), "python:3.12");
        assert_eq!(normalize_name("library/gcc:14").unwrap(), "library/gcc:14");
        assert_eq!(normalize_name("localhost/a/b:v1.0-rc").unwrap(), "localhost/a/b:v1.0-rc");
        for bad in ["", "Python", "a/../b", "../x", "a:", "a:b c", "a//b", "x:\0"] {
            assert!(normalize_name(bad).is_err(), "{bad}");
        }
    }
}
