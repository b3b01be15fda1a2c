//! The build's own file steps (`COPY`, `ADD`, `WORKDIR`): a stage's tree as an overlay
//! (its layers below, the step's writable layer on top), mounted in a private mount
//! namespace of a thread made for the step, so the mount is nobody else's and goes when
//! the thread ends, whatever happens to the process. What the step writes through it is
//! what its writable layer then holds, as for a `RUN`.
//!
//! Paths inside the tree are resolved as inside a root ([`resolve_in_root`]): an image's
//! symlink (`/app` to `/etc`, or to `../../..`) leads to the same place in the tree, never
//! to the host.

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;

use super::context::Entry;
use crate::error::{Error, Result};

/// One overlay to mount for a file step: `lower` layers (lowest first) at `target`, with
/// `upper` (its `upper/` and `work/`) as the writable layer, or read-only without.
#[derive(Debug, Clone)]
pub(crate) struct Mount {
    pub target: PathBuf,
    pub lower: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
}

/// Runs `step` in a thread of its own with `mounts` mounted in a private mount namespace.
pub(crate) fn with_mounts<T: Send>(mounts: &[Mount], step: impl FnOnce() -> Result<T> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS | nix::sched::CloneFlags::CLONE_NEWNS)
                    .map_err(|e| Error::io("unshare a mount namespace for a build step", Path::new("/"), e.into()))?;
                nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
                    .map_err(|e| Error::io("make the mounts private", Path::new("/"), e.into()))?;
                for m in mounts {
                    mount(m)?;
                }
                step()
            })
            .join()
            .unwrap_or_else(|_| Err(Error::config("a build step's file work panicked")))
    })
}

fn mount(m: &Mount) -> Result<()> {
    let err = |e: nix::Error| Error::io("mount a build step's tree", &m.target, e.into());
    std::fs::create_dir_all(&m.target).map_err(|e| Error::io("mkdir", &m.target, e))?;
    let mut lower: Vec<&Path> = m.lower.iter().rev().map(PathBuf::as_path).collect();
    let empty = m.target.with_extension("empty");
    if lower.is_empty() {
        std::fs::create_dir_all(&empty).map_err(|e| Error::io("mkdir", &empty, e))?;
        lower.push(&empty);
    }
    if m.upper.is_none() && lower.len() == 1 {
        // A read-only overlay needs two layers: one is a read-only bind.
        let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
        nix::mount::mount(Some(lower[0]), &m.target, None::<&str>, flags, None::<&str>).map_err(err)?;
        let ro = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        return nix::mount::mount(None::<&str>, &m.target, None::<&str>, ro, None::<&str>).map_err(err);
    }
    let mut data = OsString::from("lowerdir=");
    for (i, l) in lower.iter().enumerate() {
        if i > 0 {
            data.push(":");
        }
        data.push(l.as_os_str());
    }
    if let Some(dir) = &m.upper {
        for sub in ["upper", "work"] {
            std::fs::create_dir_all(dir.join(sub)).map_err(|e| Error::io("mkdir", dir.join(sub), e))?;
        }
        data.push(",upperdir=");
        data.push(dir.join("upper"));
        data.push(",workdir=");
        data.push(dir.join("work"));
    }
    // The layer is read from the upper directory as it is: no metadata-only copies and no
    // redirects, which would leave a file's content or a rename in another layer.
    data.push(",redirect_dir=off,metacopy=off");
    let flags = if m.upper.is_none() { MsFlags::MS_RDONLY } else { MsFlags::empty() };
    nix::mount::mount(Some("overlay"), &m.target, Some("overlay"), flags, Some(data.as_os_str())).map_err(err)
}

