//! cgroup v1: one directory per hierarchy under `<mount>/isolette/<run>`.
//!
//! memory, pids and cpuacct always (their figures make the verdict); cpu and cpuset only
//! when a quota or a cpuset is asked for. Co-mounted controllers (`cpu,cpuacct`) share
//! one directory.

use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fs::{self, keyed};
use super::{Cgroup, Limits, PARENT, Stats};
use crate::error::{Error, Result};

/// Controllers isolette can use on v1.
pub(super) const CONTROLLERS: [&str; 5] = ["memory", "pids", "cpuacct", "cpu", "cpuset"];

/// The CFS period for a cpu quota, in microseconds.
const CFS_PERIOD_US: u64 = 100_000;

#[derive(Debug)]
pub(crate) struct Group {
    /// Each directory with the controllers it hosts; `dirs[i]` is under `mounts[i]`.
    dirs: Vec<(Vec<String>, PathBuf)>,
}

impl Group {
    /// Creates the run's directories; an error when a controller they need is not mounted.
    pub(super) fn create(mounts: &[(String, PathBuf)], name: &str, limits: &Limits) -> Result<Group> {
        let group = Group::plan(mounts, name, limits)?;
        group.make_dirs()?;
        Ok(group)
    }

    /// The run's directories, not made yet; an error when a controller they need is not
    /// mounted.
    pub(super) fn plan(mounts: &[(String, PathBuf)], name: &str, limits: &Limits) -> Result<Group> {
        let mut wanted = vec!["memory", "pids", "cpuacct"];
        if limits.cpus.is_some() {
            wanted.push("cpu");
        }
        if limits.cpuset.is_some() {
            wanted.push("cpuset");
        }
        let mut dirs: Vec<(Vec<String>, PathBuf)> = Vec::new();
        for ctrl in wanted {
            let Some((_, mount)) = mounts.iter().find(|(c, _)| c == ctrl) else {
                return Err(Error::Host {
                    feature: crate::HostFeature::Cgroup,
                    hint: "a cgroup v1 controller isolette needs (memory, pids, cpuacct; cpu or cpuset when asked for) is not \
                           mounted; mount it, or run with cgroup(false) / --no-cgroup for approximate rlimit-based limits",
                });
            };
            let dir = mount.join(PARENT).join(name);
            match dirs.iter_mut().find(|(_, d)| *d == dir) {
                Some((ctrls, _)) => ctrls.push(ctrl.into()),
                None => dirs.push((vec![ctrl.into()], dir)),
            }
        }
        Ok(Group { dirs })
    }

    /// Makes the directories [`Group::plan`] named; none is left when one fails.
    pub(super) fn make_dirs(&self) -> Result<()> {
        for (i, (ctrls, dir)) in self.dirs.iter().enumerate() {
            if let Err(e) = make_dir(ctrls, dir) {
                for (_, made) in &self.dirs[..i] {
                    let _ = std::fs::remove_dir(made);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    fn dir(&self, ctrl: &str) -> Option<&Path> {
        self.dirs.iter().find(|(c, _)| c.iter().any(|x| x == ctrl)).map(|(_, d)| d.as_path())
    }

    fn file(&self, ctrl: &str, file: &str) -> PathBuf {
        self.dir(ctrl).expect("controller created").join(file)
    }
}

/// Makes `isolette/` (once) and the run's directory below it.
fn make_dir(ctrls: &[String], dir: &Path) -> Result<()> {
    let parent = dir.parent().expect("under isolette/");
    if !parent.exists() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("mkdir", parent, e))?;
    }
    if ctrls.iter().any(|c| c == "cpuset") {
        // A v1 cpuset takes no task until cpus and mems are set; start the parent with
        // everything its own parent has.
        inherit_cpuset(parent)?;
    }
    std::fs::create_dir(dir).map_err(|e| Error::io("mkdir", dir, e))
}

fn inherit_cpuset(dir: &Path) -> Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if fs::read(&dir.join(file))?.trim().is_empty() {
            let from_parent = fs::read(&dir.parent().expect("below the mount").join(file))?;
            fs::write(&dir.join(file), &from_parent)?;
        }
    }
    Ok(())
}

impl Cgroup for Group {
    fn apply(&self, limits: &Limits) -> Result<()> {
        if let Some(bytes) = limits.memory {
            fs::write(&self.file("memory", "memory.limit_in_bytes"), &bytes.to_string())?;
            // Swap counts against the same limit: memory + swap = memory.
            fs::write_if_present(&self.file("memory", "memory.memsw.limit_in_bytes"), &bytes.to_string())?;
        }
        fs::write_if_present(&self.file("memory", "memory.swappiness"), "0")?;
        if let Some(n) = limits.pids {
            fs::write(&self.file("pids", "pids.max"), &n.to_string())?;
        }
        if let Some(cpus) = limits.cpus {
            fs::write(&self.file("cpu", "cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
            let quota = ((cpus * CFS_PERIOD_US as f64).round() as u64).max(1000);
            fs::write(&self.file("cpu", "cpu.cfs_quota_us"), &quota.to_string())?;
        }
        if let Some(set) = &limits.cpuset {
            let dir = self.dir("cpuset").expect("created");
            fs::write(&dir.join("cpuset.cpus"), set)?;
            let mems = fs::read(&dir.parent().expect("under isolette/").join("cpuset.mems"))?;
            fs::write(&dir.join("cpuset.mems"), &mems)?;
        }
        Ok(())
    }

    fn join_files(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, d)| d.join("tasks")).collect()
    }

    fn dir_fd(&self) -> Option<RawFd> {
        None
    }

    fn cpu_usage(&self) -> Result<Duration> {
        Ok(Duration::from_nanos(fs::read_u64(&self.file("cpuacct", "cpuacct.usage"))?))
    }

    fn stats(&self) -> Result<Stats> {
        let cpu = self.cpu_usage()?;
        let user = Duration::from_nanos(fs::read_u64(&self.file("cpuacct", "cpuacct.usage_user")).unwrap_or(0));
        let system = Duration::from_nanos(fs::read_u64(&self.file("cpuacct", "cpuacct.usage_sys")).unwrap_or(0));
        let oom = fs::read(&self.file("memory", "memory.oom_control"))?;
        Ok(Stats {
            user,
            system,
            cpu,
            memory_peak: fs::read_u64(&self.file("memory", "memory.max_usage_in_bytes"))?,
            oom_kills: keyed(&oom, "oom_kill").unwrap_or(0),
            memory_limit_hits: fs::read_u64(&self.file("memory", "memory.failcnt"))?,
        })
    }

    fn dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|(_, d)| d.clone()).collect()
    }
}
