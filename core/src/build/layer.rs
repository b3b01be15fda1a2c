//! A step's layer: the tree its writable layer holds (an overlay upper directory) as an
//! OCI layer tar, byte for byte the same for the same tree however and whenever it was
//! made, so that its digest (the diff id) names it in the content-addressed store.
//!
//! Entries come sorted by name, depth first. A deletion (overlayfs's character device
//! 0/0) becomes a `.wh.NAME` whiteout; an opaque directory (`trusted.overlay.opaque` or
//! `user.overlay.opaque` = `y`) its `.wh..wh..opq` marker; a second name of a hard-linked
//! file a link to the first; symlinks and FIFOs stay what they are. Modes, owners and
//! extended attributes (PAX `SCHILY.xattr.*`, overlayfs's own left out) are kept; a device
//! node or a socket is refused. With a source date epoch, no time is later than it.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// What [`write_layer`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSummary {
    /// `sha256:` and the hex digest of the tar as written: the layer's diff id.
    pub diff_id: String,
    /// Entries written (whiteouts included); 0 means the step changed nothing, and adds no
    /// layer.
    pub entries: u64,
    /// Deletions and opaque directories among them.
    pub whiteouts: u64,
    /// The tar's length in bytes.
    pub bytes: u64,
}

/// Writes the tree under `upper` to `out` as a layer tar; `epoch` clamps every time.
pub fn write_layer(upper: &Path, out: impl Write, epoch: Option<u64>) -> Result<LayerSummary> {
    let mut writer = Writer {
        tar: tar::Builder::new(Hashing { inner: out, hasher: Sha256::new(), bytes: 0 }),
        epoch,
        links: HashMap::new(),
        summary: LayerSummary { diff_id: String::new(), entries: 0, whiteouts: 0, bytes: 0 },
    };
    writer.tar.mode(tar::HeaderMode::Complete);
    writer.dir(upper, Path::new(""))?;
    let err = |e: std::io::Error| Error::io("write layer", upper, e);
    let mut hashing = writer.tar.into_inner().map_err(err)?;
    hashing.inner.flush().map_err(err)?;
    let mut summary = writer.summary;
    summary.diff_id = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
    summary.bytes = hashing.bytes;
    Ok(summary)
}

struct Writer<W: Write> {
    tar: tar::Builder<Hashing<W>>,
    epoch: Option<u64>,
    /// Hard-linked files met so far, by (device, inode): the path of the first name.
    links: HashMap<(u64, u64), PathBuf>,
    summary: LayerSummary,
}

impl<W: Write> Writer<W> {
    /// Writes what is below the directory `dir`, whose path in the layer is `rel`.
    fn dir(&mut self, dir: &Path, rel: &Path) -> Result<()> {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
            .and_then(|entries| entries.map(|e| e.map(|e| e.file_name())).collect())
            .map_err(|e| Error::io("list", dir, e))?;
        names.sort();
        for name in names {
            let path = dir.join(&name);
            // Names are bytes: a program's file need not have a UTF-8 name.
            let child = rel.join(&name);
            self.entry(&path, &child)?;
        }
        Ok(())
    }

