//! [`Plan`]: everything the child needs, validated and built on the caller's thread.
//!
//! After the clone the child must not allocate: every string is a `CString` here, every
//! array of pointers is null-terminated here, every number is final here.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::cgroup;
use crate::config::{Config, DEFAULT_SANDBOX_ID, MountSpec};
use crate::error::{Error, Result};
use crate::image::Image;
use crate::limits::{self, Rlimit};
use crate::namespaces::{self, IdMaps};
use crate::network::NetworkPlan;
use crate::proto;
use crate::rootfs::{self, MountOp, cstring, sandbox_path};
use crate::seccomp::{self, SeccompAction, SeccompPolicy};
use crate::sys::CStrArray;

/// A writable layer's host directory, checked: absolute, an existing directory, not on an
/// overlay (whose upper layer it could not be); returned with its symlinks resolved.
fn writable_layer(dir: &Path) -> Result<PathBuf> {
    if !dir.is_absolute() {
        return Err(Error::config(format!("writable_layer `{}` must be an absolute path", dir.display())));
    }
    let real = dir
        .canonicalize()
        .map_err(|e| Error::config(format!("writable_layer `{}`: {e}; make the directory first", dir.display())))?;
    if !real.is_dir() {
        return Err(Error::config(format!("writable_layer `{}` is not a directory", dir.display())));
    }
    let fs = nix::sys::statfs::statfs(&real).map_err(|e| Error::io("statfs", &real, e.into()))?;
    if fs.filesystem_type() == nix::sys::statfs::OVERLAYFS_SUPER_MAGIC {
        return Err(Error::config(format!(
            "writable_layer `{}` is on an overlay, which cannot hold another overlay's upper layer; choose a \
             directory on a plain filesystem",
            dir.display()
        )));
    }
    Ok(real)
}

/// `PATH` when the caller sets none.
pub(crate) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The validated, fully built description of one run.
#[derive(Debug)]
pub(crate) struct Plan {
    pub clone_flags: u64,
    /// Written by the parent when the sandbox has a user namespace.
    pub id_maps: Option<IdMaps>,
    /// Root caller with a user namespace: the init becomes uid/gid 0 inside before mounting,
    /// so what it creates is owned by a mapped id.
    pub init_becomes_root: bool,
    /// Highest capability number of the running kernel, when the init will not be root
    /// (an unprivileged caller's user namespace): exec then leaves it no capabilities, so
    /// the sandbox's first process empties the bounding set itself, before the exec.
    pub drop_bounding_set: Option<u32>,
    pub ops: Vec<MountOp>,
    /// The first op that depends on the request (`RootfsPlan::split`).
    pub split: usize,
    /// For each op, the path an error names.
    pub labels: Vec<PathBuf>,
    pub hostname: CString,
    pub rlimits: Vec<Rlimit>,
    /// Limits applied through the run's cgroup.
    pub cgroup_limits: cgroup::Limits,
    /// v1 cgroup `tasks` files the child writes `0` to, moving itself in; it then makes
    /// its cgroup namespace, so the namespace's root is its own cgroup (with v2 the clone
    /// lands in the cgroup and makes the namespace at once).
    pub cgroup_join: Vec<CString>,
    /// The cgroup is made while the sandbox makes its mounts (`cgroup::Pending`): the
    /// sandbox joins after them, once the parent says the cgroup is there.
    pub join_late: bool,
    pub program: Program,
    /// The program's terminal, made by the sandbox's first process (`spawn/child.rs`).
    pub tty: Option<Tty>,
    /// Outbound access and published ports, attached after the clone (`network.rs`).
    pub network: Option<crate::network::NetworkPlan>,
    /// Another sandbox's network namespace, joined instead of a new one.
    pub shared_network: Option<crate::network::SharedNetwork>,
}

/// A terminal for the program: its size, and the ids (inside) that own it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tty {
    pub rows: u16,
    pub cols: u16,
    pub uid: u32,
    pub gid: u32,
}

/// The program's side of the plan: what the init binary gets through `execve`.
#[derive(Debug)]
pub(crate) struct Program {
    /// The command as given (lossy UTF-8), for messages.
    pub command: String,
    /// Paths to try with execve, in order (the `PATH` search), for messages.
    pub candidates: Vec<CString>,
    /// The working directory, for messages.
    pub workdir: CString,
    /// The init's argv (`proto.rs` lays it out) and envp (the program's).
    pub init_argv: CStrArray,
    pub init_envp: CStrArray,
    /// Whether a forbidden call kills the process (so `SIGSYS` means `syscall_blocked`).
    pub seccomp_kills: bool,
}

