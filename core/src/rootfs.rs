//! The sandbox's filesystem as a list of [`MountOp`]s: staging tmpfs, overlay root,
//! `/proc`, a minimal `/dev`, `/tmp`, the caller's bind mounts and the final `pivot_root`.
//!
//! Data only: built on the caller's side by `plan.rs`, run op by op by `spawn/child.rs`.
//!
//! The sequence follows bubblewrap: a tmpfs is mounted on the host's `/tmp` (in the new
//! mount namespace only), the process pivots into it so the host is reachable under
//! `/.oldroot` (host paths stay valid even under `/tmp`), the overlay and everything else
//! are mounted under `/root`, and a second `pivot_root(".", ".")` plus a lazy unmount
//! detaches the staging tmpfs and the host together.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result, Step};

/// Host directory the staging tmpfs is mounted on, in the sandbox's mount namespace only.
pub(crate) const STAGING_MOUNT_POINT: &str = "/tmp";
/// Where the host's root is reachable after the first pivot.
const OLD_ROOT: &str = "/.oldroot";
/// Where the overlay is mounted after the first pivot.
const NEW_ROOT: &str = "/root";

/// Device nodes bound from the host's `/dev`: harmless ones only.
const DEV_NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// `/proc` files that reveal or reach the host kernel, covered with `/dev/null` (Docker's
/// masked paths); missing ones are skipped.
const PROC_MASKED: [&str; 6] = ["kcore", "keys", "timer_list", "sched_debug", "sysrq-trigger", "latency_stats"];
const DEV_LINKS: [(&str, &str); 4] = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
];

/// One filesystem step inside the sandbox's mount namespace.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum MountOp {
    /// `mount(NULL, target, NULL, MS_REC|MS_PRIVATE)`: nothing propagates back to the host.
    MakePrivate {
        target: CString,
    },
    /// A size-limited tmpfs.
    Tmpfs {
        target: CString,
        data: CString,
    },
    /// `mkdir`; an existing directory is fine unless `must_create`.
    Mkdir {
        path: CString,
        mode: u32,
        must_create: bool,
    },
    /// An empty file to bind a file onto; an existing one is fine.
    Touch {
        path: CString,
    },
    /// A file of the sandbox's own with `data` (mode 0644), replacing what the image has
    /// there (a symlink included: it is removed, not followed).
    WriteFile {
        path: CString,
        data: Vec<u8>,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    Chdir {
        path: CString,
    },
    PivotRoot {
        new_root: CString,
        put_old: CString,
    },
    Overlay {
        target: CString,
        data: CString,
    },
    Proc {
        target: CString,
    },
    /// A fresh read-only sysfs (it shows the sandbox's network namespace).
    Sysfs {
        target: CString,
    },
    /// A new devpts instance of the sandbox's own: it sees only the terminals made in it.
    Devpts {
        target: CString,
    },
    /// A recursive bind mount; `step` says which part of the setup it belongs to.
    Bind {
        source: CString,
        target: CString,
        step: Step,
    },
    /// `mount_setattr` adding flags (read-only, nosuid, nodev) to a bind mount.
    Setattr {
        target: CString,
        attrs: u64,
    },
    /// `umount2(target, MNT_DETACH)`.
    Detach {
        target: CString,
    },
    /// Binds `source` (a character device) over `target` when `target` exists.
    Mask {
        source: CString,
        target: CString,
    },
}

impl MountOp {
    /// The lifecycle step an error in this op is reported as.
    pub(crate) fn step(&self) -> Step {
        match self {
            MountOp::MakePrivate { .. } => Step::MountPrivate,
            MountOp::Tmpfs { .. } => Step::Staging,
            MountOp::Mkdir { .. } => Step::Mkdir,
            MountOp::Touch { .. } | MountOp::Symlink { .. } | MountOp::WriteFile { .. } => Step::CreateFile,
            MountOp::Chdir { .. } => Step::Chdir,
            MountOp::PivotRoot { .. } => Step::PivotRoot,
            MountOp::Overlay { .. } => Step::Overlay,
            MountOp::Proc { .. } => Step::Proc,
            MountOp::Sysfs { .. } => Step::Sysfs,
            MountOp::Devpts { .. } => Step::Dev,
            MountOp::Bind { step, .. } => *step,
            MountOp::Setattr { .. } => Step::Remount,
            MountOp::Detach { .. } => Step::DetachOldRoot,
            MountOp::Mask { .. } => Step::Proc,
        }
    }
}

