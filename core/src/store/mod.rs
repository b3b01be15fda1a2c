//! The image store: images imported from OCI layouts, `oci-archive` tars and `docker save`
//! archives, kept as a content-addressed set of unpacked layers shared by every image that
//! has them.
//!
//! Parent side, no sandbox code. On disk, under the store's directory:
//! - `layers/sha256/<diff id>/`: one unpacked layer, named by the digest of its uncompressed
//!   tar, so two images sharing a base layer share one directory whatever its compression;
//! - `blobs/sha256/<digest>`: each image's manifest, config and layer blobs as they came
//!   (compressed), kept so that `push` sends back exactly the image that came in;
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

mod commit;
mod import;
#[cfg(feature = "registry")]
mod pull;
#[cfg(feature = "registry")]
mod push;
mod unpack;
mod volume;

pub use commit::{NewLayer, StoredLayer};
pub use volume::{Volume, VolumeRecord};

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image::{Image, ImageConfig, Lease};
use crate::registry::Reference;
use crate::registry::manifest::Manifest;

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

    /// Parses a registry's manifest or index served as `content_type`, and picks the
    /// entry for `platform` (`os/arch[/variant]`) from an index: a description, or why not.
    pub fn parse_manifest(bytes: &[u8], content_type: Option<&str>, platform: &str) -> Result<String, String> {
        use crate::registry::manifest::{Manifest, Platform, parse, pick};
        match parse(bytes, content_type)? {
            Manifest::Image { media_type, config, layers } => {
                Ok(format!("{} {} {media_type}", config.digest, layers.len()))
            }
            Manifest::Index { manifests } => {
                let platform = Platform::parse(platform)?;
                pick(&manifests, &platform).map(|d| d.digest.clone())
            }
        }
    }

    /// Parses a `WWW-Authenticate` header value.
    pub fn parse_challenge(header: &str) -> Option<String> {
        crate::registry::challenge::parse_challenge(header).map(|c| format!("{c:?}"))
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
    /// Digest of the image's manifest, kept in the store's blobs (`None` for images
    /// stored before blobs were kept: pull or import them again to push them).
    #[serde(default)]
    pub manifest: Option<String>,
    /// Made by `isolette build`: its own layers are kept uncompressed, and a push sends
    /// them gzip-compressed (in a manifest of its own; the image id stays). Pulled and
    /// imported images are pushed exactly as they came.
    #[serde(default)]
    pub built: bool,
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
    /// The store's default directory: `$ISOLETTE_STORE` (when set and not empty), else
    /// `/var/lib/isolette` for root, else `$XDG_DATA_HOME/isolette` (`~/.local/share/isolette`).
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("ISOLETTE_STORE").filter(|d| !d.is_empty()) {
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
        if root.as_os_str().is_empty() {
            return Err(Error::config("the store's directory is an empty path"));
        }
        for sub in ["layers/sha256", "blobs/sha256", "images", "tmp"] {
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

    fn lock(&self) -> Result<crate::names::Lock> {
        crate::names::lock(&self.root)
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
        let mut blobs = Vec::with_capacity(src.layers.len());
        for (i, layer) in src.layers.iter().enumerate() {
            let mut file = import::open(&layer.blob)?;
            let blob = if self.layer_dir(&layer.diff_id).exists() {
                // Unpacked already (by another image); keep its blob all the same.
                self.keep_blob(&mut file, layer.blob_digest.as_deref(), &layer.blob, &work)?
            } else {
                let mut report = |n: u64| {
                    done += n;
                    progress(Progress { layer: i, layers: src.layers.len(), bytes: done, total_bytes });
                };
                self.land_layer(
                    &mut file,
                    layer.blob_digest.as_deref(),
                    &layer.diff_id,
                    &layer.blob,
                    &work,
                    &mut report,
                )?
            };
            blobs.push(blob);
        }
        let config_digest = self.put_blob(&src.config_bytes, &work)?;
        let manifest = match &src.manifest {
            Some(bytes) => bytes.clone(),
            None => self.synthesize_manifest(&config_digest, src.config_bytes.len(), &blobs)?,
        };
        let manifest_digest = self.put_blob(&manifest, &work)?;
        let record = ImageRecord {
            name,
            id: format!("sha256:{}", src.id),
            layers: src.layers.iter().map(|l| format!("sha256:{}", l.diff_id)).collect(),
            size: src.layers.iter().map(|l| self.layer_size(&l.diff_id)).sum(),
            created: src.config.created().clone(),
            config: ImageConfig::from_oci(&src.config, &src.config_bytes),
            manifest: Some(manifest_digest),
            built: false,
        };
        self.write_record(&record, &work)?;
        Ok(record)
    }

    /// An OCI manifest for an image whose source has none (`docker save`): its config and
    /// its layer blobs, typed by their compression.
    fn synthesize_manifest(&self, config_digest: &str, config_size: usize, blobs: &[(String, u64)]) -> Result<Vec<u8>> {
        let layers: Vec<serde_json::Value> = blobs
            .iter()
            .map(|(digest, size)| {
                let media_type = match self.blob_magic(digest) {
                    [0x1f, 0x8b, ..] => "application/vnd.oci.image.layer.v1.tar+gzip",
                    [0x28, 0xb5, 0x2f, 0xfd] => "application/vnd.oci.image.layer.v1.tar+zstd",
                    _ => "application/vnd.oci.image.layer.v1.tar",
                };
                serde_json::json!({ "mediaType": media_type, "digest": digest, "size": size })
            })
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config_size,
            },
            "layers": layers,
        });
        serde_json::to_vec(&manifest).map_err(|e| Error::io("encode manifest", self.dir(), std::io::Error::other(e)))
    }

    fn blob_magic(&self, digest: &str) -> [u8; 4] {
        let mut magic = [0u8; 4];
        if let Ok(mut f) = File::open(self.blob_path(digest)) {
            let _ = std::io::Read::read_exact(&mut f, &mut magic);
        }
        magic
    }

    /// Where blob `digest` (`sha256:<hex>`, already validated) is kept.
    pub(crate) fn blob_path(&self, digest: &str) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.strip_prefix("sha256:").unwrap_or(digest))
    }

    /// Keeps `bytes` as a blob; returns its digest.
    fn put_blob(&self, bytes: &[u8], work: &TempDir) -> Result<String> {
        let digest = sha256_digest(bytes);
        let tmp = work.path().join(format!("blob-{}", &digest[7..]));
        std::fs::write(&tmp, bytes).map_err(|e| Error::io("write", &tmp, e))?;
        let path = self.blob_path(&digest);
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename into the store", &path, e))?;
        Ok(digest)
    }

    /// Copies a layer blob whose layer is unpacked already into the blobs, checking its
    /// digest (`want`, hex) when the source states one; returns its digest and size.
    fn keep_blob(
        &self,
        blob: &mut dyn Read,
        want: Option<&str>,
        label: &Path,
        work: &TempDir,
    ) -> Result<(String, u64)> {
        let tmp = work.path().join("keep.blob");
        let file = File::create(&tmp).map_err(|e| Error::io("create", &tmp, e))?;
        let mut size = 0;
        let mut count = |n: u64| size += n;
        let mut tee = Tee::new(blob, file);
        let hex = import::Hashing::new(&mut tee, &mut count).finish().map_err(|e| Error::io("read layer", label, e))?;
        tee.finish().map_err(|e| Error::io("write", &tmp, e))?;
        if let Some(want) = want
            && want != hex
        {
            return Err(Error::Image {
                path: label.to_path_buf(),
                reason: format!("layer digest mismatch: expected sha256:{want}, the content has sha256:{hex}"),
            });
        }
        let digest = format!("sha256:{hex}");
        let path = self.blob_path(&digest);
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename into the store", &path, e))?;
        Ok((digest, size))
    }

    /// Streams one layer blob through both digest checks (the blob's against `want_blob`
    /// when given, the uncompressed tar's against `diff_id`) into `tmp/`, then renames the
    /// unpacked layer and the blob into place. Returns the blob's digest and size.
    fn land_layer(
        &self,
        blob: &mut dyn Read,
        want_blob: Option<&str>,
        diff_id: &str,
        label: &Path,
        work: &TempDir,
        report: &mut dyn FnMut(u64),
    ) -> Result<(String, u64)> {
        let dest = work.path().join(diff_id);
        std::fs::create_dir(&dest).map_err(|e| Error::io("mkdir", &dest, e))?;
        let blob_tmp = work.path().join(format!("{diff_id}.blob"));
        let file = File::create(&blob_tmp).map_err(|e| Error::io("create", &blob_tmp, e))?;
        let mut tee = Tee::new(blob, file);
        let mut size = 0;
        let mut counting = |n: u64| {
            size += n;
            report(n);
        };
        let mut hashed = import::Hashing::new(&mut tee, &mut counting);
        let mut none = |_: u64| {};
        let diff_hex = {
            let reader: &mut dyn Read = &mut hashed;
            let decompressed =
                import::decompress(BufReader::new(reader)).map_err(|e| Error::io("read layer", label, e))?;
            let mut tar = import::Hashing::new(decompressed, &mut none);
            unpack::unpack(&mut tar, &dest, label, true)?;
            tar.finish().map_err(|e| Error::io("read layer", label, e))?
        };
        let blob_hex = hashed.finish().map_err(|e| Error::io("read layer", label, e))?;
        tee.finish().map_err(|e| Error::io("write", &blob_tmp, e))?;
        let mismatch = |what: &str, want: &str, got: &str| Error::Image {
            path: label.to_path_buf(),
            reason: format!("{what} digest mismatch: expected sha256:{want}, the content has sha256:{got}"),
        };
        if let Some(want) = want_blob
            && *want != blob_hex
        {
            return Err(mismatch("layer", want, &blob_hex));
        }
        if diff_id != diff_hex {
            return Err(mismatch("uncompressed layer (diff id)", diff_id, &diff_hex));
        }
        let unpacked = dir_size(&dest);
        std::fs::write(dest.with_extension("size"), unpacked.to_string()).map_err(|e| Error::io("write", &dest, e))?;
        let digest = format!("sha256:{blob_hex}");
        let blob_path = self.blob_path(&digest);
        std::fs::rename(&blob_tmp, &blob_path).map_err(|e| Error::io("rename into the store", &blob_path, e))?;
        let final_dir = self.layer_dir(diff_id);
        std::fs::rename(dest.with_extension("size"), final_dir.with_extension("size"))
            .map_err(|e| Error::io("rename", &final_dir, e))?;
        std::fs::rename(&dest, &final_dir).map_err(|e| Error::io("rename into the store", &final_dir, e))?;
        Ok((digest, size))
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
                    "no image `{name}` in the store; pull it (`isolette image pull {name}`) or import it \
                     (`isolette image import FILE --name {name}`)"
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
        self.prune_cache_entries()?;
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
        self.prune_blobs()?;
        Ok(removed)
    }

    /// Removes the blobs no image's manifest names; called with the lock held.
    fn prune_blobs(&self) -> Result<()> {
        let mut used = std::collections::HashSet::new();
        for record in self.list()? {
            let Some(digest) = record.manifest else { continue };
            if let Ok(bytes) = std::fs::read(self.blob_path(&digest))
                && let Ok(Manifest::Image { config, layers, .. }) = crate::registry::manifest::parse(&bytes, None)
            {
                used.extend(layers.into_iter().map(|l| l.digest));
                used.insert(config.digest);
            }
            used.insert(digest);
        }
        let blobs = self.root.join("blobs/sha256");
        for entry in std::fs::read_dir(&blobs).map_err(|e| Error::io("read", &blobs, e))?.flatten() {
            if !used.contains(&format!("sha256:{}", entry.file_name().to_string_lossy())) {
                std::fs::remove_file(entry.path()).map_err(|e| Error::io("remove", entry.path(), e))?;
            }
        }
        Ok(())
    }

    /// The `config` object of a stored image's OCI config (`Env`, `Cmd`, ...), for a build
    /// that starts from it.
    pub(crate) fn image_config(&self, record: &ImageRecord) -> Result<serde_json::Map<String, serde_json::Value>> {
        let (config, _) = self.config_and_layers(record)?;
        Ok(config.get("config").and_then(|c| c.as_object()).cloned().unwrap_or_default())
    }

    /// A shared lock on layer `diff_id`, which keeps a prune from removing it while held.
    pub(crate) fn lease(&self, diff_id: &str) -> Result<Flock<File>> {
        lease_layer(&self.layer_path(diff_id), diff_id)
    }

    /// Bytes of layer `diff_id` unpacked.
    pub(crate) fn layer_bytes(&self, diff_id: &str) -> u64 {
        self.layer_size(diff_id.strip_prefix("sha256:").unwrap_or(diff_id))
    }

    /// Removes what interrupted imports, commits and builds left in `tmp/`, under the lock.
    pub(crate) fn clean_tmp_locked(&self) -> Result<()> {
        let _lock = self.lock()?;
        self.clean_tmp();
        Ok(())
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

/// `name[:tag]` → `name:tag` (tag `latest` by default), in the form Docker shows
/// references: `python:3.12`, `owner/app:1`, `localhost:5000/app:1`, `app@sha256:...`.
pub(crate) fn normalize_name(name: &str) -> Result<String> {
    Reference::parse(name).map(|r| r.familiar()).map_err(|_| {
        Error::config(format!(
            "image name `{}`: expected NAME[:TAG] like `python:3.12`, or [REGISTRY/]NAME[:TAG] like `localhost:5000/app:1`",
            name.escape_debug()
        ))
    })
}

pub(crate) fn dir_size(dir: &Path) -> u64 {
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

/// `sha256:<hex>` of `bytes`: the digest blobs are named by.
pub(crate) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes)))
}

