//! `Store::add_layer` and `Store::commit`: a layer tar as a build makes it
//! (`build::write_layer`) kept in the store, and a new image from a base image in the
//! store (or none) and such layers, with the base's config edited.
//!
//! A new layer is kept as the store keeps pulled ones: unpacked under its diff id (shared
//! with any image that has the same tree) and as a gzip blob for `push`. The blob's gzip
//! header carries no time or name, so the same tar always gives the same blob, and with
//! the same `created` time the same image id and manifest digest.

use std::fs::File;
use std::io::BufReader;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{ImageRecord, Store, TempDir, import, normalize_name};
use crate::error::{Error, Result};
use crate::image::ImageConfig;
use crate::registry::manifest::{self, Manifest};

/// A layer the store holds ([`Store::add_layer`]): its diff id and its gzip blob.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredLayer {
    /// `sha256:` digest of the uncompressed tar.
    pub diff_id: String,
    /// `sha256:` digest of the gzip blob.
    pub blob: String,
    /// The blob's size in bytes.
    pub size: u64,
}

/// One step of a new image's history for [`Store::commit`]: the layer it added, if any,
/// and what made it.
#[derive(Debug, Clone)]
pub struct NewLayer {
    /// The layer (`None` for a step that changed only the config, such as `ENV`).
    pub layer: Option<StoredLayer>,
    /// The image history's `created_by` (the Dockerfile step).
    pub created_by: String,
}

/// OCI media types of what a commit writes.
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
#[cfg(feature = "registry")]
pub(crate) const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

impl Store {
    /// Keeps the layer tar at `tar` (as `build::write_layer` writes it) in the store:
    /// unpacked under its diff id, and as a blob. The blob is the tar itself, uncompressed
    /// (as Docker keeps a build's layers); [`push`](Store::push) compresses it on the way
    /// out. `tar` is left where it is.
    pub fn add_layer(&self, tar: &Path) -> Result<StoredLayer> {
        self.add_layer_tree(tar, None, None)
    }

    /// [`add_layer`](Store::add_layer) for a tar made from the directory `tree` (a build
    /// step's writable layer, on the store's filesystem): the store takes `tree` itself as
    /// the layer's unpacked form (moved, not unpacked again), with `epoch` clamping its
    /// times as it clamped the tar's and overlayfs's own attributes left out but the
    /// opaque mark. `tree` is moved into the store, or left as it was.
    pub fn add_layer_tree(&self, tar: &Path, tree: Option<&Path>, epoch: Option<u64>) -> Result<StoredLayer> {
        self.add_layer_leased(tar, tree, epoch).map(|(layer, _lease)| layer)
    }

    /// [`add_layer_tree`](Store::add_layer_tree), with a lease on the layer taken before
    /// the store's lock goes: no prune can remove it before its caller uses it.
    pub(crate) fn add_layer_leased(
        &self,
        tar: &Path,
        tree: Option<&Path>,
        epoch: Option<u64>,
    ) -> Result<(StoredLayer, nix::fcntl::Flock<File>)> {
        let _lock = self.lock()?;
        let work = TempDir::new(&self.root.join("tmp"), "layer")?;
        let (diff_hex, size) = hash_file(tar)?;
        let final_dir = self.layer_dir(&diff_hex);
        if !final_dir.exists() {
            match tree {
                Some(tree) => {
                    settle(tree, epoch)?;
                    std::fs::write(final_dir.with_extension("size"), super::dir_size(tree).to_string())
                        .map_err(|e| Error::io("write", &final_dir, e))?;
                    std::fs::rename(tree, &final_dir).map_err(|e| Error::io("rename into the store", &final_dir, e))?;
                }
                None => {
                    let mut file = File::open(tar).map_err(|e| Error::io("open", tar, e))?;
                    self.land_layer(&mut file, None, &diff_hex, tar, &work, &mut |_| {})?;
                }
            }
        }
        let blob = format!("sha256:{diff_hex}");
        let blob_path = self.blob_path(&blob);
        if !blob_path.is_file() {
            // A link when the tar is on the store's filesystem (a build's is), else a copy:
            // through `tmp/`, so that the blob appears whole or not at all.
            let tmp = work.path().join("layer.tar");
            std::fs::hard_link(tar, &tmp)
                .or_else(|_| std::fs::copy(tar, &tmp).map(drop))
                .and_then(|()| std::fs::rename(&tmp, &blob_path))
                .map_err(|e| Error::io("keep the layer blob", &blob_path, e))?;
        }
        let lease = self.lease(&blob)?;
        Ok((StoredLayer { diff_id: blob.clone(), blob, size }, lease))
    }

    /// Whether the store holds `layer` whole (unpacked and as a blob).
    pub fn has_layer(&self, layer: &StoredLayer) -> bool {
        layer.diff_id.strip_prefix("sha256:").is_some_and(|hex| self.layer_dir(hex).is_dir())
            && self.blob_path(&layer.blob).is_file()
    }