/// A bind mount after validation: absolute host source, normalized sandbox target.
#[derive(Debug, Clone)]
pub(crate) struct Bind {
    pub source: PathBuf,
    pub target: PathBuf,
    pub writable: bool,
    pub is_dir: bool,
}

impl Bind {
    /// A read-only bind of the host file `source` at `target`.
    pub(crate) fn file(source: &Path, target: &str) -> Bind {
        Bind { source: source.to_path_buf(), target: target.into(), writable: false, is_dir: false }
    }
}

/// The op list and, for each op, the path an error message should name.
#[derive(Debug, Default)]
pub(crate) struct RootfsPlan {
    pub ops: Vec<MountOp>,
    pub labels: Vec<PathBuf>,
    /// The ops before this index depend only on the image, the writable layer's size, the
    /// user namespace and `/sys`: a warm sandbox (`pool.rs`) runs them ahead of a request.
    pub split: usize,
}

impl RootfsPlan {
    pub(crate) fn push(&mut self, label: impl Into<PathBuf>, op: MountOp) {
        self.ops.push(op);
        self.labels.push(label.into());
    }
}

pub(crate) fn cstring(path: impl AsRef<[u8]>) -> Result<CString> {
    CString::new(path.as_ref().to_vec())
        .map_err(|_| Error::config(format!("path `{}` contains a NUL byte", String::from_utf8_lossy(path.as_ref()))))
}

fn under(prefix: &str, path: &Path) -> Result<CString> {
    let mut bytes = prefix.as_bytes().to_vec();
    bytes.extend_from_slice(path.as_os_str().as_bytes());
    cstring(bytes)
}

/// Checks a sandbox path: absolute, no `..`, no NUL; returns it without `.` parts.
pub(crate) fn sandbox_path(what: &str, path: &Path) -> Result<PathBuf> {
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(Error::config(format!("{what} `{}` contains a NUL byte", path.display())));
    }
    if !path.is_absolute() {
        return Err(Error::config(format!("{what} `{}` must be an absolute path inside the sandbox", path.display())));
    }
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::config(format!("{what} `{}` must not contain `..`", path.display())));
            }
        }
    }
    Ok(out)
}

fn read_only_attrs() -> u64 {
    crate::sys::MOUNT_ATTR_RDONLY | crate::sys::MOUNT_ATTR_NOSUID | crate::sys::MOUNT_ATTR_NODEV
}

/// The settings of a rootfs besides its layers, binds and files.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Size of the writable layer's tmpfs.
    pub tmpfs_size: u64,
    /// Whether the sandbox has a user namespace (the overlay then needs `userxattr`).
    pub userns: bool,
    /// Whether to mount a /sys.
    pub sys: bool,
    /// Whether the sandbox gets a devpts of its own (a terminal's, or a build step's).
    pub tty: bool,
    /// A host directory holding the writable layer (`upper/`, `work/`) instead of the
    /// staging tmpfs.
    pub writable_layer: Option<PathBuf>,
}

