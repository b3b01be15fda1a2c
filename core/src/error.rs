//! The whole error vocabulary of isolette.
//!
//! An [`Error`] means no verdict could be given: the caller's config was wrong, the image
//! was unusable, the host lacks a feature, or a setup step failed. A program that
//! misbehaved is never an error; it is an [`Outcome`](crate::Outcome).

use std::fmt;
use std::io;
use std::path::PathBuf;

pub use nix::errno::Errno;

/// Result type of every fallible isolette call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a sandbox could not be created or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller's configuration is invalid; nothing was created.
    #[error("invalid config: {0}")]
    Config(String),
    /// The image cannot be used as given.
    #[error("image `{}`: {reason}", path.display())]
    Image {
        /// The image or layer directory at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The command does not exist in the image (looked up in the sandbox's `PATH`).
    #[error("command `{command}` not found in the image (looked in {searched})")]
    CommandNotFound {
        /// The program name the caller gave.
        command: String,
        /// Where it was looked for, for the message.
        searched: String,
    },
    /// The host lacks something isolette needs.
    #[error("host lacks {feature}: {hint}")]
    Host {
        /// The missing feature.
        feature: HostFeature,
        /// What to do about it.
        hint: &'static str,
    },
    /// A setup step failed; `path` names the object where the step had one.
    #[error("{step}{}: {}{}", path_suffix(path), errno_text(*errno), hint_suffix(*step, *errno))]
    Setup {
        /// The step of the run lifecycle that failed.
        step: Step,
        /// The errno the kernel returned.
        errno: Errno,
        /// The file or mount point the step worked on, if any.
        path: Option<PathBuf>,
    },
    /// A registry could not be reached, refused a request, or served something unusable
    /// (pulls and pushes); nothing was stored.
    #[error("registry {registry}: {reason}")]
    Registry {
        /// The registry, as the reference names it (`docker.io`, `localhost:5000`).
        registry: String,
        /// What went wrong and what to do about it; never a secret.
        reason: String,
    },
    /// A build step failed (`isolette build`): a `RUN` that exited with an error or was
    /// stopped by a limit, or a file step that could not be done. Nothing of the build was
    /// stored under its names.
    #[error("{file} line {line}: {instruction}: {reason}")]
    Build {
        /// The Dockerfile.
        file: String,
        /// The step's line, from 1.
        line: usize,
        /// The step as written (shortened).
        instruction: String,
        /// What went wrong: the exit code or verdict, and the end of the step's output.
        reason: String,
        /// The `RUN`'s exit code, when it exited.
        exit_code: Option<i32>,
    },
    /// An I/O operation of the supervisor failed.
    #[error("{op} `{}`: {source}", path.display())]
    Io {
        /// The operation, e.g. `write uid_map`.
        op: &'static str,
        /// The file it worked on.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

impl Error {
    /// The variant's name in snake_case (`config`, `image`, `command_not_found`, `host`,
    /// `setup`, `io`, `registry`, `build`): what the CLI's JSON and the bindings call this kind of error.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Image { .. } => "image",
            Error::CommandNotFound { .. } => "command_not_found",
            Error::Host { .. } => "host",
            Error::Setup { .. } => "setup",
            Error::Io { .. } => "io",
            Error::Registry { .. } => "registry",
            Error::Build { .. } => "build",
        }
    }

    /// The setup step that failed, for a [`Error::Setup`].
    pub fn step(&self) -> Option<Step> {
        match self {
            Error::Setup { step, .. } => Some(*step),
            _ => None,
        }
    }

    /// The errno behind the error, for [`Error::Setup`] and for [`Error::Io`] from a system call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Setup { errno, .. } => Some(*errno as i32),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// The file or directory the error is about, where there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Image { path, .. } | Error::Io { path, .. } => Some(path),
            Error::Setup { path, .. } => path.as_deref(),
            _ => None,
        }
    }

    /// The error as every surface shows it: `{"kind", "message", "step", "errno", "path"}`
    /// (absent ones `null`), and for a build error its `line` and `exit_code`: the CLI
    /// prints it under `"error"` with `--json`, detached runs record it, and Node's errors
    /// carry it.
    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "kind": self.kind(),
            "message": self.to_string().trim_end(),
            "step": self.step().map(Step::name),
            "errno": self.errno(),
            "path": self.path().map(|p| p.to_string_lossy()),
        });
        if let Error::Build { line, exit_code, .. } = self {
            json["line"] = (*line).into();
            json["exit_code"] = (*exit_code).into();
        }
        json
    }

    /// What a refused `clone3` means: the host does not let this caller make namespaces.
    pub(crate) fn from_clone(errno: Errno, caller_is_root: bool) -> Self {
        match (errno, caller_is_root) {
            (Errno::EPERM | Errno::ENOSPC | Errno::EUSERS, false) => Error::Host {
                feature: HostFeature::UserNamespaces,
                hint: "this caller may not create user namespaces (kernel.unprivileged_userns_clone=0, \
                       user.max_user_namespaces=0, or an AppArmor/container policy); run as root or allow them, see \
                       `isolette check`",
            },
            (Errno::EPERM, true) => Error::Host {
                feature: HostFeature::Namespaces,
                hint: "root here may not create namespaces (a container without CAP_SYS_ADMIN or with a seccomp \
                       profile that blocks clone3); give the container CAP_SYS_ADMIN or run it with --privileged",
            },
            _ => Error::setup(Step::Clone, errno),
        }
    }

    /// What a failed overlay mount means when the kernel has no overlayfs at all.
    pub(crate) fn overlay_missing() -> Self {
        Error::Host {
            feature: HostFeature::Overlayfs,
            hint: "the kernel has no overlay filesystem; run `modprobe overlay`",
        }
    }

    /// A [`Error::Config`]: the caller's request is wrong, and `msg` says what to do.
    pub fn config(msg: impl Into<String>) -> Self {
        Error::Config(msg.into())
    }

    pub(crate) fn setup(step: Step, errno: Errno) -> Self {
        Error::Setup { step, errno, path: None }
    }

    /// An [`Error::Io`]: `op` on `path` failed with `source`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io { op, path: path.into(), source }
    }
}

