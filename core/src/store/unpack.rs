//! Unpacking one layer archive into a directory, safely.
//!
//! The archive is untrusted: entries with `..` fail the import; nothing is written through
//! a symlink or hard link that leaves the layer (the tar crate checks every parent and link
//! source against the destination); device nodes are skipped; extended attributes in the
//! archive are ignored (they could carry overlayfs's own `trusted.overlay.*` keys); file
//! owners are kept only below 65536, the range a sandbox's user namespace maps, and become
//! 65534 otherwise; setuid and setgid bits are dropped (a sandbox's programs run with
//! `no_new_privs`, so inside they mean nothing, and outside no host user may run an image's
//! setuid program from the store). OCI whiteouts become overlayfs whiteouts: `.wh.NAME` a 0/0 character
//! device `NAME`, `.wh..wh..opq` the opaque attribute on its directory (under both the
//! `trusted.` and the `user.` prefix, for mounts with and without a user namespace).

use std::cell::Cell;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use crate::error::{Error, Result};

/// What unpacking counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unpacked {
    pub entries: u64,
    pub whiteouts: u64,
    pub skipped_devices: u64,
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// Highest owner id kept: a user namespace maps 0..65536.
const MAX_KEPT_ID: u64 = 65535;
const NOBODY: u32 = 65534;

/// Unpacks the tar stream `reader` into the existing directory `dest`. `layer` names the
/// archive in errors. `whiteouts` turns OCI whiteouts into overlayfs ones (image layers);
/// without it they are plain files (the outer archive of an image).
pub(crate) fn unpack(reader: impl Read, dest: &Path, layer: &Path, whiteouts: bool) -> Result<Unpacked> {
    let bad = |why: String| Error::Image { path: layer.to_path_buf(), reason: why };
    let read = Rc::new(Cell::new(0u64));
    let mut archive = tar::Archive::new(Counting { inner: reader, read: Rc::clone(&read) });
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let mut counts = Unpacked::default();
    // Where the last entry's data ends in the stream; the stream ending between there and
    // the end of its block is the one error taken as the end of the archive.
    let mut data_end = 0u64;
    let entries = archive.entries().map_err(|e| bad(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = match entry {
            Ok(entry) => entry,
            // The stream ended after the last entry's data, without the padding to a whole
            // block or the end-of-archive blocks: Docker (Go's archive/tar) takes that as
            // the end, and so do we. An end inside an entry's data is still an error.
            Err(_) if (data_end..=data_end.next_multiple_of(512)).contains(&read.get()) => break,
            Err(e) => return Err(bad(format!("broken tar entry: {e}"))),
        };
        data_end = entry.raw_file_position() + entry.header().entry_size().unwrap_or(u64::MAX / 2);
        let path = entry.path().map_err(|e| bad(format!("bad entry path: {e}")))?.into_owned();
        let relative =
            relative_path(&path).ok_or_else(|| bad(format!("entry `{}` leaves the layer", path.display())))?;
        counts.entries += 1;
        if relative.as_os_str().is_empty() {
            continue; // The layer's root itself (`./`).
        }
        let name = relative.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let parent = dest.join(relative.parent().unwrap_or(Path::new("")));
        if whiteouts && name == OPAQUE_MARKER {
            make_dirs(dest, &parent, layer)?;
            for key in ["trusted.overlay.opaque", "user.overlay.opaque"] {
                xattr::set(&parent, key, b"y").map_err(|e| Error::io("set opaque xattr", &parent, e))?;
            }
            counts.whiteouts += 1;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX).filter(|_| whiteouts) {
            make_dirs(dest, &parent, layer)?;
            whiteout(&parent.join(hidden))?;
            counts.whiteouts += 1;
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_block_special() || kind.is_character_special() {
            counts.skipped_devices += 1;
            continue;
        }
        let (uid, gid) = (entry.header().uid().unwrap_or(0), entry.header().gid().unwrap_or(0));
        let mode = entry.header().mode().unwrap_or(0);
        let unpacked = entry.unpack_in(dest).map_err(|e| bad(format!("entry `{}`: {}", path.display(), chain(&e))))?;
        if !unpacked {
            return Err(bad(format!("entry `{}` leaves the layer", path.display())));
        }
        if kind.is_file() {
            clear_set_ids(&dest.join(&relative), mode as u32)?;
        }
        if uid > MAX_KEPT_ID || gid > MAX_KEPT_ID {
            let target = dest.join(&relative);
            let id = |v: u64| if v > MAX_KEPT_ID { Some(NOBODY) } else { Some(v as u32) };
            std::os::unix::fs::lchown(&target, id(uid), id(gid)).map_err(|e| Error::io("chown", &target, e))?;
        }
    }
    Ok(counts)
}

/// Drops the setuid and setgid bits of the file at `path` (whose mode is `mode`), as every
/// unpacked layer in the store has them dropped (see the module docs).
pub(crate) fn clear_set_ids(path: &Path, mode: u32) -> Result<()> {
    if mode & 0o6000 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode & 0o1777))
        .map_err(|e| Error::io("chmod", path, e))
}

