//! `Store::push`: an image from the store to a registry.
//!
//! The store keeps each image's manifest, config and layer blobs as they came, so a push
//! sends back exactly that image: the same manifest digest, the same layer digests. A
//! built image's layers are kept uncompressed (as Docker keeps them); a push of a built
//! image sends them gzip-compressed, so its manifest is a new one (the image id, its
//! config's digest, stays). Each
//! blob the registry lacks (a `HEAD` first) is uploaded in one piece (`POST` for an
//! upload session, then `PUT` with the digest); the manifest goes last, under the tag.

use super::{Store, sha256_digest};
use crate::error::{Error, Result};
use crate::registry::client::{Body, Client};
use crate::registry::manifest::{self, Descriptor, Manifest};
use crate::registry::{Reference, RegistryOptions, Transfer, TransferState};

impl Store {
    /// Pushes image `name` from the store to `reference` (`localhost:5000/app:1`;
    /// `name` itself when `None`). Returns the manifest's digest, the same the image had
    /// when it was pulled or imported. `progress` hears about each blob.
    pub fn push(
        &self,
        name: &str,
        reference: Option<&str>,
        options: &RegistryOptions,
        progress: &(dyn Fn(&Transfer) + Sync),
    ) -> Result<String> {
        let record = self.record(name)?;
        let target = Reference::parse(reference.unwrap_or(&record.name))?;
        if target.digest().is_some() {
            return Err(Error::config(format!("push to `{target}`: name a tag, not a digest")));
        }
        let not_kept = || Error::Image {
            path: self.root.clone(),
            reason: format!(
                "`{}` was stored without its blobs (by an older isolette); pull or import it again to push it",
                record.name
            ),
        };
        let manifest_digest = record.manifest.clone().ok_or_else(not_kept)?;
        let manifest_bytes = std::fs::read(self.blob_path(&manifest_digest)).map_err(|_| not_kept())?;
        if sha256_digest(&manifest_bytes) != manifest_digest {
            return Err(Error::Image {
                path: self.blob_path(&manifest_digest),
                reason: "damaged manifest blob".into(),
            });
        }
        let Ok(Manifest::Image { media_type, config, layers }) = manifest::parse(&manifest_bytes, None) else {
            return Err(Error::Image { path: self.blob_path(&manifest_digest), reason: "unreadable manifest".into() });
        };
        let (manifest_bytes, manifest_digest, layers) = if record.built {
            self.compressed(manifest_bytes, manifest_digest, layers)?
        } else {
            (manifest_bytes, manifest_digest, layers)
        };
        let client = Client::for_reference(&target, true, options)?;
        let repo = target.repository();
        let blobs: Vec<&Descriptor> = layers.iter().chain([&config]).collect();
        for d in &blobs {
            if !self.blob_path(&d.digest).is_file() {
                return Err(not_kept());
            }
        }
        let count = layers.len();
        for (index, desc) in blobs.iter().enumerate() {
            let event =
                |state, bytes| Transfer { index, count, digest: desc.digest.clone(), state, bytes, total: desc.size };
            let head = client.send("HEAD", &format!("/v2/{repo}/blobs/{}", desc.digest), &[], Body::Empty)?;
            match head.status().as_u16() {
                200 => {
                    progress(&event(TransferState::Exists, desc.size));
                    continue;
                }
                404 => {}
                _ => return Err(client.status_err(head, &format!("blob {}", desc.digest))),
            }
            progress(&event(TransferState::Moving, 0));
            self.upload(&client, repo, desc)?;
            progress(&event(TransferState::Done, desc.size));
        }
        let tag = target.tag().unwrap_or("latest");
        let put = client.send(
            "PUT",
            &format!("/v2/{repo}/manifests/{tag}"),
            &[("Content-Type", &media_type)],
            Body::Bytes(&manifest_bytes),
        )?;
        if put.status().as_u16() != 201 {
            return Err(client.status_err(put, &format!("manifest of {target}")));
        }
        if let Some(got) = put.headers().get("docker-content-digest").and_then(|v| v.to_str().ok())
            && got != manifest_digest
        {
            return Err(client.err(format!("stored the manifest as {got}, not {manifest_digest}")));
        }
        Ok(manifest_digest)
    }

    /// The manifest as a registry gets it: uncompressed layers (a build's) replaced by
    /// their gzip blobs, in a manifest of its own; the manifest as it is when there are none.
    fn compressed(
        &self,
        bytes: Vec<u8>,
        digest: String,
        layers: Vec<Descriptor>,
    ) -> Result<(Vec<u8>, String, Vec<Descriptor>)> {
        if !layers.iter().any(|l| l.media_type == super::commit::LAYER_TAR) {
            return Ok((bytes, digest, layers));
        }
        let bad = || Error::Image { path: self.blob_path(&digest), reason: "unreadable manifest".into() };
        let mut json: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let mut out = Vec::with_capacity(layers.len());
        for (i, layer) in layers.into_iter().enumerate() {
            if layer.media_type != super::commit::LAYER_TAR {
                out.push(layer);
                continue;
            }
            let (gz, size) = self.gzip_blob(&layer.digest)?;
            let entry = json["layers"].get_mut(i).ok_or_else(bad)?;
            entry["mediaType"] = super::commit::LAYER_GZIP.into();
            entry["digest"] = gz.clone().into();
            entry["size"] = size.into();
            out.push(Descriptor { media_type: super::commit::LAYER_GZIP.into(), digest: gz, size, ..layer });
        }
        let bytes = serde_json::to_vec(&json).map_err(|e| Error::io("encode", &self.root, std::io::Error::other(e)))?;
        let digest = sha256_digest(&bytes);
        Ok((bytes, digest, out))
    }

    /// Uploads one blob in one piece.
    fn upload(&self, client: &Client, repo: &str, desc: &Descriptor) -> Result<()> {
        let start = client.send("POST", &format!("/v2/{repo}/blobs/uploads/"), &[], Body::Empty)?;
        if start.status().as_u16() != 202 {
            return Err(client.status_err(start, &format!("an upload of {}", desc.digest)));
        }
        let location = start
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| client.err("the registry started an upload without a Location"))?
            .to_string();
        let sep = if location.contains('?') { '&' } else { '?' };
        let url = format!("{location}{sep}digest={}", desc.digest.replace(':', "%3A"));
        let path = self.blob_path(&desc.digest);
        let size = desc.size.to_string();
        let headers = [("Content-Type", "application/octet-stream"), ("Content-Length", size.as_str())];
        let put = client.send("PUT", &url, &headers, Body::File(&path))?;
        if put.status().as_u16() != 201 {
            return Err(client.status_err(put, &format!("the upload of {}", desc.digest)));
        }
        Ok(())
    }
}