fn path_suffix(path: &Option<PathBuf>) -> String {
    match path {
        Some(p) => format!(" `{}`", p.display()),
        None => String::new(),
    }
}

fn errno_text(errno: Errno) -> String {
    format!("{errno:?} ({})", errno.desc())
}

fn hint_suffix(step: Step, errno: Errno) -> &'static str {
    match (step, errno) {
        (Step::Overlay, Errno::EINVAL) => {
            "; overlayfs refused the layers (a layer on overlayfs itself, or no overlay support); see `isolette check`"
        }
        (Step::Overlay | Step::Mkdir, Errno::EOVERFLOW) => {
            "; the image's files belong to a user that is not mapped in the user namespace (run as root without a user namespace, or own the image)"
        }
        (Step::Staging, Errno::EPERM) | (Step::MountPrivate, Errno::EPERM) => {
            "; mounting is refused (a container needs CAP_SYS_ADMIN or user namespaces)"
        }
        _ => "",
    }
}

/// A host feature isolette may need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostFeature {
    /// Unprivileged user namespaces (needed when the caller is not root).
    UserNamespaces,
    /// The overlay filesystem.
    Overlayfs,
    /// Creating namespaces at all (root inside a container without `CAP_SYS_ADMIN`).
    Namespaces,
    /// A cgroup controller.
    Cgroup,
    /// `slirp4netns`, the user-mode network stack of outbound networks and published ports.
    Slirp4netns,
    /// `/dev/net/tun`, which a user-mode network needs, usable by this caller.
    Tun,
    /// `ip` from iproute2, which sets up named networks.
    Iproute2,
    /// `nft` from nftables, which loads egress rules.
    Nftables,
}

impl fmt::Display for HostFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostFeature::UserNamespaces => "user namespaces",
            HostFeature::Overlayfs => "overlayfs",
            HostFeature::Namespaces => "namespaces",
            HostFeature::Cgroup => "a cgroup controller",
            HostFeature::Slirp4netns => "slirp4netns (user-mode networking)",
            HostFeature::Tun => "/dev/net/tun",
            HostFeature::Iproute2 => "iproute2 (`ip`)",
            HostFeature::Nftables => "nftables (`nft`)",
        })
    }
}

/// One step of the run lifecycle; a failure inside the sandbox names the step it failed in.
///
/// The variants are the setup sequence, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum Step {
    /// `clone3` of the sandbox's init.
    Clone = 1,
    /// Writing the user namespace's uid and gid maps.
    IdMap,
    /// Waiting for the supervisor's go-ahead.
    Sync,
    /// Closing file descriptors inherited from the caller.
    CloseFds,
    /// Moving into the run's cgroups (v1).
    CgroupJoin,
    /// Becoming root of the user namespace.
    InitIds,
    /// Bringing the loopback interface up.
    Loopback,
    /// Making every mount private to the sandbox.
    MountPrivate,
    /// Mounting the per-run staging tmpfs (writable layer, /tmp, /dev).
    Staging,
    /// Creating a directory.
    Mkdir,
    /// Creating a file or symlink.
    CreateFile,
    /// Changing directory during setup.
    Chdir,
    /// `pivot_root` into the staging or the new root.
    PivotRoot,
    /// Mounting the overlay root filesystem.
    Overlay,
    /// Mounting `/proc`.
    Proc,
    /// Mounting `/sys`.
    Sysfs,
    /// Populating `/dev`.
    Dev,
    /// A bind mount the caller asked for, or /tmp.
    Bind,
    /// Making a bind mount read-only.
    Remount,
    /// Detaching the old root.
    DetachOldRoot,
    /// Setting the hostname.
    Hostname,
    /// Setting resource limits.
    Rlimits,
    /// `execveat` of the init binary (from its sealed memfd).
    ExecInit,
    /// Forking the program from the init.
    ForkProgram,
    /// Starting a new session for the program.
    Setsid,
    /// Connecting stdin, stdout and stderr.
    Stdio,
    /// Changing to the working directory.
    Workdir,
    /// Setting the sandbox user and groups.
    SetIds,
    /// Dropping every capability.
    DropCaps,
    /// Setting `no_new_privs`.
    NoNewPrivs,
    /// Installing the seccomp filter.
    Seccomp,
    /// `execve` of the program.
    Exec,
}