/// Builds the whole filesystem sequence.
///
/// `layers` are the image's layer directories lowest first; `etc` are files (a name in
/// `/etc`, and the bytes) put in the writable layer before the overlay is mounted, so
/// they shadow the image's whatever its owners allow.
pub(crate) fn plan(
    layers: &[PathBuf],
    binds: &[Bind],
    etc: &[(&str, Vec<u8>)],
    options: Options,
) -> Result<RootfsPlan> {
    let Options { tmpfs_size, userns, sys: with_sys, tty, writable_layer } = options;
    // Where the overlay's upper and work directories are after the first pivot: on the
    // staging tmpfs, or in the caller's directory (the host is under OLD_ROOT then).
    // Paths are bytes: a host directory's name need not be UTF-8.
    let (upper, work): (Vec<u8>, Vec<u8>) = match &writable_layer {
        None => (b"/upper".to_vec(), b"/work".to_vec()),
        Some(dir) => {
            let dir = [OLD_ROOT.as_bytes(), dir.as_os_str().as_bytes()].concat();
            ([&dir[..], b"/upper"].concat(), [&dir[..], b"/work"].concat())
        }
    };
    let mut p = RootfsPlan::default();
    let stage = STAGING_MOUNT_POINT;
    p.push("/", MountOp::MakePrivate { target: cstring("/")? });
    p.push(stage, MountOp::Tmpfs { target: cstring(stage)?, data: cstring(format!("size={tmpfs_size},mode=0755"))? });
    for (dir, mode) in [
        (".oldroot", 0o755),
        ("upper", 0o755),
        ("work", 0o755),
        ("root", 0o755),
        ("tmp", 0o1777),
        ("dev", 0o755),
        ("dev/shm", 0o1777),
    ] {
        let path = format!("{stage}/{dir}");
        p.push(path.clone(), MountOp::Mkdir { path: cstring(path)?, mode, must_create: true });
    }
    p.push(stage, MountOp::Chdir { path: cstring(stage)? });
    p.push(stage, MountOp::PivotRoot { new_root: cstring(".")?, put_old: cstring(&OLD_ROOT[1..])? });
    if let Some(dir) = &writable_layer {
        for path in [&upper, &work] {
            p.push(dir, MountOp::Mkdir { path: cstring(path)?, mode: 0o755, must_create: false });
        }
    }
    // With a writable layer of the caller's, the sandbox's own files and mount points go in
    // a layer of their own below it (`init/`, as Docker's init layer), so that the caller's
    // layer holds only what the program changed.
    let init = writable_layer.as_ref().map(|dir| [OLD_ROOT.as_bytes(), dir.as_os_str().as_bytes(), b"/init"].concat());
    if let Some(init) = &init {
        p.push("/", MountOp::Mkdir { path: cstring(init)?, mode: 0o755, must_create: false });
        let mut points = vec![("proc", 0o555), ("dev", 0o755), ("tmp", 0o1777)];
        if with_sys {
            points.push(("sys", 0o555));
        }
        for (dir, mode) in points {
            let path = [&init[..], b"/", dir.as_bytes()].concat();
            p.push(format!("/{dir}"), MountOp::Mkdir { path: cstring(path)?, mode, must_create: false });
        }
    }
    if !etc.is_empty() {
        let etc_dir = [init.as_deref().unwrap_or(&upper), b"/etc"].concat();
        p.push("/etc", MountOp::Mkdir { path: cstring(&etc_dir)?, mode: 0o755, must_create: writable_layer.is_none() });
        for (name, data) in etc {
            let path = [&etc_dir[..], b"/", name.as_bytes()].concat();
            p.push(format!("/etc/{name}"), MountOp::WriteFile { path: cstring(path)?, data: data.clone() });
        }
    }

    // Overlayfs lists lower layers top first.
    let mut lower = init.map(|dir| [&dir[..], b":"].concat()).unwrap_or_default();
    for layer in layers.iter().rev() {
        if !lower.is_empty() && !lower.ends_with(b":") {
            lower.push(b':');
        }
        lower.extend_from_slice(OLD_ROOT.as_bytes());
        lower.extend_from_slice(layer.as_os_str().as_bytes());
    }
    if lower.ends_with(b":") {
        lower.pop();
    }
    let mut data = b"lowerdir=".to_vec();
    data.extend_from_slice(&lower);
    data.extend_from_slice(b",upperdir=");
    data.extend_from_slice(&upper);
    data.extend_from_slice(b",workdir=");
    data.extend_from_slice(&work);
    if userns {
        // trusted.* xattrs are root-only: a user namespace mount keeps overlay metadata in user.*.
        data.extend_from_slice(b",userxattr");
    }
    if data.len() >= 4096 {
        return Err(Error::Image {
            path: layers[0].clone(),
            reason: format!(
                "layer paths add up to {} bytes of overlay options, over the kernel's 4095; use shorter paths",
                data.len()
            ),
        });
    }
    let label = layers.last().cloned().unwrap_or_default();
    p.push(label, MountOp::Overlay { target: cstring(NEW_ROOT)?, data: cstring(data)? });

    for (dir, mode) in [("/proc", 0o555), ("/dev", 0o755), ("/tmp", 0o1777)] {
        p.push(dir, MountOp::Mkdir { path: under(NEW_ROOT, Path::new(dir))?, mode, must_create: false });
    }
    p.push("/proc", MountOp::Proc { target: cstring(format!("{NEW_ROOT}/proc"))? });
    // Kernel tunables are the host's: read-only, whatever ids the sandbox has.
    let proc_sys = cstring(format!("{NEW_ROOT}/proc/sys"))?;
    p.push("/proc/sys", MountOp::Bind { source: proc_sys.clone(), target: proc_sys.clone(), step: Step::Proc });
    p.push("/proc/sys", MountOp::Setattr { target: proc_sys, attrs: read_only_attrs() });
    for file in PROC_MASKED {
        let target = cstring(format!("{NEW_ROOT}/proc/{file}"))?;
        p.push(format!("/proc/{file}"), MountOp::Mask { source: cstring(format!("{OLD_ROOT}/dev/null"))?, target });
    }
    p.push(
        "/dev",
        MountOp::Bind { source: cstring("/dev")?, target: cstring(format!("{NEW_ROOT}/dev"))?, step: Step::Dev },
    );
    for node in DEV_NODES {
        let inside = format!("{NEW_ROOT}/dev/{node}");
        p.push(format!("/dev/{node}"), MountOp::Touch { path: cstring(&inside)? });
        p.push(
            format!("/dev/{node}"),
            MountOp::Bind {
                source: cstring(format!("{OLD_ROOT}/dev/{node}"))?,
                target: cstring(inside)?,
                step: Step::Dev,
            },
        );
    }
    for (target, link) in DEV_LINKS {
        p.push(
            format!("/dev/{link}"),
            MountOp::Symlink { target: cstring(target)?, link: cstring(format!("{NEW_ROOT}/dev/{link}"))? },
        );
    }
    p.push(
        "/tmp",
        MountOp::Bind { source: cstring("/tmp")?, target: cstring(format!("{NEW_ROOT}/tmp"))?, step: Step::Bind },
    );
    if with_sys {
        p.push("/sys", MountOp::Mkdir { path: cstring(format!("{NEW_ROOT}/sys"))?, mode: 0o555, must_create: false });
        p.push("/sys", MountOp::Sysfs { target: cstring(format!("{NEW_ROOT}/sys"))? });
    }

    p.split = p.ops.len();
    if tty {
        // The terminal's devpts, of the sandbox's own (the host's terminals stay out of
        // sight), and /dev/ptmx leading to its multiplexer, as in Docker. Only with a
        // terminal: the mount costs a run about 0.07 ms.
        let pts = format!("{NEW_ROOT}/dev/pts");
        p.push("/dev/pts", MountOp::Mkdir { path: cstring(&pts)?, mode: 0o755, must_create: false });
        p.push("/dev/pts", MountOp::Devpts { target: cstring(pts)? });
        p.push(
            "/dev/ptmx",
            MountOp::Symlink { target: cstring("pts/ptmx")?, link: cstring(format!("{NEW_ROOT}/dev/ptmx"))? },
        );
    }
    for bind in binds {
        // Create the target's missing parents in the writable layer, then the target itself.
        let mut partial = PathBuf::from("/");
        let parts: Vec<_> = bind.target.components().skip(1).collect();
        for (i, part) in parts.iter().enumerate() {
            partial.push(part);
            let last = i + 1 == parts.len();
            let op = if last && !bind.is_dir {
                MountOp::Touch { path: under(NEW_ROOT, &partial)? }
            } else {
                MountOp::Mkdir { path: under(NEW_ROOT, &partial)?, mode: 0o755, must_create: false }
            };
            p.push(partial.clone(), op);
        }
        let target = under(NEW_ROOT, &bind.target)?;
        p.push(
            &bind.source,
            MountOp::Bind { source: under(OLD_ROOT, &bind.source)?, target: target.clone(), step: Step::Bind },
        );
        let attrs = if bind.writable {
            crate::sys::MOUNT_ATTR_NOSUID | crate::sys::MOUNT_ATTR_NODEV
        } else {
            read_only_attrs()
        };
        p.push(&bind.target, MountOp::Setattr { target, attrs });
    }

    // bubblewrap's trick: pivot_root(".", ".") stacks the old root under the new one, and
    // a lazy unmount of "." then detaches it (staging tmpfs and host alike).
    p.push("/", MountOp::Chdir { path: cstring(NEW_ROOT)? });
    p.push("/", MountOp::PivotRoot { new_root: cstring(".")?, put_old: cstring(".")? });
    p.push("/", MountOp::Detach { target: cstring(".")? });
    p.push("/", MountOp::Chdir { path: cstring("/")? });
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op_names(p: &RootfsPlan) -> Vec<String> {
        p.ops.iter().map(|o| format!("{o:?}")).collect()
    }

    fn options_with_none() -> Options {
        Options { tmpfs_size: 1 << 20, userns: false, sys: false, tty: false, writable_layer: None }
    }

    #[test]
    fn a_writable_layer_on_the_host() {
        let layers = [PathBuf::from("/img")];
        let options = Options {
            tmpfs_size: 1 << 20,
            userns: false,
            sys: false,
            tty: false,
            writable_layer: Some("/srv/step".into()),
        };
        let p = plan(&layers, &[], &[("hosts", b"h".to_vec())], options).unwrap();
        let overlay = p.ops.iter().find_map(|o| match o {
            MountOp::Overlay { data, .. } => Some(data.to_str().unwrap().to_string()),
            _ => None,
        });
        assert_eq!(
            overlay.as_deref(),
            Some(
                "lowerdir=/.oldroot/srv/step/init:/.oldroot/img,upperdir=/.oldroot/srv/step/upper,\
                 workdir=/.oldroot/srv/step/work"
            ),
            "the sandbox's /etc files in a layer of their own, under the writable one"
        );
        let written: Vec<&str> = p
            .ops
            .iter()
            .filter_map(|o| match o {
                MountOp::WriteFile { path, .. } | MountOp::Mkdir { path, .. } => path.to_str().ok(),
                _ => None,
            })
            .filter(|p| p.starts_with("/.oldroot"))
            .collect();
        assert_eq!(
            written,
            [
                "/.oldroot/srv/step/upper",
                "/.oldroot/srv/step/work",
                "/.oldroot/srv/step/init",
                "/.oldroot/srv/step/init/proc",
                "/.oldroot/srv/step/init/dev",
                "/.oldroot/srv/step/init/tmp",
                "/.oldroot/srv/step/init/etc",
                "/.oldroot/srv/step/init/etc/hosts"
            ]
        );
        // A directory's name is bytes, not text.
        let odd = PathBuf::from(std::ffi::OsStr::from_bytes(b"/srv/\xff"));
        let options = Options { writable_layer: Some(odd), ..options_with_none() };
        let p = plan(&layers, &[], &[], options).unwrap();
        let data = p.ops.iter().find_map(|o| match o {
            MountOp::Overlay { data, .. } => Some(data.as_bytes().to_vec()),
            _ => None,
        });
        assert!(data.unwrap().ends_with(b"upperdir=/.oldroot/srv/\xff/upper,workdir=/.oldroot/srv/\xff/work"));
    }

    #[test]
    fn overlay_lists_layers_top_first_and_userxattr_only_in_userns() {
        let layers = [PathBuf::from("/img/base"), PathBuf::from("/img/top")];
        let p = plan(&layers, &[], &[], options_with_none()).unwrap();
        let overlay = p
            .ops
            .iter()
            .find_map(|o| match o {
                MountOp::Overlay { data, .. } => Some(data.to_str().unwrap().to_string()),
                _ => None,
            })
            .unwrap();
        assert_eq!(overlay, "lowerdir=/.oldroot/img/top:/.oldroot/img/base,upperdir=/upper,workdir=/work");
        let p = plan(&layers, &[], &[], Options { userns: true, ..options_with_none() }).unwrap();
        assert!(op_names(&p).iter().any(|o| o.contains("userxattr")));
    }

    #[test]
    fn sequence_starts_private_and_ends_detached() {
        let p = plan(
            &[PathBuf::from("/img")],
            &[],
            &[],
            Options { tmpfs_size: 1 << 20, userns: false, sys: false, tty: false, writable_layer: None },
        )
        .unwrap();
        assert!(matches!(p.ops.first(), Some(MountOp::MakePrivate { .. })));
        assert!(matches!(p.ops[p.ops.len() - 2], MountOp::Detach { .. }));
        assert_eq!(p.ops.len(), p.labels.len());
        let tmpfs = op_names(&p).into_iter().find(|o| o.contains("Tmpfs")).unwrap();
        assert!(tmpfs.contains("size=1048576"), "{tmpfs}");
    }

    #[test]
    fn a_devpts_only_with_a_terminal_and_after_the_split() {
        let devpts = |p: &RootfsPlan| p.ops.iter().position(|o| matches!(o, MountOp::Devpts { .. }));
        assert_eq!(
            devpts(
                &plan(
                    &[PathBuf::from("/img")],
                    &[],
                    &[],
                    Options { tmpfs_size: 1 << 20, userns: false, sys: false, tty: false, writable_layer: None }
                )
                .unwrap()
            ),
            None
        );
        let p = plan(
            &[PathBuf::from("/img")],
            &[],
            &[],
            Options { tmpfs_size: 1 << 20, userns: false, sys: false, tty: true, writable_layer: None },
        )
        .unwrap();
        assert!(devpts(&p).is_some_and(|at| at >= p.split), "a request's own: warm sandboxes have none");
    }

    #[test]
    fn binds_create_parents_and_are_read_only_unless_writable() {
        let binds = [
            Bind { source: "/srv/t".into(), target: "/data/in".into(), writable: false, is_dir: true },
            Bind { source: "/srv/o.txt".into(), target: "/out.txt".into(), writable: true, is_dir: false },
        ];
        let p = plan(
            &[PathBuf::from("/img")],
            &binds,
            &[],
            Options { tmpfs_size: 1 << 20, userns: false, sys: false, tty: false, writable_layer: None },
        )
        .unwrap();
        let names = op_names(&p);
        let at =
            |needle: &str| names.iter().position(|n| n.contains(needle)).unwrap_or_else(|| panic!("{needle} missing"));
        assert!(at("\"/root/data\"") < at("\"/root/data/in\""));
        assert!(at("source: \"/.oldroot/srv/t\"") > at("\"/root/data/in\""));
        let ro = crate::sys::MOUNT_ATTR_RDONLY | crate::sys::MOUNT_ATTR_NOSUID | crate::sys::MOUNT_ATTR_NODEV;
        assert!(p.ops.iter().any(
            |o| matches!(o, MountOp::Setattr { target, attrs } if target.to_bytes() == b"/root/data/in" && *attrs == ro)
        ));
        assert!(p.ops.iter().any(|o| matches!(o, MountOp::Touch { path } if path.to_bytes() == b"/root/out.txt")));
        assert!(p.ops.iter().any(|o| matches!(o, MountOp::Setattr { target, attrs } if target.to_bytes() == b"/root/out.txt" && *attrs & crate::sys::MOUNT_ATTR_RDONLY == 0)));
    }

    #[test]
    fn sandbox_paths() {
        assert_eq!(sandbox_path("t", Path::new("/a/./b/")).unwrap(), PathBuf::from("/a/b"));
        assert!(sandbox_path("t", Path::new("a")).is_err());
        assert!(sandbox_path("t", Path::new("/a/../b")).is_err());
    }
}
