//! Reading an image source (OCI layout, `oci-archive`, `docker save` archive) into what the
//! store keeps: the config, and each layer's blob with its digests.
//!
//! Every digest is checked: the manifest and config against their descriptors, each layer
//! blob against its descriptor while it streams, and the uncompressed stream against the
//! config's `diff_ids`. Digests are also validated as 64 hex digits before they become
//! paths, so a hostile manifest cannot point outside the layout.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// One layer to unpack.
#[derive(Debug, Clone)]
pub(crate) struct LayerSource {
    pub blob: PathBuf,
    /// `sha256` hex of the blob as stored, when the source states it (OCI).
    pub blob_digest: Option<String>,
    /// `sha256` hex of the uncompressed tar (the config's diff id).
    pub diff_id: String,
    pub size: u64,
}

/// An image read from a source, ready to be stored.
#[derive(Debug)]
pub(crate) struct Source {
    pub config: ImageConfiguration,
    /// `sha256` hex of the config blob: the image id.
    pub id: String,
    pub layers: Vec<LayerSource>,
    /// The name the source gives the image, if any (`RepoTags`, or the OCI ref annotation).
    pub name: Option<String>,
    /// The config blob as it came.
    pub config_bytes: Vec<u8>,
    /// The image manifest as it came, where the source has one (OCI).
    pub manifest: Option<Vec<u8>>,
}

/// Reads the image in an unpacked OCI layout or `docker save` directory.
pub(crate) fn read_layout(dir: &Path, wanted_tag: Option<&str>) -> Result<Source> {
    if dir.join("index.json").is_file() {
        read_oci(dir, wanted_tag)
    } else if dir.join("manifest.json").is_file() {
        read_docker(dir, wanted_tag)
    } else {
        Err(image_err(dir, "neither an OCI image layout (index.json) nor a `docker save` archive (manifest.json)"))
    }
}

fn image_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Image { path: path.to_path_buf(), reason: reason.into() }
}

/// `sha256:<64 hex>` → the hex; anything else is refused.
pub(crate) fn sha256_hex(digest: &str, what: &Path) -> Result<String> {
    match digest.strip_prefix("sha256:") {
        Some(hex) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) => {
            Ok(hex.to_string())
        }
        _ => Err(image_err(what, format!("digest `{digest}` is not sha256:<64 lowercase hex digits>"))),
    }
}

fn blob_path(dir: &Path, hex: &str) -> PathBuf {
    dir.join("blobs/sha256").join(hex)
}

/// Fails unless `path`, symlinks resolved, is inside `dir`: an archive may hold symlinks
/// (older `docker save` links each `layer.tar`), and one pointing at a host file must not
/// make the import read it.
fn check_inside(dir: &Path, path: &Path) -> Result<()> {
    let real = path.canonicalize().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => image_err(path, "blob missing from the image (truncated archive?)"),
        _ => Error::io("resolve", path, e),
    })?;
    let root = dir.canonicalize().map_err(|e| Error::io("resolve", dir, e))?;
    if !real.starts_with(&root) {
        return Err(image_err(path, format!("resolves to `{}`, outside the image", real.display())));
    }
    Ok(())
}

/// Reads a whole (small) blob and checks its digest.
fn read_verified(path: &Path, hex: &str) -> Result<Vec<u8>> {
    let dir = path.ancestors().nth(3).unwrap_or(path);
    check_inside(dir, path)?;
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let got = hex::encode(Sha256::digest(&bytes));
    if got != hex {
        return Err(image_err(path, format!("digest mismatch: expected sha256:{hex}, the content has sha256:{got}")));
    }
    Ok(bytes)
}

