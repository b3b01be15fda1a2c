//! Manifests and indexes as registries serve them: OCI image manifests and indexes, and
//! Docker's schema 2 manifests and manifest lists (the same shapes under other media
//! types). Parsed into what a pull needs and checked on the way: schema version 2, sha256
//! digests only, a size cap, and no layer that must be fetched from elsewhere.
//!
//! Without the `registry` feature only `prune` reads manifests (the ones the store keeps).
#![cfg_attr(not(feature = "registry"), allow(dead_code))]

use serde::Deserialize;

use super::reference::is_sha256_digest;

/// OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema 2 manifest.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema 2 manifest list.
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Every manifest type a pull accepts, for the `Accept` header.
pub(crate) const ACCEPTED: [&str; 4] = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
/// The largest manifest read (the distribution registry's own limit).
pub(crate) const MAX_MANIFEST: u64 = 4 << 20;
/// The largest image config read.
pub(crate) const MAX_CONFIG: u64 = 32 << 20;
/// More layers than any real image has (overlayfs stacks at most 500 below one mount).
const MAX_LAYERS: usize = 500;

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub urls: Option<Vec<String>>,
}

/// A platform in an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let mut parts = s.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(os), Some(arch), variant, None) if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: variant.filter(|v| !v.is_empty()).map(str::to_string),
            }),
            _ => Err(format!("platform `{}`: expected OS/ARCH[/VARIANT], like linux/amd64", s.escape_debug())),
        }
    }

    /// This machine's platform, in the names images use.
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            other => (other, None),
        };
        Platform { os: "linux".into(), architecture: architecture.into(), variant: variant.map(Into::into) }
    }

    /// Whether an index entry for `other` serves this platform: the same os and
    /// architecture, and the same variant where both name one (`arm64` is `arm64/v8`).
    pub fn matches(&self, other: &Platform) -> bool {
        self.os == other.os
            && self.architecture == other.architecture
            && match (&self.variant, &other.variant) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A parsed manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Manifest {
    /// One image: its config and layers, lowest first.
    Image { media_type: String, config: Descriptor, layers: Vec<Descriptor> },
    /// Several images, one per platform.
    Index { manifests: Vec<Descriptor> },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// Parses manifest `bytes` served as `content_type` (the body's own `mediaType` wins).
pub(crate) fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, String> {
    if bytes.len() as u64 > MAX_MANIFEST {
        return Err(format!("manifest of {} bytes is over the {} MiB limit", bytes.len(), MAX_MANIFEST >> 20));
    }
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| format!("malformed manifest: {e}"))?;
    match raw.schema_version {
        Some(2) => {}
        Some(1) => return Err("schema 1 manifests are deprecated and not supported; push the image again".into()),
        v => return Err(format!("manifest schemaVersion {v:?}; only 2 is supported")),
    }
    // The body's own `mediaType`, when it has one, must be a manifest type we know; a
    // registry's `Content-Type` (sometimes plain `application/json`) only helps when not.
    let known = |t: &str| [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST].contains(&t);
    if let Some(t) = raw.media_type.as_deref().filter(|t| !known(t)) {
        return Err(format!("unsupported manifest media type `{}`", t.escape_debug()));
    }
    let content_type = content_type.map(|c| c.split(';').next().unwrap_or("").trim()).filter(|t| known(t));
    let media_type = raw.media_type.as_deref().or(content_type).unwrap_or("");
    let is_index = match media_type {
        OCI_INDEX | DOCKER_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        // OCI lets `mediaType` be left out: tell by the shape.
        _ if raw.manifests.is_some() && raw.layers.is_none() => true,
        _ if raw.layers.is_some() && raw.manifests.is_none() => false,
        _ => return Err("a manifest with neither `layers` nor `manifests`, and no known media type".into()),
    };
    let check = |d: &Descriptor| {
        if is_sha256_digest(&d.digest) {
            Ok(())
        } else {
            Err(format!("digest `{}` is not sha256:<64 lowercase hex digits>", d.digest.escape_debug()))
        }
    };
    if is_index {
        let manifests = raw.manifests.ok_or("an index without `manifests`")?;
        manifests.iter().try_for_each(check)?;
        return Ok(Manifest::Index { manifests });
    }
    let config = raw.config.ok_or("a manifest without `config`")?;
    let layers = raw.layers.ok_or("a manifest without `layers`")?;
    check(&config)?;
    if config.size > MAX_CONFIG {
        return Err(format!("image config of {} bytes is over the {} MiB limit", config.size, MAX_CONFIG >> 20));
    }
    if layers.len() > MAX_LAYERS {
        return Err(format!("{} layers; at most {MAX_LAYERS} are supported", layers.len()));
    }
    for layer in &layers {
        check(layer)?;
        if layer.media_type.contains("nondistributable") || layer.media_type.contains(".foreign.") {
            return Err(format!(
                "layer {} is non-distributable (foreign); such images are not supported",
                layer.digest
            ));
        }
    }
    let media_type = if media_type.is_empty() { OCI_MANIFEST.to_string() } else { media_type.to_string() };
    Ok(Manifest::Image { media_type, config, layers })
}

/// The index entry for `platform`, or an error listing what the index has.
pub(crate) fn pick<'a>(manifests: &'a [Descriptor], platform: &Platform) -> Result<&'a Descriptor, String> {
    manifests.iter().find(|d| d.platform.as_ref().is_some_and(|p| platform.matches(p))).ok_or_else(|| {
        let have: Vec<String> = manifests
            .iter()
            .filter_map(|d| d.platform.as_ref())
            .filter(|p| p.os != "unknown")
            .map(ToString::to_string)
            .collect();
        format!("no image for {platform} (it has {}); choose one with --platform", have.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn image_manifests_of_both_kinds() {
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"x","digest":"{}","size":7}},
            "layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":9}}]}}"#,
            digest('a'),
            digest('b')
        );
        let Manifest::Image { media_type, config, layers } = parse(json.as_bytes(), None).unwrap() else {
            panic!("not an image")
        };
        assert_eq!((media_type.as_str(), config.size, layers.len()), (DOCKER_MANIFEST, 7, 1));
        // OCI without mediaType: by shape, typed as OCI.
        let oci = format!(r#"{{"schemaVersion":2,"config":{{"digest":"{}","size":1}},"layers":[]}}"#, digest('c'));
        assert!(
            matches!(parse(oci.as_bytes(), None).unwrap(), Manifest::Image { media_type, .. } if media_type == OCI_MANIFEST)
        );
    }

    #[test]
    fn index_picks_the_platform() {
        let json = format!(
            r#"{{"schemaVersion":2,"manifests":[
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"architecture":"amd64","os":"linux"}}}},
            {{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":1,"platform":{{"architecture":"unknown","os":"unknown"}}}}]}}"#,
            digest('1'),
            digest('2'),
            digest('3')
        );
        let Manifest::Index { manifests } = parse(json.as_bytes(), Some(OCI_INDEX)).unwrap() else { panic!() };
        let amd = Platform::parse("linux/amd64").unwrap();
        assert_eq!(pick(&manifests, &amd).unwrap().digest, digest('2'));
        assert_eq!(pick(&manifests, &Platform::parse("linux/arm64").unwrap()).unwrap().digest, digest('1'));
        let err = pick(&manifests, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert!(err.contains("linux/arm64/v8, linux/amd64") && !err.contains("unknown"), "{err}");
    }

    #[test]
    fn bad_manifests() {
        let d = digest('a');
        for (json, why) in [
            ("{", "malformed"),
            (r#"{"schemaVersion":1}"#, "schema 1"),
            (r#"{"schemaVersion":3,"layers":[]}"#, "schemaVersion"),
            (r#"{"schemaVersion":2}"#, "media type"),
            (r#"{"schemaVersion":2,"mediaType":"text/html"}"#, "media type"),
            // Found by fuzz/registry_manifest: a made-up media type on a manifest's shape.
            (
                r#"{"schemaVersion":2,"mediaType":"sha256:x","config":{"digest":"sha256:x","size":1},"layers":[]}"#,
                "media type",
            ),
            (r#"{"schemaVersion":2,"config":{"digest":"sha256:../x","size":1},"layers":[]}"#, "digest"),
            (&format!(r#"{{"schemaVersion":2,"config":{{"digest":"{d}","size":99999999999}},"layers":[]}}"#), "limit"),
            (
                &format!(
                    r#"{{"schemaVersion":2,"config":{{"digest":"{d}","size":1}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{d}","size":1}}]}}"#
                ),
                "foreign",
            ),
            (
                &format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"digest":"x","size":1}}]}}"#),
                "digest",
            ),
        ] {
            let err = parse(json.as_bytes(), None).unwrap_err();
            assert!(err.contains(why), "{json}: {err}");
        }
        assert!(parse(&vec![b' '; (MAX_MANIFEST + 1) as usize], None).unwrap_err().contains("limit"));
        assert!(Platform::parse("linux").is_err() && Platform::parse("a/b/c/d").is_err());
    }
}