impl Plan {
    /// Validates `config` against `image` and builds the plan; nothing is created.
    pub(crate) fn new(image: &Image, config: &Config, argv: &[OsString]) -> Result<Plan> {
        validate_limits(config)?;
        validate_tty(config)?;
        let run = Resolved::new(image, config, argv)?;
        let (uid, gid) = (run.uid, run.gid);
        let caller_is_root = nix::unistd::geteuid().is_root();
        let userns = match config.user_namespace {
            _ if config.build_root => true,
            Some(false) if !caller_is_root => {
                return Err(Error::config(
                    "a caller that is not root needs a user namespace; drop `user_namespace(false)`",
                ));
            }
            Some(on) => on,
            None => !caller_is_root,
        };
        if (uid == 0 || gid == 0) && !config.build_root {
            return Err(Error::config("the sandbox user must not be root (uid and gid 0 are refused)"));
        }
        if userns && caller_is_root && (uid >= namespaces::HOST_ID_COUNT || gid >= namespaces::HOST_ID_COUNT) {
            return Err(Error::config(format!(
                "with a user namespace, uid and gid must be below {}",
                namespaces::HOST_ID_COUNT
            )));
        }
        let id_maps = userns.then(|| {
            if caller_is_root && config.build_root {
                IdMaps::identity()
            } else if caller_is_root {
                IdMaps::for_root()
            } else {
                IdMaps::for_caller(uid, gid, nix::unistd::geteuid().as_raw(), nix::unistd::getegid().as_raw())
            }
        });

        let binds = config.mounts.iter().map(check_mount).collect::<Result<Vec<_>>>()?;
        let network = NetworkPlan::new(&config.net, &config.hostname)?;
        let shared_network = match &config.net.network {
            crate::network::Network::Shared(_) if userns => {
                return Err(Error::config(
                    "sharing another sandbox's network needs a root caller and no user namespace (the namespace \
                     belongs to the host's user namespace)",
                ));
            }
            crate::network::Network::Shared(shared) => Some(shared.clone()),
            _ => None,
        };
        // As Docker does, a sandbox with outbound access gets /etc/hosts and
        // /etc/resolv.conf of its own; one on a named network the network's hosts file (and
        // the resolv.conf, when it reaches out).
        let mut binds = binds;
        let mut etc = match network.as_ref().and_then(|n| n.outside.as_ref()) {
            Some(_) => crate::network::etc_files(&config.hostname).to_vec(),
            None => Vec::new(),
        };
        if let Some((named, _)) = network.as_ref().and_then(|n| n.named.as_ref()) {
            binds.push(rootfs::Bind::file(&named.hosts_file(), "/etc/hosts"));
            etc.retain(|(name, _)| *name != "hosts");
        }
        let rootfs = rootfs::plan(
            image.layers(),
            &binds,
            &etc,
            rootfs::Options {
                tmpfs_size: config.tmpfs_size,
                userns,
                sys: config.sys,
                // A build step gets a devpts too, as a Docker build's does (apt logs through one).
                tty: config.tty.is_some() || config.build_root,
                writable_layer: config.writable_layer.as_deref().map(writable_layer).transpose()?,
            },
        )?;
        let workdir = sandbox_path("workdir", &run.workdir)?;

        if config.hostname.is_empty() || config.hostname.len() > 64 || config.hostname.contains(['\0', '/']) {
            return Err(Error::config(format!(
                "hostname `{}` must be 1 to 64 bytes, without NUL or `/`",
                config.hostname.escape_debug()
            )));
        }

        let mut clone_flags = namespaces::BASE_FLAGS | namespaces::CLONE_PIDFD;
        if userns {
            clone_flags |= libc::CLONE_NEWUSER as u64;
        }
        Ok(Plan {
            clone_flags,
            id_maps,
            init_becomes_root: userns && caller_is_root,
            drop_bounding_set: (!caller_is_root).then(cap_last_cap),
            split: rootfs.split,
            ops: rootfs.ops,
            labels: rootfs.labels,
            hostname: cstring(&config.hostname)?,
            rlimits: limits::plan(config.nofile, config.fsize, config.stack)?,
            cgroup_limits: cgroup::Limits {
                memory: config.memory,
                // One more for the init, so the limit counts the program's tree only.
                pids: config.pids.map(|n| n + 1),
                cpus: config.cpus,
                cpuset: config.cpuset.clone(),
            },
            cgroup_join: Vec::new(),
            join_late: false,
            program: Program::new(&run, config, workdir, !userns || caller_is_root)?,
            tty: config.tty.map(|(rows, cols)| Tty { rows, cols, uid, gid }),
            network,
            shared_network,
        })
    }
}