    /// Where the store keeps layer `diff_id` unpacked.
    pub fn layer_path(&self, diff_id: &str) -> PathBuf {
        self.layer_dir(diff_id.strip_prefix("sha256:").unwrap_or(diff_id))
    }

    /// Stores image `name` (`NAME[:TAG]`): the layers of `base` (an image in the store;
    /// `None` for `scratch`) and then `layers`, lowest first, with `base`'s OCI config
    /// changed by `edit` (its `config` object: `Env`, `Cmd`, `Entrypoint`, `WorkingDir`,
    /// `User`, `ExposedPorts`, `Labels`, `StopSignal`, `Volumes`, `Healthcheck`, ...), its
    /// `rootfs` and `history` extended, and `created` (RFC 3339) as its time. A layer the
    /// store does not hold, or a base stored without its blobs, is an error that leaves
    /// nothing behind.
    pub fn commit(
        &self,
        name: &str,
        base: Option<&str>,
        layers: &[NewLayer],
        created: &str,
        edit: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>),
    ) -> Result<ImageRecord> {
        let name = normalize_name(name)?;
        let _lock = self.lock()?;
        let base = base.map(|b| self.record(b)).transpose()?;
        let (mut config, mut descriptors) = match &base {
            Some(record) => self.config_and_layers(record)?,
            None => (scratch_config(), Vec::new()),
        };
        let work = TempDir::new(&self.root.join("tmp"), "commit")?;
        let mut diff_ids: Vec<String> = base.as_ref().map(|b| b.layers.clone()).unwrap_or_default();
        for layer in layers.iter().filter_map(|l| l.layer.as_ref()) {
            if !self.has_layer(layer) {
                return Err(Error::Image {
                    path: self.layer_path(&layer.diff_id),
                    reason: format!(
                        "layer {} is not in the store (pruned while building?); build again",
                        layer.diff_id
                    ),
                });
            }
            descriptors.push(serde_json::json!({ "mediaType": LAYER_TAR, "digest": layer.blob, "size": layer.size }));
            diff_ids.push(layer.diff_id.clone());
        }
        let object = config.as_object_mut().ok_or_else(|| bad_config(&name))?;
        let inner = object.entry("config").or_insert_with(|| serde_json::json!({}));
        edit(inner.as_object_mut().ok_or_else(|| bad_config(&name))?);
        object.insert("created".into(), created.into());
        object.insert("rootfs".into(), serde_json::json!({ "type": "layers", "diff_ids": diff_ids }));
        let history = object.entry("history").or_insert_with(|| serde_json::json!([]));
        if let Some(history) = history.as_array_mut() {
            for layer in layers {
                let mut entry = serde_json::json!({ "created": created, "created_by": layer.created_by });
                if layer.layer.is_none() {
                    entry["empty_layer"] = true.into();
                }
                history.push(entry);
            }
        }
        let config_bytes =
            serde_json::to_vec(&config).map_err(|e| Error::io("encode", &name, std::io::Error::other(e)))?;
        let config_digest = self.put_blob(&config_bytes, &work)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": { "mediaType": CONFIG, "digest": config_digest, "size": config_bytes.len() },
            "layers": descriptors,
        });
        let manifest_bytes =
            serde_json::to_vec(&manifest).map_err(|e| Error::io("encode", &name, std::io::Error::other(e)))?;
        let manifest_digest = self.put_blob(&manifest_bytes, &work)?;
        let parsed = import::parse_config(&config_bytes, Path::new(&name))?;
        let record = ImageRecord {
            name,
            id: config_digest,
            size: diff_ids.iter().map(|d| self.layer_size(d.strip_prefix("sha256:").unwrap_or(d))).sum(),
            layers: diff_ids,
            created: Some(created.to_string()),
            config: ImageConfig::from_oci(&parsed, &config_bytes),
            manifest: Some(manifest_digest),
            built: true,
        };
        self.write_record(&record, &work)?;
        Ok(record)
    }

    /// A stored image's OCI config (as JSON) and its manifest's layer descriptors.
    pub(crate) fn config_and_layers(
        &self,
        record: &ImageRecord,
    ) -> Result<(serde_json::Value, Vec<serde_json::Value>)> {
        let not_kept = || Error::Image {
            path: self.root.clone(),
            reason: format!("`{}` was stored without its blobs; pull or import it again to build on it", record.name),
        };
        let digest = record.manifest.as_deref().ok_or_else(not_kept)?;
        let bytes = std::fs::read(self.blob_path(digest)).map_err(|_| not_kept())?;
        let Ok(Manifest::Image { config, layers, .. }) = manifest::parse(&bytes, None) else {
            return Err(Error::Image { path: self.blob_path(digest), reason: "unreadable manifest".into() });
        };
        let config_bytes = std::fs::read(self.blob_path(&config.digest)).map_err(|_| not_kept())?;
        let config = serde_json::from_slice(&config_bytes).map_err(|e| Error::Image {
            path: self.blob_path(&config.digest),
            reason: format!("unreadable config: {e}"),
        })?;
        let descriptors = layers
            .iter()
            .map(|d| serde_json::json!({ "mediaType": d.media_type, "digest": d.digest, "size": d.size }))
            .collect();
        Ok((config, descriptors))
    }
}

