//! `Store::add_layer` and `Store::commit`: a layer tar as a build makes it
//! (`build::write_layer`) kept in the store, and a new image from a base image in the
//! store (or none) and such layers, with the base's config edited.
//!
//! A new layer is kept as the store keeps pulled ones: unpacked under its diff id (shared
//! with any image that has the same tree) and as a gzip blob for `push`. The blob's gzip
//! header carries no time or name, so the same tar always gives the same blob, and with
//! the same `created` time the same image id and manifest digest.

use std::fs::File;
use std::io::{BufReader, Write};
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
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

impl Store {
    /// Keeps the layer tar at `tar` (as `build::write_layer` writes it) in the store:
    /// unpacked under its diff id, and compressed as a blob. A tar the store holds already
    /// costs its compression only.
    pub fn add_layer(&self, tar: &Path) -> Result<StoredLayer> {
        let _lock = self.lock()?;
        let work = TempDir::new(&self.root.join("tmp"), "layer")?;
        let (diff_hex, gz) = compress(tar, &work)?;
        let mut blob = File::open(&gz).map_err(|e| Error::io("open", &gz, e))?;
        let (blob, size) = if self.layer_dir(&diff_hex).exists() {
            self.keep_blob(&mut blob, None, tar, &work)?
        } else {
            self.land_layer(&mut blob, None, &diff_hex, tar, &work, &mut |_| {})?
        };
        Ok(StoredLayer { diff_id: format!("sha256:{diff_hex}"), blob, size })
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
            descriptors.push(serde_json::json!({ "mediaType": LAYER_GZIP, "digest": layer.blob, "size": layer.size }));
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
            config: ImageConfig::from_oci(&parsed),
            manifest: Some(manifest_digest),
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

/// The tar at `tar`, hashed (its diff id, hex) and gzip-compressed into `work` with a
/// header that names no time or file; returns the diff id and the compressed file.
fn compress(tar: &Path, work: &TempDir) -> Result<(String, PathBuf)> {
    let input = BufReader::new(File::open(tar).map_err(|e| Error::io("open", tar, e))?);
    let out_path = work.path().join(format!("layer-{}.gz", std::process::id()));
    let out = File::create(&out_path).map_err(|e| Error::io("create", &out_path, e))?;
    let mut gz = flate2::GzBuilder::new().mtime(0).write(out, flate2::Compression::default());
    let mut none = |_: u64| {};
    let mut hashing = import::Hashing::new(input, &mut none);
    std::io::copy(&mut hashing, &mut gz).map_err(|e| Error::io("compress", tar, e))?;
    gz.finish().and_then(|mut f| f.flush()).map_err(|e| Error::io("write", &out_path, e))?;
    let diff_hex = hashing.finish().map_err(|e| Error::io("read", tar, e))?;
    Ok((diff_hex, out_path))
}