/// The run after the image's defaults: command, environment, working directory, user.
#[derive(Debug)]
struct Resolved {
    argv: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    workdir: PathBuf,
    uid: u32,
    gid: u32,
}

impl Resolved {
    /// Docker's rules: the entrypoint goes in front of the caller's command, or of the
    /// image's `cmd` when the caller gives none; the caller's environment entries come
    /// after (and so win over) the image's; the caller's working directory and user win.
    /// An image user that is root becomes the default sandbox user: nothing runs as root.
    fn new(image: &Image, config: &Config, argv: &[OsString]) -> Result<Resolved> {
        let defaults = image.config();
        let os = |list: &[String]| list.iter().map(OsString::from).collect::<Vec<_>>();
        let mut full = config.entrypoint.clone().unwrap_or_else(|| os(&defaults.entrypoint));
        full.extend(if argv.is_empty() { os(&defaults.cmd) } else { argv.to_vec() });
        let mut env: Vec<(OsString, OsString)> =
            defaults.env.iter().filter_map(|e| e.split_once('=')).map(|(k, v)| (k.into(), v.into())).collect();
        env.extend(config.env.iter().cloned());
        let workdir = match (&config.workdir, &defaults.working_dir) {
            (Some(w), _) => w.clone(),
            (None, Some(w)) => PathBuf::from(w),
            (None, None) => PathBuf::from("/"),
        };
        let (uid, gid) = match (config.user, &defaults.user) {
            (Some(ids), _) => ids,
            (None, Some(spec)) => match image.resolve_user(spec)? {
                (0, _) | (_, 0) => (DEFAULT_SANDBOX_ID, DEFAULT_SANDBOX_ID),
                ids => ids,
            },
            (None, None) => (DEFAULT_SANDBOX_ID, DEFAULT_SANDBOX_ID),
        };
        Ok(Resolved { argv: full, env, workdir, uid, gid })
    }
}

impl Plan {
    /// Makes the child join these v1 cgroup `tasks` files itself, then unshare its cgroup
    /// namespace (instead of at the clone).
    /// [`Plan::join_cgroup`] for a cgroup made while the sandbox makes its mounts.
    pub(crate) fn join_cgroup_late(&mut self, tasks_files: &[PathBuf]) -> Result<()> {
        self.join_late = true;
        self.join_cgroup(tasks_files)
    }

    pub(crate) fn join_cgroup(&mut self, tasks_files: &[PathBuf]) -> Result<()> {
        self.cgroup_join = tasks_files.iter().map(|p| cstring(p.as_os_str().as_bytes())).collect::<Result<_>>()?;
        self.clone_flags &= !(libc::CLONE_NEWCGROUP as u64);
        Ok(())
    }

    /// The request block of a parked init, as `proto.rs` lays it out.
    pub(crate) fn parked_block(&self) -> Vec<u8> {
        let argv = self.program.init_argv.strings();
        let envp = self.program.init_envp.strings();
        let words = proto::PARKED_HEADER + 3 * self.rlimits.len() + argv.len() + 1 + envp.len() + 1;
        let mut head: Vec<u64> = Vec::with_capacity(words);
        head.extend([argv.len() as u64, envp.len() as u64, self.rlimits.len() as u64]);
        head.extend(self.rlimits.iter().flat_map(|r| [u64::from(r.resource), r.soft, r.hard]));
        let mut strings = Vec::new();
        let mut offsets = |list: &[std::ffi::CString], head: &mut Vec<u64>| {
            for s in list {
                head.push((8 * words + strings.len()) as u64);
                strings.extend_from_slice(s.as_bytes_with_nul());
            }
            head.push(0);
        };
        offsets(argv, &mut head);
        offsets(envp, &mut head);
        debug_assert_eq!(head.len(), words);
        let mut block: Vec<u8> = head.iter().flat_map(|w| w.to_ne_bytes()).collect();
        block.extend_from_slice(&strings);
        block
    }
}