/// `path` (absolute, as the image sees it) resolved inside `root`: each symlink on the way,
/// the last part included when `follow_last`, is followed as the image would see it, and
/// `..` never climbs above `root`. A missing part ends the walk (the rest is appended).
pub(crate) fn resolve_in_root(root: &Path, path: &Path, follow_last: bool) -> Result<PathBuf> {
    let mut parts: Vec<OsString> = parts_of(path);
    parts.reverse();
    let mut at: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = parts.pop() {
        if part == ".." {
            at.pop();
            continue;
        }
        let candidate = at.iter().fold(root.to_path_buf(), |p, c| p.join(c)).join(&part);
        let last = parts.is_empty();
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() && (!last || follow_last) => {
                links += 1;
                if links > 40 {
                    return Err(Error::config(format!("{}: too many symlinks in the image", path.display())));
                }
                let target = std::fs::read_link(&candidate).map_err(|e| Error::io("readlink", &candidate, e))?;
                if target.is_absolute() {
                    at.clear();
                }
                let mut more = parts_of(&target);
                more.reverse();
                parts.extend(more);
            }
            Ok(_) => at.push(part),
            Err(_) => {
                at.push(part);
                while let Some(rest) = parts.pop() {
                    if rest == ".." {
                        at.pop();
                    } else {
                        at.push(rest);
                    }
                }
            }
        }
    }
    Ok(at.iter().fold(root.to_path_buf(), |p, c| p.join(c)))
}

fn parts_of(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Owner and mode rules of one `COPY` or `ADD`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attrs {
    /// `--chown` resolved; root otherwise, as in Docker.
    pub owner: (u32, u32),
    /// `--chmod`, for files and directories copied.
    pub chmod: Option<u32>,
}

/// Makes `dir` (inside `root`) and its missing parents, owned by `owner`, mode 0755.
pub(crate) fn make_dirs(root: &Path, dir: &Path, owner: (u32, u32)) -> Result<PathBuf> {
    let mut at = PathBuf::from("/");
    for part in parts_of(dir) {
        at.push(part);
        let real = resolve_in_root(root, &at, true)?;
        match std::fs::metadata(&real) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::config(format!("{} is a file in the image, not a directory", at.display())));
            }
            Err(_) => {
                std::fs::create_dir(&real).map_err(|e| Error::io("mkdir", &real, e))?;
                std::os::unix::fs::chown(&real, Some(owner.0), Some(owner.1))
                    .map_err(|e| Error::io("chown", &real, e))?;
                std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| Error::io("chmod", &real, e))?;
            }
        }
    }
    resolve_in_root(root, dir, true)
}

/// Copies the selected `entries` to `dest` (absolute) inside `root`. An entry whose `rel`
/// is empty (one file) becomes `dest` itself, or `dest/NAME` with `into_dir`; the others
/// go under `dest`. Missing directories on the way are made, owned as `attrs` says.
pub(crate) fn copy_entries(root: &Path, entries: &[Entry], dest: &Path, into_dir: bool, attrs: Attrs) -> Result<()> {
    if into_dir || entries.iter().any(|e| !e.rel.as_os_str().is_empty()) {
        make_dirs(root, dest, attrs.owner)?;
    }
    for entry in entries {
        let inside = match (entry.rel.as_os_str().is_empty(), into_dir) {
            (true, false) => dest.to_path_buf(),
            (true, true) => dest.join(entry.path.file_name().unwrap_or_default()),
            (false, _) => dest.join(&entry.rel),
        };
        let (Some(parent), Some(name)) = (inside.parent(), inside.file_name()) else {
            return Err(Error::config(format!("cannot copy {} over the image's root", entry.path.display())));
        };
        let target = make_dirs(root, parent, attrs.owner)?.join(name);
        copy_one(&entry.path, &target, attrs)?;
    }
    Ok(())
}

