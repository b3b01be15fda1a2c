//! Cgroups: limits and whole-tree accounting for one run, on cgroup v1 and v2.
//!
//! Parent side only; knows nothing of images or namespaces. The library works only below
//! its own parent cgroup, `isolette/`, which it creates; each run gets
//! `isolette/<pid>-<starttime>-<seq>`, named after the calling process so that what a
//! killed caller left behind can be recognized and removed ([`gc`]). The same [`Cgroup`]
//! trait has one backend per version, `v1.rs` and `v2.rs`, with the same method names.

mod fs;
mod v1;
mod v2;

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Name of the library's own parent cgroup.
pub(crate) const PARENT: &str = "isolette";

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// One unified hierarchy at `root`.
    V2 {
        root: PathBuf,
    },
    /// v1 hierarchies: each controller and its mount point (co-mounted ones share one).
    V1 {
        mounts: Vec<(String, PathBuf)>,
    },
    None,
}

impl Layout {
    /// Reads the layout from the text of `/proc/self/mounts`.
    pub(crate) fn parse(mounts: &str) -> Layout {
        let mut v1 = Vec::new();
        for line in mounts.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [_, dir, fstype, options, ..] = fields[..] else {
                continue;
            };
            match fstype {
                "cgroup2" if dir == "/sys/fs/cgroup" => return Layout::V2 { root: dir.into() },
                "cgroup" => {
                    for opt in options.split(',') {
                        if v1::CONTROLLERS.contains(&opt) {
                            v1.push((opt.to_string(), PathBuf::from(dir)));
                        }
                    }
                }
                _ => {}
            }
        }
        if v1.is_empty() { Layout::None } else { Layout::V1 { mounts: v1 } }
    }

    /// This host's layout, read once.
    pub(crate) fn host() -> &'static Layout {
        static LAYOUT: OnceLock<Layout> = OnceLock::new();
        LAYOUT.get_or_init(|| Layout::parse(&std::fs::read_to_string("/proc/self/mounts").unwrap_or_default()))
    }
}

/// Limits applied through cgroups.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Limits {
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    /// Cpu cores' worth of quota (`1.5` = 150 ms per 100 ms).
    pub cpus: Option<f64>,
    /// A cpuset list such as `0-1` or `0,2`.
    pub cpuset: Option<String>,
}

/// Whole-tree figures of a finished run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Stats {
    pub user: Duration,
    pub system: Duration,
    pub cpu: Duration,
    pub memory_peak: u64,
    /// Processes the kernel's OOM killer killed in the group.
    pub oom_kills: u64,
    /// Times the group hit its memory limit (reclaim or failed charge).
    pub memory_limit_hits: u64,
}

/// One run's cgroup, on either version. Same verbs in both backends.
pub(crate) trait Cgroup: Send + std::fmt::Debug {
    /// Sets the limits; called once, before the sandbox starts.
    fn apply(&self, limits: &Limits) -> Result<()>;
    /// Files the sandbox's init writes `0` to, to move itself in (v1: each hierarchy's
    /// `tasks`). A process moving itself skips the kernel's global threadgroup lock, which
    /// costs a whole RCU grace period (5 to 14 ms measured here) when the parent writes
    /// the child's pid to `cgroup.procs`. Empty on v2, which clones straight in.
    fn join_files(&self) -> Vec<PathBuf>;
    /// The cgroup directory fd for `CLONE_INTO_CGROUP` (v2 only).
    fn dir_fd(&self) -> Option<RawFd>;
    /// Cpu time used so far by the whole tree.
    fn cpu_usage(&self) -> Result<Duration>;
    /// Final figures.
    fn stats(&self) -> Result<Stats>;
    /// Directories to remove, deepest first.
    fn dirs(&self) -> Vec<PathBuf>;
}

/// A run's cgroup; removed when dropped (deferred when the kernel still holds it).
#[derive(Debug)]
pub(crate) struct Guard(Box<dyn Cgroup>, crate::runtime::Owner);

impl std::ops::Deref for Guard {
    type Target = dyn Cgroup;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        // A fork's copy: the cgroup is its parent's.
        if !self.1.is_here() {
            return;
        }
        crate::runtime::remove_dirs(self.0.dirs());
    }
}