/// A reader that writes a copy of what passes through into a file.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    out: BufWriter<File>,
}

impl<'a> Tee<'a> {
    fn new(inner: &'a mut dyn Read, file: File) -> Self {
        Tee { inner, out: BufWriter::new(file) }
    }

    /// Flushes the copy to the file.
    fn finish(self) -> std::io::Result<()> {
        self.out.into_inner().map(drop).map_err(|e| e.into_error())
    }
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
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

impl Image {
    /// Opens image `name` (`NAME[:TAG]`) from the default store ([`Store::open_default`]).
    ///
    /// ```no_run
    /// let image = isolette::Image::load("python:3.12")?;
    /// # Ok::<(), isolette::Error>(())
    /// ```
    ///
    /// [`Store::open_default`]: crate::Store::open_default
    pub fn load(name: &str) -> Result<Image> {
        Store::open_default()?.image(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_path_is_no_store() {
        let e = Store::open("").expect_err("refused");
        assert_eq!(e.kind(), "config", "{e}");
    }

    #[test]
    fn names() {
        assert_eq!(normalize_name("python").unwrap(), "python:latest");
        assert_eq!(normalize_name("python:3.12").unwrap(), "python:3.12");
        assert_eq!(normalize_name("library/gcc:14").unwrap(), "gcc:14");
        assert_eq!(normalize_name("docker.io/owner/x").unwrap(), "owner/x:latest");
        assert_eq!(normalize_name("localhost:5000/py:3.11").unwrap(), "localhost:5000/py:3.11");
        assert_eq!(normalize_name("localhost/a/b:v1.0-rc").unwrap(), "localhost/a/b:v1.0-rc");
        for bad in ["", "Python", "a/../b", "../x", "a:", "a:b c", "a//b", "x:\0"] {
            assert!(normalize_name(bad).is_err(), "{bad}");
        }
    }
}