fn bad_config(name: &str) -> Error {
    Error::Image { path: PathBuf::from(name), reason: "the base image's config is not a JSON object".into() }
}

/// The config of an image built `FROM scratch`.
fn scratch_config() -> serde_json::Value {
    serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [] },
        "history": [],
    })
}

/// Makes a writable layer's tree what unpacking its tar would have made (`unpack.rs`):
/// overlayfs's own attributes gone but the opaque mark, which goes under both prefixes
/// (mounts with and without a user namespace read different ones), no setuid or setgid
/// bit and no file capability (the tar keeps them), and no time after `epoch`.
fn settle(tree: &Path, epoch: Option<u64>) -> Result<()> {
    let mut stack = vec![tree.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path).map_err(|e| Error::io("list", &path, e))? {
                stack.push(entry.map_err(|e| Error::io("list", &path, e))?.path());
            }
        }
        if meta.is_file() {
            super::unpack::clear_set_ids(&path, meta.permissions().mode())?;
        }
        if !meta.file_type().is_symlink() {
            let _ = xattr::remove(&path, "security.capability");
            let mut opaque = false;
            for name in xattr::list(&path).map_err(|e| Error::io("list xattrs", &path, e))? {
                let name = name.to_string_lossy().into_owned();
                if let Some(key) = name.strip_prefix("trusted.overlay.").or_else(|| name.strip_prefix("user.overlay."))
                {
                    opaque |= key == "opaque" && xattr::get(&path, &name).ok().flatten().as_deref() == Some(b"y");
                    let _ = xattr::remove(&path, &name);
                }
            }
            if opaque {
                for key in ["trusted.overlay.opaque", "user.overlay.opaque"] {
                    xattr::set(&path, key, b"y").map_err(|e| Error::io("set opaque xattr", &path, e))?;
                }
            }
        }
        if let Some(epoch) = epoch
            && std::os::unix::fs::MetadataExt::mtime(&meta) > epoch as i64
        {
            let t = nix::sys::time::TimeSpec::new(epoch as i64, 0);
            nix::sys::stat::utimensat(
                nix::fcntl::AT_FDCWD,
                &path,
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .map_err(|e| Error::io("set the time of", &path, e.into()))?;
        }
    }
    Ok(())
}

/// The sha256 (hex) and length of the file at `path`.
fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut input = BufReader::new(File::open(path).map_err(|e| Error::io("open", path, e))?);
    let mut size = 0;
    let mut count = |n: u64| size += n;
    let hex = import::Hashing::new(&mut input, &mut count).finish().map_err(|e| Error::io("read", path, e))?;
    Ok((hex, size))
}

#[cfg(feature = "registry")]
impl Store {
    /// The uncompressed layer blob `digest` as a gzip blob for a registry: made once (the
    /// same bytes for the same tar: no time or name in the header) and kept beside it, with
    /// its digest and size noted in `blobs/gzip-of/<hex>`.
    pub(crate) fn gzip_blob(&self, digest: &str) -> Result<(String, u64)> {
        use std::io::Write;
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        let note = self.root.join("blobs/gzip-of").join(hex);
        if let Ok(text) = std::fs::read_to_string(&note)
            && let Some((gz, size)) = text.trim().split_once(' ')
            && let Ok(size) = size.parse()
            && self.blob_path(gz).is_file()
        {
            return Ok((gz.to_string(), size));
        }
        let _lock = self.lock()?;
        let work = TempDir::new(&self.root.join("tmp"), "gzip")?;
        let tar = self.blob_path(digest);
        let input = BufReader::new(File::open(&tar).map_err(|e| Error::io("open", &tar, e))?);
        let out_path = work.path().join("layer.gz");
        let out = File::create(&out_path).map_err(|e| Error::io("create", &out_path, e))?;
        let mut gz = flate2::GzBuilder::new().mtime(0).write(out, flate2::Compression::default());
        let mut input = input;
        std::io::copy(&mut input, &mut gz).map_err(|e| Error::io("compress", &tar, e))?;
        gz.finish().and_then(|mut f| f.flush()).map_err(|e| Error::io("write", &out_path, e))?;
        let (gz_hex, size) = hash_file(&out_path)?;
        let gz_digest = format!("sha256:{gz_hex}");
        let path = self.blob_path(&gz_digest);
        std::fs::rename(&out_path, &path).map_err(|e| Error::io("rename into the store", &path, e))?;
        std::fs::create_dir_all(note.parent().unwrap_or(&self.root)).map_err(|e| Error::io("mkdir", &note, e))?;
        std::fs::write(&note, format!("{gz_digest} {size}\n")).map_err(|e| Error::io("write", &note, e))?;
        Ok((gz_digest, size))
    }
}
