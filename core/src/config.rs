//! What the caller asked for, as data: [`Config`] (which the API's [`SandboxBuilder`]
//! fills in), [`MountSpec`], and the defaults.
//!
//! Nothing here is checked beyond parsing; `plan.rs` validates the whole config before
//! anything is created.
//!
//! [`SandboxBuilder`]: crate::SandboxBuilder

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Duration;

use crate::cancel::Canceller;
use crate::error::{Error, Result};
use crate::image::Lease;
use crate::network::NetworkRequest;
use crate::seccomp::SeccompPolicy;
use crate::stdio::{Output, Stdin};

/// A bind mount from the host into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Host path (file or directory).
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: PathBuf,
    /// Whether the program may write through it.
    pub writable: bool,
}

impl MountSpec {
    /// Parses `SRC:DST`, `SRC:DST:ro` or `SRC:DST:rw` (read-only unless `rw`). The paths
    /// are bytes: any byte but `:` and NUL passes through as it is.
    ///
    /// ```
    /// let m = isolette::MountSpec::parse("/srv/tests/17:/data").unwrap();
    /// assert_eq!((m.target.to_str(), m.writable), (Some("/data"), false));
    /// assert!(isolette::MountSpec::parse("/srv:/out:rw").unwrap().writable);
    /// ```
    pub fn parse(spec: impl AsRef<OsStr>) -> Result<MountSpec> {
        let spec = spec.as_ref().as_bytes();
        let bad = |why: &str| {
            Error::config(format!(
                "mount `{}`: {why}; expected SRC:DST[:ro|:rw]",
                String::from_utf8_lossy(spec).escape_debug()
            ))
        };
        let mut parts = spec.split(|&b| b == b':');
        let (Some(src), Some(dst)) = (parts.next(), parts.next()) else {
            return Err(bad("missing `:`"));
        };
        let writable = match parts.next() {
            None | Some(b"ro") => false,
            Some(b"rw") => true,
            Some(other) => return Err(bad(&format!("unknown mode `{}`", String::from_utf8_lossy(other)))),
        };
        if parts.next().is_some() {
            return Err(bad("too many `:`"));
        }
        if src.is_empty() || dst.is_empty() {
            return Err(bad("empty path"));
        }
        let path = |b: &[u8]| PathBuf::from(OsStr::from_bytes(b));
        Ok(MountSpec { source: path(src), target: path(dst), writable })
    }
}

/// Everything the caller set; validated by `plan.rs`.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub wall_time: Duration,
    pub cpu_time: Option<Duration>,
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    pub fsize: Option<u64>,
    pub nofile: u64,
    pub stack: Option<u64>,
    pub cpus: Option<f64>,
    pub cpuset: Option<String>,
    pub seccomp: SeccompPolicy,
    pub cgroup: bool,
    pub sys: bool,
    pub output_limit: u64,
    pub tmpfs_size: u64,
    /// A host directory that holds the writable layer instead of a tmpfs (`upper/`, `work/`).
    pub writable_layer: Option<PathBuf>,
    pub env: Vec<(OsString, OsString)>,
    pub workdir: Option<PathBuf>,
    pub mounts: Vec<MountSpec>,
    pub stdin: Stdin,
    pub stdout: Output,
    pub stderr: Output,
    pub hostname: String,
    pub user_namespace: Option<bool>,
    pub user: Option<(u32, u32)>,
    pub entrypoint: Option<Vec<OsString>>,
    /// A terminal of `(rows, columns)` as stdin, stdout and stderr.
    pub tty: Option<(u16, u16)>,
    /// Held while the config lives: the volumes it mounts stay in place.
    pub leases: Vec<Lease>,
    /// Cancels the runs started with this config.
    pub canceller: Option<Canceller>,
    /// How the sandbox reaches the network.
    pub net: NetworkRequest,
    /// A build step's run (`isolette build`): a user namespace whose ids are the host's,
    /// where uid 0 is allowed and keeps Docker's default capabilities (of the namespace).
    pub build_root: bool,
}

/// Default wall-time limit.
pub const DEFAULT_WALL_TIME: Duration = Duration::from_secs(10);

/// Default memory limit of the whole process tree.
pub const DEFAULT_MEMORY: u64 = 512 << 20;
/// Default limit on processes + threads of the program's tree.
pub const DEFAULT_PIDS: u64 = 128;
/// Default hard limit on open files.
pub const DEFAULT_NOFILE: u64 = 256;
/// Default cap on captured stdout + stderr.
pub const DEFAULT_OUTPUT_LIMIT: u64 = 64 << 20;
/// Default size of the writable layer (the tmpfs that also holds /tmp and /dev/shm).
pub const DEFAULT_TMPFS_SIZE: u64 = 256 << 20;
/// Default uid and gid of the program inside the sandbox.
pub const DEFAULT_SANDBOX_ID: u32 = 60000;

impl Default for Config {
    fn default() -> Self {
        Config {
            wall_time: DEFAULT_WALL_TIME,
            cpu_time: None,
            memory: Some(DEFAULT_MEMORY),
            pids: Some(DEFAULT_PIDS),
            fsize: None,
            nofile: DEFAULT_NOFILE,
            stack: None,
            cpus: None,
            cpuset: None,
            seccomp: SeccompPolicy::default(),
            cgroup: true,
            sys: false,
            output_limit: DEFAULT_OUTPUT_LIMIT,
            tmpfs_size: DEFAULT_TMPFS_SIZE,
            writable_layer: None,
            env: Vec::new(),
            workdir: None,
            mounts: Vec::new(),
            stdin: Stdin::Null,
            stdout: Output::Capture,
            stderr: Output::Capture,
            hostname: "isolette".into(),
            user_namespace: None,
            user: None,
            build_root: false,
            entrypoint: None,
            tty: None,
            leases: Vec::new(),
            canceller: None,
            net: NetworkRequest::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_specs() {
        let m = MountSpec::parse("/a:/b").unwrap();
        assert_eq!(m, MountSpec { source: "/a".into(), target: "/b".into(), writable: false });
        assert!(MountSpec::parse("/a:/b:rw").unwrap().writable);
        assert!(!MountSpec::parse("/a:/b:ro").unwrap().writable);
        for bad in ["", "/a", ":/b", "/a:", "/a:/b:x", "/a:/b:rw:x"] {
            assert!(matches!(MountSpec::parse(bad), Err(Error::Config(_))), "{bad}");
        }
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn mount_spec_parser_never_panics(text in ".{0,40}") {
            let _ = MountSpec::parse(&text);
        }

        #[test]
        fn mount_specs_round_trip(src in "/[a-z0-9/._-]{0,20}", dst in "/[a-z0-9/._-]{0,20}", rw in any::<bool>()) {
            let spec = format!("{src}:{dst}{}", if rw { ":rw" } else { "" });
            let m = MountSpec::parse(&spec).unwrap();
            prop_assert_eq!((m.source.to_str().unwrap(), m.target.to_str().unwrap(), m.writable), (src.as_str(), dst.as_str(), rw));
        }
    }
}