impl Program {
    fn new(run: &Resolved, config: &Config, workdir: PathBuf, setgroups: bool) -> Result<Program> {
        let argv = &run.argv;
        let Some(command) = argv.first() else {
            return Err(Error::config("the command is empty; give at least the program to run"));
        };
        if command.is_empty() {
            return Err(Error::config("the program name is empty"));
        }
        let c_argv = argv.iter().map(|a| arg_cstring("argument", a.as_bytes())).collect::<Result<Vec<_>>>()?;

        let mut env: Vec<(&OsStr, &OsStr)> = Vec::with_capacity(run.env.len() + 1);
        for (k, v) in &run.env {
            if k.is_empty() || k.as_bytes().contains(&b'=') {
                return Err(Error::config(format!(
                    "environment name `{}` must be non-empty and without `=`",
                    k.to_string_lossy().escape_debug()
                )));
            }
            // A later value for the same name replaces the earlier one, as in a shell.
            env.retain(|(old, _)| old != k);
            env.push((k, v));
        }
        let path = env.iter().find(|(k, _)| *k == "PATH").map_or(DEFAULT_PATH.as_bytes(), |(_, v)| v.as_bytes());
        let c_envp = env
            .iter()
            .map(|(k, v)| arg_cstring("environment entry", &[k.as_bytes(), b"=", v.as_bytes()].concat()))
            .chain((!env.iter().any(|(k, _)| *k == "PATH")).then(|| cstring(format!("PATH={DEFAULT_PATH}"))))
            .collect::<Result<Vec<_>>>()?;

        let name = command.as_bytes();
        let candidates = if name.contains(&b'/') {
            vec![arg_cstring("command", name)?]
        } else {
            path.split(|&b| b == b':')
                .filter(|d| !d.is_empty())
                .map(|d| {
                    let dir = d.strip_suffix(b"/").unwrap_or(d);
                    arg_cstring("command", &[dir, b"/", name].concat())
                })
                .collect::<Result<Vec<_>>>()?
        };
        if candidates.is_empty() {
            return Err(Error::config(format!(
                "`PATH` is empty, so `{}` cannot be found; give an absolute path",
                command.to_string_lossy()
            )));
        }

        let workdir = cstring(workdir.as_os_str().as_bytes())?;
        let filter = seccomp::program(&config.seccomp)?;
        let caps = if config.build_root && run.uid == 0 { BUILD_ROOT_CAPS } else { 0 };
        let numbers = format!(
            "{} {} {} {} {} {} {}",
            run.uid,
            run.gid,
            u8::from(setgroups),
            cap_last_cap(),
            caps,
            u8::from(config.tty.is_some()),
            candidates.len()
        );
        let hex = filter.as_ref().map_or_else(CString::default, |f| f.hex.clone());
        let mut init_argv = vec![cstring(proto::ARGV0)?, cstring(numbers)?, workdir.clone(), hex];
        init_argv.extend(candidates.iter().cloned());
        init_argv.extend(c_argv);
        Ok(Program {
            command: command.to_string_lossy().into_owned(),
            candidates,
            workdir,
            init_argv: CStrArray::new(init_argv),
            init_envp: CStrArray::new(c_envp),
            seccomp_kills: config.seccomp != SeccompPolicy::disabled()
                && config.seccomp.action() == SeccompAction::Kill,
        })
    }

    /// Where the command was looked for, for a "not found" message.
    pub(crate) fn searched(&self) -> String {
        self.candidates.iter().map(|c| c.to_string_lossy().into_owned()).collect::<Vec<_>>().join(", ")
    }
}

fn arg_cstring(what: &str, bytes: &[u8]) -> Result<CString> {
    CString::new(bytes).map_err(|_| {
        Error::config(format!("{what} `{}` contains a NUL byte", String::from_utf8_lossy(bytes).escape_debug()))
    })
}