fn read_oci(dir: &Path, wanted_tag: Option<&str>) -> Result<Source> {
    let index_path = dir.join("index.json");
    let index = ImageIndex::from_file(&index_path).map_err(|e| image_err(&index_path, format!("index.json: {e}")))?;
    let (manifest_digest, ref_name) = pick_manifest(dir, &index, wanted_tag, 0)?;
    let manifest_path = blob_path(dir, &manifest_digest);
    let manifest_bytes = read_verified(&manifest_path, &manifest_digest)?;
    let manifest = ImageManifest::from_reader(&manifest_bytes[..])
        .map_err(|e| image_err(&manifest_path, format!("manifest: {e}")))?;
    let config_hex = sha256_hex(manifest.config().digest().as_ref(), &manifest_path)?;
    let config_path = blob_path(dir, &config_hex);
    let config_bytes = read_verified(&config_path, &config_hex)?;
    let config = parse_config(&config_bytes, &config_path)?;
    let diff_ids = diff_ids(&config, &config_path)?;
    if diff_ids.len() != manifest.layers().len() {
        return Err(image_err(
            &manifest_path,
            format!("{} layers but the config lists {} diff ids", manifest.layers().len(), diff_ids.len()),
        ));
    }
    let layers = manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(d, diff_id)| {
            let hex = sha256_hex(d.digest().as_ref(), &manifest_path)?;
            let blob = blob_path(dir, &hex);
            check_inside(dir, &blob)?;
            Ok(LayerSource { blob, blob_digest: Some(hex), diff_id, size: d.size() })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Source { config, id: config_hex, layers, name: ref_name, config_bytes, manifest: Some(manifest_bytes) })
}

/// The manifest to import: the one whose ref annotation is `wanted_tag`, else the only one;
/// a nested index is followed (preferring linux/amd64).
fn pick_manifest(
    dir: &Path,
    index: &ImageIndex,
    wanted_tag: Option<&str>,
    depth: u8,
) -> Result<(String, Option<String>)> {
    const REF: &str = "org.opencontainers.image.ref.name";
    let index_path = dir.join("index.json");
    let refs = |d: &oci_spec::image::Descriptor| d.annotations().as_ref().and_then(|a| a.get(REF).cloned());
    let manifests = index.manifests();
    let chosen = match wanted_tag {
        Some(tag) if manifests.iter().any(|d| refs(d).as_deref() == Some(tag)) => {
            manifests.iter().find(|d| refs(d).as_deref() == Some(tag))
        }
        _ if manifests.len() == 1 => manifests.first(),
        _ => manifests.iter().find(|d| {
            d.platform()
                .as_ref()
                .is_some_and(|p| p.architecture().to_string() == "amd64" && p.os().to_string() == "linux")
        }),
    };
    let Some(desc) = chosen else {
        let names: Vec<String> = manifests.iter().filter_map(refs).collect();
        return Err(image_err(
            &index_path,
            format!(
                "holds {} images ({}); pick one with --name NAME:TAG matching its ref",
                manifests.len(),
                names.join(", ")
            ),
        ));
    };
    let hex = sha256_hex(desc.digest().as_ref(), &index_path)?;
    if *desc.media_type() == MediaType::ImageIndex {
        if depth > 2 {
            return Err(image_err(&index_path, "image indexes nested too deep"));
        }
        let nested_path = blob_path(dir, &hex);
        let nested = ImageIndex::from_reader(&read_verified(&nested_path, &hex)?[..])
            .map_err(|e| image_err(&nested_path, format!("nested index: {e}")))?;
        let (digest, _) = pick_manifest(dir, &nested, None, depth + 1)?;
        return Ok((digest, refs(desc)));
    }
    Ok((hex, refs(desc)))
}

pub(crate) fn parse_config(bytes: &[u8], path: &Path) -> Result<ImageConfiguration> {
    ImageConfiguration::from_reader(bytes).map_err(|e| image_err(path, format!("image config: {e}")))
}

pub(crate) fn diff_ids(config: &ImageConfiguration, path: &Path) -> Result<Vec<String>> {
    config.rootfs().diff_ids().iter().map(|d| sha256_hex(d, path)).collect()
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// A path from a `docker save` manifest, which must stay inside the archive.
fn inside(dir: &Path, relative: &str, manifest: &Path) -> Result<PathBuf> {
    let p = Path::new(relative);
    if relative.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(image_err(manifest, format!("path `{relative}` leaves the archive")));
    }
    Ok(dir.join(p))
}