/// Creates and limits a cgroup for one run. `None` for a caller that is not root (no
/// cgroup to use, so figures will be approximate); for root, a host without usable cgroups
/// is an error that says what to change, never a silent loss of the memory and pids limits.
pub(crate) fn acquire(limits: &Limits) -> Result<Option<Guard>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    if RUNS.fetch_add(1, Ordering::Relaxed) == 0 {
        // The first run of a process also clears what killed callers left behind.
        let _ = gc();
        return make(limits).map(Some);
    }
    // A process that runs sandboxes again and again gets the next one's cgroup made ahead.
    static SPARES: crate::runtime::Spares<Limits, Guard> = crate::runtime::Spares::new();
    let guard = match SPARES.take(limits) {
        Some(spare) => spare,
        None => make(limits)?,
    };
    SPARES.prepare(limits.clone(), |limits| make(limits).ok());
    Ok(Some(guard))
}

/// Runs that asked for a cgroup in this process.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// A run's cgroup, ready, or to be made while its sandbox sets up its mounts.
pub(crate) enum Acquired {
    Ready(Guard),
    Later(Pending),
}

/// A v1 cgroup named but not made yet: a process's first run (the CLI's only one) makes it
/// and clears what killed callers left ([`gc`]) while the sandbox makes its mounts, and
/// the sandbox joins it after ([`Pending::make`]).
pub(crate) struct Pending {
    group: v1::Group,
    limits: Limits,
}

impl Pending {
    /// The `tasks` files the sandbox will write itself into.
    pub(crate) fn join_files(&self) -> Vec<PathBuf> {
        self.group.join_files()
    }

    /// Clears what killed callers left, makes the directories and applies the limits.
    pub(crate) fn make(self) -> Result<Guard> {
        let _ = gc();
        self.group.make_dirs()?;
        limited(Box::new(self.group), &self.limits)
    }
}

/// [`acquire`], except that a process's first run on cgroup v1 gets its cgroup to make
/// later ([`Pending`]): there is no spare to take then, and making one costs a few hundred
/// microseconds that the sandbox's own setup can hide. Not with a user namespace
/// (`userns`): its sandbox becomes a mapped user before its mounts, who may not write the
/// host's cgroup files.
pub(crate) fn acquire_or_defer(limits: &Limits, userns: bool) -> Result<Option<Acquired>> {
    if let Layout::V1 { mounts } = Layout::host()
        && !userns
        && nix::unistd::geteuid().is_root()
        && RUNS.load(Ordering::Relaxed) == 0
        && RUNS.fetch_add(1, Ordering::Relaxed) == 0
    {
        let group = v1::Group::plan(mounts, &run_name(), limits)?;
        return Ok(Some(Acquired::Later(Pending { group, limits: limits.clone() })));
    }
    Ok(acquire(limits)?.map(Acquired::Ready))
}

/// Creates a run's cgroup and applies `limits`.
fn make(limits: &Limits) -> Result<Guard> {
    let name = run_name();
    let group: Box<dyn Cgroup> = match Layout::host() {
        Layout::V2 { root } => Box::new(v2::Group::create(root, &name, limits)?),
        Layout::V1 { mounts } => Box::new(v1::Group::create(mounts, &name, limits)?),
        Layout::None => {
            return Err(Error::Host {
                feature: crate::HostFeature::Cgroup,
                hint: "no cgroup filesystem is mounted; mount cgroup2 on /sys/fs/cgroup, or run with cgroup(false) / \
                       --no-cgroup for approximate rlimit-based limits",
            });
        }
    };
    limited(group, limits)
}

/// A made cgroup, guarded (removed when dropped), with `limits` applied.
fn limited(group: Box<dyn Cgroup>, limits: &Limits) -> Result<Guard> {
    let guard = Guard(group, crate::runtime::Owner::here());
    guard.apply(limits)?;
    Ok(guard)
}

