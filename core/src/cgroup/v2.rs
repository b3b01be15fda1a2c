//! cgroup v2: one directory `<root>/isolette/<run>` with memory, pids and cpu enabled in
//! `isolette/cgroup.subtree_control`; the sandbox is cloned straight into it
//! (`CLONE_INTO_CGROUP`), so there is no attach step.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fs::{self, keyed};
use super::{Cgroup, Limits, PARENT, Stats};
use crate::error::{Error, Result};

/// The cpu.max period, in microseconds.
const CPU_PERIOD_US: u64 = 100_000;

#[derive(Debug)]
pub(crate) struct Group {
    dir: PathBuf,
    /// Open directory, for `CLONE_INTO_CGROUP`.
    fd: File,
}

impl Group {
    /// Creates the run's directory. The root cgroup is not ours to change: when it does not
    /// delegate memory, pids and cpu to its children (systemd does; a bare host may not),
    /// this is an error that says how to fix it.
    pub(super) fn create(root: &Path, name: &str, limits: &Limits) -> Result<Group> {
        let parent = root.join(PARENT);
        if !parent.exists() {
            match std::fs::create_dir(&parent) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(Error::io("mkdir", &parent, e)),
            }
        }
        let mut wanted = vec!["memory", "pids", "cpu"];
        if limits.cpuset.is_some() {
            wanted.push("cpuset");
        }
        let available = fs::read(&parent.join("cgroup.controllers"))?;
        let enabled = fs::read(&parent.join("cgroup.subtree_control"))?;
        let missing: Vec<&str> =
            wanted.iter().copied().filter(|c| !enabled.split_whitespace().any(|e| e == *c)).collect();
        if missing.iter().any(|c| !available.split_whitespace().any(|a| a == *c)) {
            return Err(Error::Host {
                feature: crate::HostFeature::Cgroup,
                hint: "the root cgroup does not delegate the memory, pids and cpu (and for a cpuset limit, cpuset) controllers; \
                       enable them as systemd does (echo '+memory +pids +cpu +cpuset' > /sys/fs/cgroup/cgroup.subtree_control), \
                       or run with cgroup(false) / --no-cgroup for approximate rlimit-based limits",
            });
        }
        if !missing.is_empty() {
            let change: Vec<String> = missing.iter().map(|c| format!("+{c}")).collect();
            fs::write(&parent.join("cgroup.subtree_control"), &change.join(" "))?;
        }
        let dir = parent.join(name);
        std::fs::create_dir(&dir).map_err(|e| Error::io("mkdir", &dir, e))?;
        let fd = match File::open(&dir) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = std::fs::remove_dir(&dir);
                return Err(Error::io("open", &dir, e));
            }
        };
        Ok(Group { dir, fd })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Cgroup for Group {
    fn apply(&self, limits: &Limits) -> Result<()> {
        if let Some(bytes) = limits.memory {
            fs::write(&self.file("memory.max"), &bytes.to_string())?;
        }
        fs::write_if_present(&self.file("memory.swap.max"), "0")?;
        if let Some(n) = limits.pids {
            fs::write(&self.file("pids.max"), &n.to_string())?;
        }
        if let Some(cpus) = limits.cpus {
            let quota = ((cpus * CPU_PERIOD_US as f64).round() as u64).max(1000);
            fs::write(&self.file("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
        }
        if let Some(set) = &limits.cpuset {
            fs::write(&self.file("cpuset.cpus"), set)?;
        }
        Ok(())
    }

    fn join_files(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    fn dir_fd(&self) -> Option<RawFd> {
        Some(self.fd.as_raw_fd())
    }

    fn cpu_usage(&self) -> Result<Duration> {
        let stat = fs::read(&self.file("cpu.stat"))?;
        Ok(Duration::from_micros(keyed(&stat, "usage_usec").unwrap_or(0)))
    }

    fn stats(&self) -> Result<Stats> {
        let stat = fs::read(&self.file("cpu.stat"))?;
        let events = fs::read(&self.file("memory.events"))?;
        // memory.peak exists since Linux 5.19; memory.current at the end is the best before.
        let peak = fs::read_u64(&self.file("memory.peak")).or_else(|_| fs::read_u64(&self.file("memory.current")))?;
        Ok(Stats {
            user: Duration::from_micros(keyed(&stat, "user_usec").unwrap_or(0)),
            system: Duration::from_micros(keyed(&stat, "system_usec").unwrap_or(0)),
            cpu: Duration::from_micros(keyed(&stat, "usage_usec").unwrap_or(0)),
            memory_peak: peak,
            oom_kills: keyed(&events, "oom_kill").unwrap_or(0),
            memory_limit_hits: keyed(&events, "max").unwrap_or(0),
        })
    }

    fn dirs(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }
}