fn read_docker(dir: &Path, wanted_tag: Option<&str>) -> Result<Source> {
    let manifest_path = dir.join("manifest.json");
    let text = std::fs::read(&manifest_path).map_err(|e| Error::io("read", &manifest_path, e))?;
    let manifests: Vec<DockerManifest> =
        serde_json::from_slice(&text).map_err(|e| image_err(&manifest_path, format!("manifest.json: {e}")))?;
    let tags = |m: &DockerManifest| m.repo_tags.clone().unwrap_or_default();
    let chosen = match wanted_tag {
        Some(t) => manifests.iter().find(|m| tags(m).iter().any(|x| x == t || x.ends_with(&format!(":{t}")))),
        None => None,
    }
    .or(if manifests.len() == 1 { manifests.first() } else { None });
    let Some(m) = chosen else {
        return Err(image_err(
            &manifest_path,
            format!("holds {} images; pick one with --name NAME:TAG", manifests.len()),
        ));
    };
    let config_path = inside(dir, &m.config, &manifest_path)?;
    check_inside(dir, &config_path)?;
    let config_bytes = std::fs::read(&config_path).map_err(|e| Error::io("read", &config_path, e))?;
    let id = hex::encode(Sha256::digest(&config_bytes));
    // `<hex>.json` (classic) or `blobs/sha256/<hex>` (Docker 25+): the name is the digest.
    let stem = config_path.file_name().map(|n| n.to_string_lossy().trim_end_matches(".json").to_string());
    if let Some(stem) = stem.filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        && stem != id
    {
        return Err(image_err(&config_path, format!("digest mismatch: named {stem}, the content has sha256:{id}")));
    }
    let config = parse_config(&config_bytes, &config_path)?;
    let diff_ids = diff_ids(&config, &config_path)?;
    if diff_ids.len() != m.layers.len() {
        return Err(image_err(
            &manifest_path,
            format!("{} layers but the config lists {} diff ids", m.layers.len(), diff_ids.len()),
        ));
    }
    let layers = m
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(l, diff_id)| {
            let blob = inside(dir, l, &manifest_path)?;
            check_inside(dir, &blob)?;
            let size = std::fs::metadata(&blob).map_err(|e| Error::io("stat", &blob, e))?.len();
            Ok(LayerSource { blob, blob_digest: None, diff_id, size })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Source { config, id, layers, name: tags(m).into_iter().next(), config_bytes, manifest: None })
}

/// A reader that hashes what passes through and reports how many bytes did.
pub(crate) struct Hashing<'a, R> {
    inner: R,
    hasher: Sha256,
    on_read: &'a mut dyn FnMut(u64),
}

impl<'a, R: Read> Hashing<'a, R> {
    pub(crate) fn new(inner: R, on_read: &'a mut dyn FnMut(u64)) -> Self {
        Hashing { inner, hasher: Sha256::new(), on_read }
    }

    /// Reads to the end (trailing padding counts in a digest) and returns the hex digest.
    pub(crate) fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        (self.on_read)(n as u64);
        Ok(n)
    }
}

/// How a layer blob is compressed, from its first bytes.
pub(crate) fn decompress<'a>(mut reader: BufReader<&'a mut dyn Read>) -> io::Result<Box<dyn Read + 'a>> {
    let magic = reader.fill_buf()?;
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::with_buffer(reader)?)
    } else {
        Box::new(reader)
    })
}

/// Opens a blob for streaming.
pub(crate) fn open(path: &Path) -> Result<File> {
    File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => image_err(path, "blob missing from the image (truncated archive?)"),
        _ => Error::io("open", path, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_must_be_sha256_hex() {
        let p = Path::new("x");
        let good = format!("sha256:{}", "a".repeat(64));
        assert_eq!(sha256_hex(&good, p).unwrap(), "a".repeat(64));
        for bad in ["sha256:../../etc/passwd", "sha512:aa", "sha256:ABC", &format!("sha256:{}", "g".repeat(64))] {
            assert!(sha256_hex(bad, p).is_err(), "{bad}");
        }
    }

    #[test]
    fn docker_paths_stay_inside() {
        let d = Path::new("/x");
        assert!(inside(d, "abc/layer.tar", d).is_ok());
        for bad in ["../etc/passwd", "/etc/passwd", "", "a/../../b"] {
            assert!(inside(d, bad, d).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashing_reader_hashes_everything() {
        let mut n = 0;
        let mut count = |k: u64| n += k;
        let h = Hashing::new(&b"abc"[..], &mut count);
        assert_eq!(h.finish().unwrap(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(n, 3);
    }
}