/// Counts the bytes read from the archive stream.
struct Counting<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

/// An error and its causes, for messages (the tar crate wraps the io error that matters).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The entry's path inside the layer: leading `/` and `.` parts dropped (empty for the root
/// itself); `None` for `..`.
fn relative_path(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Creates `dir` and its parents below `root`, refusing to pass through a symlink.
fn make_dirs(root: &Path, dir: &Path, layer: &Path) -> Result<()> {
    let relative = dir.strip_prefix(root).unwrap_or(Path::new(""));
    let mut at = root.to_path_buf();
    for part in relative.components() {
        at.push(part);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::Image {
                    path: layer.to_path_buf(),
                    reason: format!("whiteout below `{}`, which is not a directory", at.display()),
                });
            }
            Err(_) => std::fs::create_dir(&at).map_err(|e| Error::io("mkdir", &at, e))?,
        }
    }
    Ok(())
}

/// An overlayfs whiteout: a character device 0/0 (replacing whatever the layer had there).
fn whiteout(path: &Path) -> Result<()> {
    use nix::sys::stat::{Mode, SFlag, makedev, mknod};
    if let Ok(m) = std::fs::symlink_metadata(path) {
        let removed = if m.is_dir() { std::fs::remove_dir_all(path) } else { std::fs::remove_file(path) };
        removed.map_err(|e| Error::io("remove before whiteout", path, e))?;
    }
    mknod(path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(|e| {
        let hint = if e == nix::errno::Errno::EPERM { " (importing images with whiteouts needs root)" } else { "" };
        Error::io("mknod whiteout", path, std::io::Error::other(format!("{e}{hint}")))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn relative_paths() {
        assert_eq!(relative_path(Path::new("/a/./b")), Some(PathBuf::from("a/b")));
        assert_eq!(relative_path(Path::new("a/../b")), None);
        assert_eq!(relative_path(Path::new("/")), Some(PathBuf::new()));
    }

    #[test]
    fn plain_files_unpack() {
        let dir = tempfile::tempdir().unwrap();
        let data = tar_of(&[("etc/hello.txt", b"hi"), ("./bin/x", b"y")]);
        let n = unpack(&data[..], dir.path(), Path::new("layer"), true).unwrap();
        assert_eq!(n.entries, 2);
        assert_eq!(std::fs::read(dir.path().join("etc/hello.txt")).unwrap(), b"hi");
    }

    #[test]
    fn a_tar_without_its_end_of_archive_marker_unpacks() {
        // Docker accepts layers whose writer never added the two zero blocks at the end.
        // umoci 0.4 writes some with no padding after the last file's data either.
        let full = tar_of(&[("a.txt", b"first"), ("dir/b.txt", b"second")]);
        let data_end = full.len() - full.iter().rev().take_while(|&&b| b == 0).count();
        let no_marker = &full[..data_end.div_ceil(512) * 512];
        let no_padding = &full[..data_end];
        for data in [&full[..], no_marker, no_padding] {
            let dir = tempfile::tempdir().unwrap();
            let n = unpack(data, dir.path(), Path::new("layer"), true).unwrap();
            assert_eq!(n.entries, 2);
            assert_eq!(std::fs::read(dir.path().join("dir/b.txt")).unwrap(), b"second");
        }
        // An end inside the data is not that: it fails.
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(&full[..data_end - 1], dir.path(), Path::new("layer"), true).unwrap_err();
        assert!(matches!(err, Error::Image { .. }), "{err}");
    }

    #[test]
    fn dot_dot_fails_the_layer() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_entry_type(tar::EntryType::Regular);
        // Builder refuses `..` in paths; write the name into the header by hand.
        h.as_old_mut().name[..14].copy_from_slice(b"../escape.txt\0");
        h.set_cksum();
        b.append(&h, &b"x"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let err = unpack(&data[..], dir.path(), Path::new("layer"), true).unwrap_err();
        assert!(err.to_string().contains("leaves the layer"), "{err}");
        assert!(!dir.path().parent().unwrap().join("escape.txt").exists());
    }
}