    fn entry(&mut self, path: &Path, rel: &Path) -> Result<()> {
        let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io("stat", path, e))?;
        let kind = meta.file_type();
        let io = |e: std::io::Error| Error::io("write layer entry", path, e);
        if kind.is_char_device() && meta.rdev() == 0 {
            // overlayfs's mark of a deletion.
            let mut name = std::ffi::OsString::from(".wh.");
            name.push(rel.file_name().unwrap_or_default());
            self.marker(&rel.with_file_name(name), &meta).map_err(io)?;
            self.summary.whiteouts += 1;
            return Ok(());
        }
        if kind.is_block_device() || kind.is_char_device() || kind.is_socket() {
            return Err(Error::config(format!(
                "{}: a device node or socket cannot go into an image layer (make it at run time)",
                rel.display()
            )));
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        header.set_mtime(self.time(meta.mtime()));
        header.set_size(0);
        self.summary.entries += 1;
        // A second name of a hard-linked file is a link to the first: the inode, its data
        // and its xattrs went with the first.
        if kind.is_file() && meta.nlink() > 1 {
            if let Some(first) = self.links.get(&(meta.dev(), meta.ino())).cloned() {
                header.set_entry_type(tar::EntryType::Link);
                return self.tar.append_link(&mut header, rel, first).map_err(io);
            }
            self.links.insert((meta.dev(), meta.ino()), rel.to_path_buf());
        }
        self.xattrs(path, kind.is_symlink()).map_err(io)?;
        if kind.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            let mut with_slash = rel.as_os_str().to_owned();
            with_slash.push("/");
            self.tar.append_data(&mut header, with_slash, std::io::empty()).map_err(io)?;
            if is_opaque(path) {
                self.marker(&rel.join(".wh..wh..opq"), &meta).map_err(io)?;
                self.summary.whiteouts += 1;
            }
            return self.dir(path, rel);
        }
        if kind.is_symlink() {
            let target = std::fs::read_link(path).map_err(|e| Error::io("readlink", path, e))?;
            header.set_entry_type(tar::EntryType::Symlink);
            return self.tar.append_link(&mut header, rel, target).map_err(io);
        }
        if kind.is_fifo() {
            header.set_entry_type(tar::EntryType::Fifo);
            return self.tar.append_data(&mut header, rel, std::io::empty()).map_err(io);
        }
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(meta.len());
        let file = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        // A file that changed size since the stat would make a broken tar: refuse it.
        let mut limited = std::io::Read::take(file, meta.len());
        self.tar.append_data(&mut header, rel, &mut limited).map_err(io)
    }

    /// An empty regular file that marks a whiteout or an opaque directory.
    fn marker(&mut self, path: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(self.time(meta.mtime()));
        header.set_size(0);
        self.summary.entries += 1;
        self.tar.append_data(&mut header, path, std::io::empty())
    }

    /// The next entry's extended attributes, as a PAX header, overlayfs's own left out.
    fn xattrs(&mut self, path: &Path, symlink: bool) -> std::io::Result<()> {
        if symlink {
            return Ok(()); // Linux keeps no user xattrs on symlinks; others are not ours.
        }
        let mut list: Vec<(String, Vec<u8>)> = Vec::new();
        for name in xattr::list(path)? {
            let Some(name) = name.to_str() else { continue };
            if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                continue;
            }
            if let Some(value) = xattr::get(path, name)? {
                list.push((format!("SCHILY.xattr.{name}"), value));
            }
        }
        if list.is_empty() {
            return Ok(());
        }
        list.sort();
        self.tar.append_pax_extensions(list.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    fn time(&self, mtime: i64) -> u64 {
        let t = u64::try_from(mtime).unwrap_or(0);
        self.epoch.map_or(t, |e| t.min(e))
    }
}