/// Longest wall or cpu time a run may be given: a day is past any judge's need, and keeps
/// every deadline and rlimit far from overflowing.
const MAX_TIME_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// A terminal is stdin, stdout and stderr at once: the supervisor types into it and reads
/// what it shows, so only the settings it can serve that way are taken.
fn validate_tty(config: &Config) -> Result<()> {
    use crate::stdio::{Output, Stdin};
    let Some((rows, cols)) = config.tty else { return Ok(()) };
    if rows == 0 || cols == 0 {
        return Err(Error::config("a terminal needs at least one row and one column"));
    }
    if !matches!(config.stdin, Stdin::Null | Stdin::Bytes(_) | Stdin::Pipe) {
        return Err(Error::config("with a terminal, stdin must be null, bytes (typed at the start) or a pipe"));
    }
    if !matches!(config.stdout, Output::Capture | Output::Pipe) {
        return Err(Error::config("with a terminal, stdout (what it shows) must be captured or a pipe"));
    }
    if config.stderr != Output::Capture {
        return Err(Error::config("with a terminal, stderr goes to it too: leave stderr as it is and set stdout"));
    }
    Ok(())
}

fn validate_limits(config: &Config) -> Result<()> {
    if config.wall_time.is_zero()
        || (config.wall_time > MAX_TIME_LIMIT && config.wall_time != crate::units::NO_WALL_TIME)
    {
        return Err(Error::config("wall_time must be more than zero and at most 24h, or none (NO_WALL_TIME)"));
    }
    if config.output_limit == 0 {
        return Err(Error::config("output_limit must be more than zero bytes"));
    }
    if config.tmpfs_size < 64 << 10 {
        return Err(Error::config(format!("tmpfs_size must be at least 64K (got {} bytes)", config.tmpfs_size)));
    }
    if config.cpu_time.is_some_and(|d| d.is_zero() || d > MAX_TIME_LIMIT) {
        return Err(Error::config("cpu_time must be more than zero and at most 24h"));
    }
    if config.memory.is_some_and(|m| m < 1 << 20) {
        return Err(Error::config("memory must be at least 1M"));
    }
    if config.pids.is_some_and(|n| n == 0 || n > 1 << 22) {
        return Err(Error::config("pids must be between 1 and 4194304"));
    }
    if config.fsize == Some(0) {
        return Err(Error::config("fsize must be more than zero bytes"));
    }
    if config.nofile < 3 {
        return Err(Error::config("nofile must be at least 3 (stdin, stdout and stderr)"));
    }
    if config.stack.is_some_and(|s| s < 64 << 10) {
        return Err(Error::config("stack must be at least 64K"));
    }
    if let Some(cpus) = config.cpus
        && !(cpus.is_finite() && (0.01..=1024.0).contains(&cpus))
    {
        return Err(Error::config(format!("cpus {cpus} must be between 0.01 and 1024 cores")));
    }
    if let Some(set) = &config.cpuset
        && (set.is_empty() || set.len() > 256 || !set.bytes().all(|b| b.is_ascii_digit() || b == b',' || b == b'-'))
    {
        return Err(Error::config(format!("cpuset `{}` must be a list like `0-1,3`", set.escape_debug())));
    }
    Ok(())
}

fn check_mount(spec: &MountSpec) -> Result<rootfs::Bind> {
    let target = sandbox_path("mount target", &spec.target)?;
    if target == Path::new("/") {
        return Err(Error::config("a mount target must not be `/`"));
    }
    for reserved in ["/proc", "/dev"] {
        if target.starts_with(reserved) {
            return Err(Error::config(format!(
                "mount target `{}` is inside `{reserved}`, which the sandbox provides",
                target.display()
            )));
        }
    }
    if spec.source.as_os_str().as_bytes().contains(&0) {
        return Err(Error::config(format!("mount source `{}` contains a NUL byte", spec.source.display())));
    }
    let source = spec
        .source
        .canonicalize()
        .map_err(|e| Error::config(format!("mount source `{}`: {e}", spec.source.display())))?;
    Ok(rootfs::Bind { is_dir: source.is_dir(), source, target, writable: spec.writable })
}

/// The capabilities a build step run as root keeps, Docker's default set: `CHOWN`,
/// `DAC_OVERRIDE`, `FOWNER`, `FSETID`, `KILL`, `SETGID`, `SETUID`, `SETPCAP`,
/// `NET_BIND_SERVICE`, `NET_RAW`, `SYS_CHROOT`, `MKNOD`, `AUDIT_WRITE`, `SETFCAP`. They
/// are the user namespace's: over its own processes and the files whose owners it maps.
const BUILD_ROOT_CAPS: u64 = {
    let caps = [0u32, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];
    let (mut mask, mut i) = (0u64, 0);
    while i < caps.len() {
        mask |= 1 << caps[i];
        i += 1;
    }
    mask
};