impl Step {
    const ALL: [Step; 32] = [
        Step::Clone,
        Step::IdMap,
        Step::Sync,
        Step::CloseFds,
        Step::CgroupJoin,
        Step::InitIds,
        Step::Loopback,
        Step::MountPrivate,
        Step::Staging,
        Step::Mkdir,
        Step::CreateFile,
        Step::Chdir,
        Step::PivotRoot,
        Step::Overlay,
        Step::Proc,
        Step::Sysfs,
        Step::Dev,
        Step::Bind,
        Step::Remount,
        Step::DetachOldRoot,
        Step::Hostname,
        Step::Rlimits,
        Step::ExecInit,
        Step::ForkProgram,
        Step::Setsid,
        Step::Stdio,
        Step::Workdir,
        Step::SetIds,
        Step::DropCaps,
        Step::NoNewPrivs,
        Step::Seccomp,
        Step::Exec,
    ];

    /// The step's name as it reads in messages (`overlay`, `pivot_root`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Step::Clone => "clone3",
            Step::IdMap => "id map",
            Step::Sync => "sync",
            Step::CloseFds => "close fds",
            Step::CgroupJoin => "join cgroup",
            Step::InitIds => "init ids",
            Step::MountPrivate => "make mounts private",
            Step::Staging => "staging tmpfs",
            Step::Mkdir => "mkdir",
            Step::CreateFile => "create",
            Step::Chdir => "chdir",
            Step::PivotRoot => "pivot_root",
            Step::Overlay => "overlay",
            Step::Proc => "proc",
            Step::Sysfs => "sysfs",
            Step::Dev => "dev",
            Step::Bind => "bind mount",
            Step::Remount => "read-only remount",
            Step::DetachOldRoot => "detach old root",
            Step::Loopback => "loopback up",
            Step::Hostname => "sethostname",
            Step::Rlimits => "setrlimit",
            Step::ExecInit => "exec init",
            Step::ForkProgram => "fork program",
            Step::Setsid => "setsid",
            Step::Stdio => "stdio",
            Step::Workdir => "workdir",
            Step::SetIds => "set ids",
            Step::DropCaps => "drop capabilities",
            Step::NoNewPrivs => "no_new_privs",
            Step::Seccomp => "seccomp",
            Step::Exec => "execve",
        }
    }

    pub(crate) fn from_u8(v: u8) -> Option<Step> {
        Step::ALL.iter().copied().find(|s| *s as u8 == v)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_round_trips_through_u8() {
        for s in Step::ALL {
            assert_eq!(Step::from_u8(s as u8), Some(s));
        }
        assert_eq!(Step::from_u8(0), None);
        assert_eq!(Step::from_u8(200), None);
    }

    #[test]
    fn refused_namespaces_are_host_errors() {
        let e = Error::from_clone(Errno::EPERM, false);
        assert!(matches!(e, Error::Host { feature: HostFeature::UserNamespaces, .. }), "{e}");
        let e = Error::from_clone(Errno::EPERM, true);
        assert!(matches!(e, Error::Host { feature: HostFeature::Namespaces, .. }), "{e}");
        assert!(e.to_string().contains("CAP_SYS_ADMIN"));
        assert!(matches!(Error::from_clone(Errno::ENOMEM, true), Error::Setup { step: Step::Clone, .. }));
        assert!(matches!(Error::overlay_missing(), Error::Host { feature: HostFeature::Overlayfs, .. }));
    }

    #[test]
    fn accessors_name_kind_step_errno_and_path() {
        let e = Error::Setup { step: Step::Bind, errno: Errno::ENOENT, path: Some("/data".into()) };
        assert_eq!((e.kind(), e.step(), e.errno()), ("setup", Some(Step::Bind), Some(libc::ENOENT)));
        assert_eq!(e.path(), Some(std::path::Path::new("/data")));
        let e = Error::io("open", "/x", io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!((e.kind(), e.step(), e.errno()), ("io", None, Some(libc::EACCES)));
        let e = Error::config("bad");
        assert_eq!((e.kind(), e.errno(), e.path()), ("config", None, None));
        let e = Error::CommandNotFound { command: "x".into(), searched: "/bin/x".into() };
        assert_eq!(e.kind(), "command_not_found");
        assert_eq!(Error::overlay_missing().kind(), "host");
        assert_eq!(Error::Image { path: "/i".into(), reason: "r".into() }.kind(), "image");
    }

    #[test]
    fn setup_error_names_step_path_and_errno() {
        let e = Error::Setup { step: Step::Overlay, errno: Errno::EINVAL, path: Some("/newroot".into()) };
        let msg = e.to_string();
        assert!(msg.starts_with("overlay `/newroot`: EINVAL (Invalid argument)"), "{msg}");
    }
}