fn is_opaque(dir: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|key| matches!(xattr::get(dir, key), Ok(Some(v)) if v == b"y"))
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// An upper directory as overlayfs leaves one: files, a hard link, a symlink, a FIFO, a
    /// deletion and an opaque directory (the last two need root).
    fn upper() -> Option<tempfile::TempDir> {
        if !nix::unistd::geteuid().is_root() {
            let why = "making whiteouts (mknod) and trusted xattrs needs root";
            assert!(std::env::var_os("ISOLETTE_TEST_STRICT").is_none_or(|v| v != "1"), "strict: {why}");
            eprintln!("skipped: {why}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::create_dir_all(p.join("etc/app")).unwrap();
        std::fs::write(p.join("etc/app/conf"), "x=1\n").unwrap();
        std::fs::set_permissions(p.join("etc/app/conf"), std::fs::Permissions::from_mode(0o640)).unwrap();
        std::fs::hard_link(p.join("etc/app/conf"), p.join("etc/conf.link")).unwrap();
        std::os::unix::fs::symlink("app/conf", p.join("etc/sym")).unwrap();
        nix::unistd::mkfifo(&p.join("etc/fifo"), nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        nix::sys::stat::mknod(&p.join("etc/gone"), nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0)
            .unwrap();
        std::fs::create_dir(p.join("var")).unwrap();
        xattr::set(p.join("var"), "trusted.overlay.opaque", b"y").unwrap();
        xattr::set(p.join("etc/app/conf"), "user.comment", b"kept").unwrap();
        Some(dir)
    }

    fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, u64, Option<String>)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                let link = e.link_name().unwrap().map(|l| l.to_string_lossy().into_owned());
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                    link,
                )
            })
            .collect()
    }

    #[test]
    fn an_upper_directory_becomes_an_oci_layer() {
        let Some(dir) = upper() else { return };
        let mut tar_bytes = Vec::new();
        let summary = write_layer(dir.path(), &mut tar_bytes, None).unwrap();
        let got = entries(&tar_bytes);
        let names: Vec<&str> = got.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/app/",
                "etc/app/conf",
                "etc/conf.link",
                "etc/fifo",
                "etc/.wh.gone",
                "etc/sym",
                "var/",
                "var/.wh..wh..opq"
            ]
        );
        let by = |n: &str| got.iter().find(|e| e.0 == n).unwrap().clone();
        assert_eq!((by("etc/app/conf").1, by("etc/app/conf").2), (tar::EntryType::Regular, 0o640));
        assert_eq!(
            (by("etc/conf.link").1, by("etc/conf.link").4.as_deref()),
            (tar::EntryType::Link, Some("etc/app/conf"))
        );
        assert_eq!((by("etc/sym").1, by("etc/sym").4.as_deref()), (tar::EntryType::Symlink, Some("app/conf")));
        assert_eq!(by("etc/fifo").1, tar::EntryType::Fifo);
        assert_eq!((summary.entries, summary.whiteouts), (9, 2));
        assert_eq!(summary.bytes, tar_bytes.len() as u64);
        assert_eq!(summary.diff_id, format!("sha256:{}", hex::encode(Sha256::digest(&tar_bytes))));
        // The user xattr travels; overlayfs's own does not.
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let mut seen = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if let Some(exts) = entry.pax_extensions().unwrap() {
                for ext in exts {
                    seen.push(ext.unwrap().key().unwrap().to_string());
                }
            }
        }
        assert_eq!(seen, ["SCHILY.xattr.user.comment"]);
    }

    #[test]
    fn the_same_tree_gives_the_same_digest_and_the_epoch_clamps_times() {
        let Some(dir) = upper() else { return };
        let digest = |epoch| write_layer(dir.path(), std::io::sink(), epoch).unwrap().diff_id;
        let first = digest(Some(1_000));
        assert_eq!(first, digest(Some(1_000)), "byte for byte the same");
        // A later touch changes nothing under the epoch.
        let conf = dir.path().join("etc/app/conf");
        std::fs::File::options().write(true).open(&conf).unwrap().set_modified(std::time::SystemTime::now()).unwrap();
        assert_eq!(first, digest(Some(1_000)));
        assert_ne!(digest(None), first, "without an epoch, times are the files' own");
        let mut tar_bytes = Vec::new();
        write_layer(dir.path(), &mut tar_bytes, Some(1_000)).unwrap();
        assert!(entries(&tar_bytes).iter().all(|e| e.3 <= 1_000));
    }

    #[test]
    fn names_are_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let odd = std::ffi::OsStr::from_bytes(b"caf\xe9");
        std::fs::create_dir(dir.path().join(odd)).unwrap();
        std::fs::write(dir.path().join(odd).join(odd), "x").unwrap();
        let mut tar_bytes = Vec::new();
        write_layer(dir.path(), &mut tar_bytes, Some(0)).unwrap();
        let mut archive = tar::Archive::new(&tar_bytes[..]);
        let names: Vec<Vec<u8>> = archive.entries().unwrap().map(|e| e.unwrap().path_bytes().into_owned()).collect();
        assert_eq!(names, [b"caf\xe9/".to_vec(), b"caf\xe9/caf\xe9".to_vec()]);
    }

    #[test]
    fn devices_are_refused_and_an_empty_tree_adds_nothing() {
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(write_layer(empty.path(), std::io::sink(), None).unwrap().entries, 0);
        let Some(dir) = upper() else { return };
        let dev = nix::sys::stat::makedev(1, 3);
        nix::sys::stat::mknod(
            &dir.path().join("null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            dev,
        )
        .unwrap();
        let e = write_layer(dir.path(), std::io::sink(), None).unwrap_err().to_string();
        assert!(e.contains("null: a device node"), "{e}");
    }
}