/// Copies one file, directory (itself, not its contents), symlink or FIFO.
fn copy_one(source: &Path, target: &Path, attrs: Attrs) -> Result<()> {
    let meta = std::fs::symlink_metadata(source).map_err(|e| Error::io("stat", source, e))?;
    let kind = meta.file_type();
    let existing = std::fs::symlink_metadata(target).ok();
    if kind.is_dir() {
        match existing {
            Some(m) if m.is_dir() => {}
            Some(_) => {
                std::fs::remove_file(target).map_err(|e| Error::io("replace", target, e))?;
                std::fs::create_dir(target).map_err(|e| Error::io("mkdir", target, e))?;
            }
            None => std::fs::create_dir(target).map_err(|e| Error::io("mkdir", target, e))?,
        }
    } else {
        if let Some(m) = existing {
            if m.is_dir() {
                return Err(Error::config(format!(
                    "cannot copy {} over the directory {} in the image",
                    source.display(),
                    target.display()
                )));
            }
            std::fs::remove_file(target).map_err(|e| Error::io("replace", target, e))?;
        }
        if kind.is_symlink() {
            let to = std::fs::read_link(source).map_err(|e| Error::io("readlink", source, e))?;
            std::os::unix::fs::symlink(&to, target).map_err(|e| Error::io("symlink", target, e))?;
        } else if kind.is_file() {
            std::fs::copy(source, target).map_err(|e| Error::io("copy to", target, e))?;
        } else {
            nix::unistd::mkfifo(target, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(|e| Error::io("mkfifo", target, e.into()))?;
        }
    }
    std::os::unix::fs::lchown(target, Some(attrs.owner.0), Some(attrs.owner.1))
        .map_err(|e| Error::io("chown", target, e))?;
    if !kind.is_symlink() {
        let mode = attrs.chmod.unwrap_or(meta.mode() & 0o7777);
        std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io("chmod", target, e))?;
        if let Ok(Some(cap)) = xattr::get(source, "security.capability") {
            xattr::set(target, "security.capability", &cap).map_err(|e| Error::io("set capability", target, e))?;
        }
    }
    let mtime = filetime_of(&meta);
    set_mtime(target, mtime)
}

fn filetime_of(meta: &std::fs::Metadata) -> nix::sys::time::TimeSpec {
    nix::sys::time::TimeSpec::new(meta.mtime(), meta.mtime_nsec())
}

fn set_mtime(path: &Path, mtime: nix::sys::time::TimeSpec) -> Result<()> {
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &mtime,
        &mtime,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(|e| Error::io("set the time of", path, e.into()))
}

/// The file at `path`, decompressed when it is gzip.
fn open_archive(path: &Path) -> std::io::Result<Box<dyn Read>> {
    let mut magic = [0u8; 2];
    let gz = std::fs::File::open(path)?.read_exact(&mut magic).is_ok() && magic == [0x1f, 0x8b];
    let file = std::fs::File::open(path)?;
    Ok(if gz { Box::new(flate2::read::GzDecoder::new(file)) } else { Box::new(file) })
}

/// Whether the file at `path` is a tar archive (plain or gzip), which `ADD` extracts.
pub(crate) fn is_tar(path: &Path) -> bool {
    let mut head = Vec::with_capacity(512);
    open_archive(path).is_ok_and(|r| r.take(512).read_to_end(&mut head).is_ok())
        && head.len() == 512
        && &head[257..262] == b"ustar"
}

/// Extracts the tar archive at `archive` (plain or gzip) into `dir` inside `root`, with
/// the owners, modes, times and extended attributes it records.
pub(crate) fn extract(root: &Path, archive: &Path, dir: &Path, owner: (u32, u32)) -> Result<()> {
    let dest = make_dirs(root, dir, owner)?;
    let mut tar = tar::Archive::new(open_archive(archive).map_err(|e| Error::io("open", archive, e))?);
    tar.set_preserve_permissions(true);
    tar.set_preserve_ownerships(true);
    tar.set_unpack_xattrs(true);
    tar.set_overwrite(true);
    tar.unpack(&dest).map_err(|e| {
        let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
        Error::config(format!("ADD {}: {e}{cause}", archive.display()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("real/sub")).unwrap();
        std::os::unix::fs::symlink("/real", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("real/up")).unwrap();
        std::os::unix::fs::symlink("sub", root.join("real/rel")).unwrap();
        let r = |p: &str, follow| resolve_in_root(root, Path::new(p), follow).unwrap();
        assert_eq!(r("/abs/sub/x", true), root.join("real/sub/x"), "an absolute link stays in the root");
        assert_eq!(r("/real/up/passwd", true), root.join("etc/passwd"), "`..` stops at the root");
        assert_eq!(r("/real/rel", true), root.join("real/sub"));
        assert_eq!(r("/real/rel", false), root.join("real/rel"), "the last part itself when not followed");
        assert_eq!(r("/missing/../real", true), root.join("real"));
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_in_root(root, Path::new("/loop/x"), true).is_err(), "a loop is an error");
    }
}