/// `/proc/sys/kernel/cap_last_cap`, read once; 63 when unreadable, so every cap is dropped.
fn cap_last_cap() -> u32 {
    static LAST: OnceLock<u32> = OnceLock::new();
    *LAST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(63)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn image() -> (tempfile::TempDir, Image) {
        let dir = tempfile::tempdir().unwrap();
        let img = Image::open(dir.path()).unwrap();
        (dir, img)
    }

    fn plan(config: &Config, argv: &[&str]) -> Result<Plan> {
        let (_d, img) = image();
        Plan::new(&img, config, &argv.iter().map(OsString::from).collect::<Vec<_>>())
    }

    fn config_err(r: Result<Plan>) -> String {
        match r {
            Err(Error::Config(msg)) => msg,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn refuses_bad_configs() {
        let base = Config::default();
        assert!(config_err(plan(&base, &[])).contains("command is empty"));
        assert!(config_err(plan(&base, &[""])).contains("empty"));
        assert!(config_err(plan(&base, &["a\0b"])).contains("NUL"));
        assert!(
            config_err(plan(&Config { env: vec![("A=B".into(), "1".into())], ..base.clone() }, &["x"])).contains("`=`")
        );
        assert!(
            config_err(plan(&Config { env: vec![("A".into(), "\0".into())], ..base.clone() }, &["x"])).contains("NUL")
        );
        assert!(config_err(plan(&Config { wall_time: Duration::ZERO, ..base.clone() }, &["x"])).contains("wall_time"));
        assert!(config_err(plan(&Config { wall_time: Duration::MAX, ..base.clone() }, &["x"])).contains("wall_time"));
        assert!(
            config_err(plan(&Config { cpu_time: Some(Duration::MAX), ..base.clone() }, &["x"])).contains("cpu_time")
        );
        assert!(config_err(plan(&Config { output_limit: 0, ..base.clone() }, &["x"])).contains("output_limit"));
        assert!(config_err(plan(&Config { tmpfs_size: 0, ..base.clone() }, &["x"])).contains("tmpfs_size"));
        let refused: [(Config, &str); 9] = [
            (Config { cpu_time: Some(Duration::ZERO), ..base.clone() }, "cpu_time"),
            (Config { memory: Some(1), ..base.clone() }, "memory"),
            (Config { pids: Some(0), ..base.clone() }, "pids"),
            (Config { fsize: Some(0), ..base.clone() }, "fsize"),
            (Config { nofile: 2, ..base.clone() }, "nofile"),
            (Config { stack: Some(1), ..base.clone() }, "stack"),
            (Config { cpus: Some(f64::NAN), ..base.clone() }, "cpus"),
            (Config { cpus: Some(0.0), ..base.clone() }, "cpus"),
            (Config { cpuset: Some("0;rm".into()), ..base.clone() }, "cpuset"),
        ];
        for (config, word) in refused {
            assert!(config_err(plan(&config, &["x"])).contains(word), "{word}");
        }
        assert!(config_err(plan(&Config { workdir: Some("rel".into()), ..base.clone() }, &["x"])).contains("absolute"));
        assert!(config_err(plan(&Config { user: Some((0, 0)), ..base.clone() }, &["x"])).contains("root"));
        assert!(config_err(plan(&Config { hostname: "".into(), ..base.clone() }, &["x"])).contains("hostname"));
        let mount = |target: &str| Config {
            mounts: vec![MountSpec { source: "/".into(), target: target.into(), writable: false }],
            ..base.clone()
        };
        assert!(config_err(plan(&mount("data"), &["x"])).contains("absolute"));
        assert!(config_err(plan(&mount("/a/../b"), &["x"])).contains(".."));
        assert!(config_err(plan(&mount("/"), &["x"])).contains("`/`"));
        assert!(config_err(plan(&mount("/proc/x"), &["x"])).contains("/proc"));
        let missing = Config {
            mounts: vec![MountSpec { source: "/no/such/dir".into(), target: "/d".into(), writable: false }],
            ..base.clone()
        };
        assert!(config_err(plan(&missing, &["x"])).contains("/no/such/dir"));
    }

    #[test]
    fn image_defaults_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::ImageConfig {
            env: vec!["A=1".into(), "B=2".into()],
            working_dir: Some("/srv".into()),
            user: Some("0".into()),
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec!["echo hi".into()],
            healthcheck: None,
        };
        let image = Image::open(dir.path()).unwrap().with_config(config);
        let run = Resolved::new(&image, &Config::default(), &[]).unwrap();
        assert_eq!(run.argv, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(
            (run.uid, run.gid),
            (DEFAULT_SANDBOX_ID, DEFAULT_SANDBOX_ID),
            "an image's root user is not root here"
        );
        assert_eq!(run.workdir, PathBuf::from("/srv"));
        let caller = Config {
            env: vec![("B".into(), "3".into())],
            workdir: Some("/tmp".into()),
            user: Some((7, 8)),
            entrypoint: Some(vec![]),
            ..Config::default()
        };
        let run = Resolved::new(&image, &caller, &["ls".into()]).unwrap();
        assert_eq!(run.argv, ["ls"]);
        assert_eq!((run.uid, run.gid, run.workdir.to_str().unwrap()), (7, 8, "/tmp"));
        assert_eq!(run.env.last().unwrap(), &("B".into(), "3".into()), "the caller's entry comes last and wins");
    }

    #[test]
    fn path_search_and_env() {
        let config = Config {
            env: vec![("PATH".into(), "/a:/b/".into()), ("X".into(), "1".into()), ("X".into(), "2".into())],
            ..Config::default()
        };
        let p = plan(&config, &["prog", "arg"]).unwrap();
        let cands: Vec<_> = p.program.candidates.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(cands, ["/a/prog", "/b/prog"]);
        // argv0, numbers, workdir, filter, two candidates, the program's two arguments, NULL.
        assert_eq!(p.program.init_argv.pointers().len(), 9);
        assert!(p.program.init_argv.pointers()[8].is_null());
        assert_eq!(p.program.init_envp.pointers().len(), 3, "PATH and one X");
        let arg = |i: usize| p.program.init_argv.strings()[i].to_str().unwrap();
        assert_eq!(p.program.init_argv.pointers()[0], p.program.init_argv.strings()[0].as_ptr());
        assert_eq!(arg(0), proto::ARGV0);
        let numbers: Vec<&str> = arg(1).split(' ').collect();
        assert_eq!(numbers.len(), proto::NUMBERS);
        assert_eq!(numbers[4], "0", "no capabilities kept");
        assert_eq!(numbers[6], "2", "two candidates");
        assert_eq!((arg(4), arg(5), arg(6), arg(7)), ("/a/prog", "/b/prog", "prog", "arg"));
        assert_eq!(arg(3).len() % 16, 0, "the filter: 8 bytes per instruction, as hex");

        // A parked init's request block (`proto.rs`): the same strings, by offset.
        let block = p.parked_block();
        let word = |i: usize| u64::from_ne_bytes(block[8 * i..8 * i + 8].try_into().unwrap());
        let string = |offset: u64| {
            let from = &block[offset as usize..];
            std::ffi::CStr::from_bytes_until_nul(from).unwrap().to_str().unwrap()
        };
        let (argc, envc, nrlimits) = (word(0) as usize, word(1) as usize, word(2) as usize);
        assert_eq!((argc, envc, nrlimits), (8, 2, p.rlimits.len()));
        let argv_at = proto::PARKED_HEADER + 3 * nrlimits;
        let r = &p.rlimits[0];
        assert_eq!((word(3), word(4), word(5)), (u64::from(r.resource), r.soft, r.hard));
        for i in 0..argc {
            assert_eq!(string(word(argv_at + i)), arg(i));
        }
        assert_eq!(word(argv_at + argc), 0);
        let envp_at = argv_at + argc + 1;
        let env: Vec<&str> = (0..envc).map(|i| string(word(envp_at + i))).collect();
        assert_eq!(env, p.program.init_envp.strings().iter().map(|c| c.to_str().unwrap()).collect::<Vec<_>>());
        assert_eq!(word(envp_at + envc), 0);
        assert_eq!(block.last(), Some(&0), "the last string's NUL ends the block");

        let p = plan(&Config::default(), &["./rel/prog"]).unwrap();
        assert_eq!(p.program.candidates.len(), 1);
        let p = plan(&Config::default(), &["true"]).unwrap();
        assert_eq!(p.program.candidates.len(), DEFAULT_PATH.split(':').count());
    }
}