/// `<pid>-<starttime>-<seq>` (the process's `runtime::owner_tag`, then a number): unique
/// per run, and tells whose it is.
fn run_name() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", crate::runtime::owner_tag(), SEQ.fetch_add(1, Ordering::Relaxed))
}

/// `<pid>-<starttime>-<seq>`, as [`run_name`] makes them.
fn looks_like_run_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether the process that named a run's cgroup `name` is still alive.
fn owner_alive(name: &str) -> bool {
    name.rsplit_once('-').is_none_or(|(tag, _)| crate::runtime::tag_alive(tag))
}

/// What [`gc`](crate::gc) removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Cgroup directories removed.
    pub removed: Vec<PathBuf>,
    /// Directories that could not be removed (still busy).
    pub busy: Vec<PathBuf>,
}

/// Removes the cgroups that callers which are no longer running left below `isolette/`
/// (killing any process still in them). Runs automatically at a process's first sandbox;
/// `isolette gc` runs it, with the rest of [`crate::gc`], by hand.
pub(crate) fn gc() -> Result<GcReport> {
    let mut report = GcReport::default();
    let parents: Vec<PathBuf> = match Layout::host() {
        Layout::V2 { root } => vec![root.join(PARENT)],
        Layout::V1 { mounts } => {
            let mut p: Vec<PathBuf> = mounts.iter().map(|(_, m)| m.join(PARENT)).collect();
            p.dedup();
            p
        }
        Layout::None => vec![],
    };
    for parent in parents {
        // cgroupfs (kernfs) counts subdirectories in a directory's link count: 2 means
        // no run's cgroup is there, which is the common case, for one `stat`.
        if std::fs::metadata(&parent).is_ok_and(|m| std::os::unix::fs::MetadataExt::nlink(&m) <= 2) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            // The control files are most of the entries: the type from readdir, and the
            // name, tell them apart without a stat each.
            let name = entry.file_name().to_string_lossy().into_owned();
            if !looks_like_run_name(&name) || !entry.file_type().is_ok_and(|t| t.is_dir()) || owner_alive(&name) {
                continue;
            }
            let dir = entry.path();
            kill_members(&dir);
            if remove_with_retry(&dir) {
                report.removed.push(dir);
            } else {
                report.busy.push(dir);
            }
        }
    }
    Ok(report)
}

/// SIGKILLs every process left in one of our cgroups.
fn kill_members(dir: &Path) {
    if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    for pid in std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().lines() {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

fn remove_with_retry(dir: &Path) -> bool {
    let deadline = Instant::now() + Duration::from_millis(500);
    loop {
        if crate::runtime::try_remove(dir) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hybrid_v1_and_unified_v2() {
        let hybrid = "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n\
                      cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,memory 0 0\n\
                      cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n\
                      cgroup /sys/fs/cgroup/systemd cgroup rw,name=systemd 0 0\n";
        assert_eq!(
            Layout::parse(hybrid),
            Layout::V1 {
                mounts: vec![
                    ("memory".into(), "/sys/fs/cgroup/memory".into()),
                    ("cpu".into(), "/sys/fs/cgroup/cpu,cpuacct".into()),
                    ("cpuacct".into(), "/sys/fs/cgroup/cpu,cpuacct".into()),
                ]
            }
        );
        let unified = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
        assert_eq!(Layout::parse(unified), Layout::V2 { root: "/sys/fs/cgroup".into() });
        assert_eq!(Layout::parse("proc /proc proc rw 0 0\n"), Layout::None);
    }

    #[test]
    fn run_names_identify_a_live_owner() {
        let name = run_name();
        assert!(name.starts_with(&format!("{}-", std::process::id())));
        assert!(owner_alive(&name));
        assert_ne!(run_name(), name, "unique per run");
        assert!(!owner_alive("999999999-1-0"), "no such process");
        assert!(owner_alive("not-ours"), "names we did not make are left alone");
        assert!(looks_like_run_name(&name) && looks_like_run_name("1-2-3"));
        for other in ["cgroup.procs", "memory.limit_in_bytes", "1-2", "1-2-3-4", "a-2-3", "1--3", "tasks"] {
            assert!(!looks_like_run_name(other), "{other}");
        }
    }
}
