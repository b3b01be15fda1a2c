//! `Store::pull`: an image from a registry into the store.
//!
//! The manifest (through an index to this platform's entry) and the config are fetched
//! whole, within size caps, and checked against their digests. Layers the store lacks are
//! then fetched a few at a time, each streamed through the same checks and unpacking as an
//! import, so no layer is ever held in memory, and each lands by `rename`. A failure stops
//! the other transfers and leaves only `tmp/` entries, removed at once (or by the next
//! store operation if the process was killed); a second pull fetches only what is missing.

use std::io::{self, Read};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{ImageRecord, Store, TempDir, import, sha256_digest};
use crate::error::{Error, Result};
use crate::image::ImageConfig;
use crate::registry::client::{Body, Client};
use crate::registry::manifest::{self, Descriptor, Manifest, Platform};
use crate::registry::{Reference, RegistryOptions, Transfer, TransferState};

/// The most layers moved at once.
const MAX_CONCURRENCY: usize = 16;

impl Store {
    /// Pulls image `reference` (`python:3.12`, `ghcr.io/owner/app:1`,
    /// `localhost:5000/app@sha256:...`) from its registry and stores it under the
    /// reference (`python:3.12`), and by digest (`python@sha256:...`). Layers the store
    /// has already are not downloaded. `progress` hears about each layer, from several
    /// threads. A failure leaves nothing of this pull in the store.
    pub fn pull(
        &self,
        reference: &str,
        options: &RegistryOptions,
        progress: &(dyn Fn(&Transfer) + Sync),
    ) -> Result<ImageRecord> {
        let reference = Reference::parse(reference)?;
        let platform = match &options.platform {
            Some(p) => Platform::parse(p).map_err(Error::config)?,
            None => Platform::host(),
        };
        let concurrency = concurrency(options)?;
        let client = Client::for_reference(&reference, false, options)?;
        let repo = reference.repository();

        // The manifest, through an index when the reference names one.
        let (top, top_type) = fetch_manifest(&client, repo, reference.target(), &reference)?;
        let top_digest = sha256_digest(&top);
        if let Some(want) = reference.digest()
            && want != top_digest
        {
            return Err(client.err(format!("manifest digest mismatch: asked for {want}, got {top_digest}")));
        }
        let parsed = manifest::parse(&top, top_type.as_deref()).map_err(|e| client.err(format!("{reference}: {e}")))?;
        let (manifest_bytes, parsed) = match parsed {
            Manifest::Image { .. } => (top, parsed),
            Manifest::Index { manifests } => {
                let entry =
                    manifest::pick(&manifests, &platform).map_err(|e| client.err(format!("{reference}: {e}")))?;
                let (bytes, content_type) = fetch_manifest(&client, repo, &entry.digest, &reference)?;
                if sha256_digest(&bytes) != entry.digest {
                    return Err(client.err(format!("manifest digest mismatch for {}", entry.digest)));
                }
                let parsed = manifest::parse(&bytes, content_type.as_deref())
                    .map_err(|e| client.err(format!("{reference}: {e}")))?;
                (bytes, parsed)
            }
        };
        let Manifest::Image { config: config_desc, layers, .. } = parsed else {
            return Err(client.err(format!("{reference}: an index inside an index is not supported")));
        };

        // The config: what the layers must unpack to, and the run defaults.
        let config_bytes = fetch_small_blob(&client, repo, &config_desc, manifest::MAX_CONFIG)?;
        let label = Path::new(repo);
        let config = import::parse_config(&config_bytes, label)?;
        let diff_ids = import::diff_ids(&config, label)?;
        if diff_ids.len() != layers.len() {
            return Err(client.err(format!(
                "{reference}: {} layers but the config lists {} diff ids",
                layers.len(),
                diff_ids.len()
            )));
        }

        let _lock = self.lock()?;
        self.clean_tmp();
        let work = TempDir::new(&self.root.join("tmp"), "pull")?;
        let count = layers.len();
        let mut jobs = Vec::new();
        for (index, (desc, diff_id)) in layers.iter().zip(&diff_ids).enumerate() {
            let event =
                |state| Transfer { index, count, digest: desc.digest.clone(), state, bytes: 0, total: desc.size };
            // The same layer twice in one image (empty layers are) is fetched once.
            if self.layer_dir(diff_id).exists()
                || jobs.iter().any(|(_, _, d): &(usize, &Descriptor, &String)| *d == diff_id)
            {
                progress(&event(TransferState::Exists));
            } else {
                progress(&event(TransferState::Waiting));
                jobs.push((index, desc, diff_id));
            }
        }
        let queue = Mutex::new(jobs.into_iter());
        let failed = AtomicBool::new(false);
        let first_error = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..concurrency {
                s.spawn(|| {
                    while !failed.load(Ordering::Relaxed) {
                        let Some((index, desc, diff_id)) = queue.lock().unwrap_or_else(|e| e.into_inner()).next()
                        else {
                            break;
                        };
                        let report = |state, bytes| {
                            progress(&Transfer {
                                index,
                                count,
                                digest: desc.digest.clone(),
                                state,
                                bytes,
                                total: desc.size,
                            })
                        };
                        let result = self.pull_layer(&client, repo, desc, diff_id, &work, &failed, &report);
                        if let Err(e) = result {
                            // The first failure is the one to report; the others are its echo.
                            if !failed.swap(true, Ordering::Relaxed) {
                                *first_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }

        let config_digest = self.put_blob(&config_bytes, &work)?;
        debug_assert_eq!(config_digest, config_desc.digest);
        let manifest_digest = self.put_blob(&manifest_bytes, &work)?;
        let record = ImageRecord {
            name: reference.familiar(),
            id: config_digest,
            layers: diff_ids.iter().map(|d| format!("sha256:{d}")).collect(),
            size: diff_ids.iter().map(|d| self.layer_size(d)).sum(),
            created: config.created().clone(),
            config: ImageConfig::from_oci(&config, &config_bytes),
            manifest: Some(manifest_digest),
            built: false,
        };
        if reference.digest().is_none() {
            let by_digest = ImageRecord { name: reference.with_digest(&top_digest).familiar(), ..record.clone() };
            self.write_record(&by_digest, &work)?;
        }
        self.write_record(&record, &work)?;
        Ok(record)
    }

    /// Downloads and lands one layer.
    #[allow(clippy::too_many_arguments)]
    fn pull_layer(
        &self,
        client: &Client,
        repo: &str,
        desc: &Descriptor,
        diff_id: &str,
        work: &TempDir,
        failed: &AtomicBool,
        report: &dyn Fn(TransferState, u64),
    ) -> Result<()> {
        let blob = client.blob(repo, &desc.digest, desc.size)?;
        let mut reader = Abortable { inner: blob, failed };
        let mut bytes = 0;
        let mut moved = |n: u64| {
            bytes += n;
            report(TransferState::Moving, bytes);
        };
        let want = desc.digest.strip_prefix("sha256:");
        let label = Path::new(&desc.digest);
        let landed = self.land_layer(&mut reader, want, diff_id, label, work, &mut moved);
        let (_, size) = landed.map_err(|e| match e {
            // A stream error is the registry's doing: say so, with the registry's name.
            Error::Io { op: "read layer", source, .. } => client.err(format!("layer {}: {source}", desc.digest)),
            e => e,
        })?;
        if size != desc.size {
            return Err(client.err(format!("layer {}: {size} bytes, the manifest says {}", desc.digest, desc.size)));
        }
        report(TransferState::Done, size);
        Ok(())
    }
}

fn concurrency(options: &RegistryOptions) -> Result<usize> {
    match options.concurrency {
        None => Ok(3),
        Some(n @ 1..=MAX_CONCURRENCY) => Ok(n),
        Some(n) => Err(Error::config(format!("concurrency {n}: expected 1 to {MAX_CONCURRENCY}"))),
    }
}

/// Fetches manifest `target` (a tag or digest) of `repo`: its bytes and content type.
fn fetch_manifest(
    client: &Client,
    repo: &str,
    target: &str,
    reference: &Reference,
) -> Result<(Vec<u8>, Option<String>)> {
    let accept = manifest::ACCEPTED.join(", ");
    let mut response =
        client.send("GET", &format!("/v2/{repo}/manifests/{target}"), &[("Accept", &accept)], Body::Empty)?;
    if response.status().as_u16() != 200 {
        let what = format!("image {reference} (manifest {target})");
        return Err(client.status_err(response, &what));
    }
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = response
        .body_mut()
        .with_config()
        .limit(manifest::MAX_MANIFEST)
        .read_to_vec()
        .map_err(|e| client.err(format!("manifest of {reference}: {e}")))?;
    Ok((bytes, content_type))
}

/// Fetches a small blob whole (a config), checking its size and digest.
fn fetch_small_blob(client: &Client, repo: &str, desc: &Descriptor, cap: u64) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    client
        .blob(repo, &desc.digest, desc.size)?
        .take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| client.err(format!("blob {}: {e}", desc.digest)))?;
    if bytes.len() as u64 != desc.size || sha256_digest(&bytes) != desc.digest {
        return Err(client.err(format!("blob {} does not match its digest and size", desc.digest)));
    }
    Ok(bytes)
}

/// A reader that fails once another transfer of the same pull has.
struct Abortable<'a, R> {
    inner: R,
    failed: &'a AtomicBool,
}

impl<R: Read> Read for Abortable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(io::Error::other("stopped: another layer failed"));
        }
        self.inner.read(buf)
    }
}
