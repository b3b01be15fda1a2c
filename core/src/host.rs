//! Probing what the host supports, for `isolette check` and for clear errors.
//!
//! Parent side, read-only: it reads `/proc` and never creates anything.

use std::fmt;

use crate::cgroup::Layout;

/// How cgroups are mounted on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CgroupLayout {
    /// One unified v2 hierarchy; the controllers listed in its root.
    V2 {
        /// Controllers available at the root (`cgroup.controllers`).
        controllers: Vec<String>,
        /// Controllers the root hands down to its children (`cgroup.subtree_control`): the
        /// ones isolette's own cgroups can use.
        delegated: Vec<String>,
    },
    /// v1 hierarchies, one per controller (possibly with an empty v2 beside them: "hybrid").
    V1 {
        /// Controllers that have a v1 hierarchy.
        controllers: Vec<String>,
        /// Whether a v2 hierarchy is mounted too (at `/sys/fs/cgroup/unified`).
        hybrid: bool,
    },
    /// No cgroup filesystem is mounted.
    None,
}

/// What this host supports, and what degrades without it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostReport {
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// Whether the caller is root (euid 0).
    pub root: bool,
    /// Whether user namespaces can be created by this caller.
    pub user_namespaces: bool,
    /// Whether overlayfs is available.
    pub overlayfs: bool,
    /// Whether seccomp filters are available.
    pub seccomp: bool,
    /// The cgroup layout.
    pub cgroup: CgroupLayout,
    /// Whether `slirp4netns` (outbound networks, published ports) is installed.
    pub slirp4netns: bool,
    /// Whether callers who are not root may open `/dev/net/tun` (mode 0666), which their
    /// outbound networks and published ports need.
    pub tun_unprivileged: bool,
}

impl HostReport {
    /// Probes the host.
    pub fn probe() -> HostReport {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let root = nix::unistd::geteuid().is_root();
        let max_userns = read("/proc/sys/user/max_user_namespaces").trim().parse::<u64>().unwrap_or(0);
        // Debian's knob; absent on kernels without the patch, where unprivileged use is allowed.
        let unpriv = read("/proc/sys/kernel/unprivileged_userns_clone").trim() != "0";
        HostReport {
            kernel: nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
            root,
            user_namespaces: max_userns > 0 && (root || unpriv),
            overlayfs: read("/proc/filesystems").lines().any(|l| l.split_whitespace().last() == Some("overlay"))
                || std::path::Path::new("/sys/module/overlay").exists(),
            seccomp: read("/proc/self/status").lines().any(|l| l.starts_with("Seccomp:")),
            cgroup: cgroup_layout(
                &read("/proc/self/mounts"),
                &read("/sys/fs/cgroup/cgroup.controllers"),
                &read("/sys/fs/cgroup/cgroup.subtree_control"),
            ),
            slirp4netns: crate::network::find_program("slirp4netns").is_some(),
            tun_unprivileged: crate::network::tun_open_to_all(),
        }
    }

    /// What will not work, or works with less isolation or precision, on this host.
    pub fn degradations(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.root && !self.user_namespaces {
            out.push(
                "not root and no user namespaces: sandboxes cannot be created (run as root, or enable user namespaces)"
                    .into(),
            );
        }
        if !self.overlayfs {
            out.push("no overlayfs: sandboxes cannot be created (modprobe overlay)".into());
        }
        if !self.seccomp {
            out.push("no seccomp: system calls cannot be filtered".into());
        }
        if !self.slirp4netns {
            out.push("no slirp4netns: --network outbound and -p fail (apt-get install slirp4netns)".into());
        }
        if !self.tun_unprivileged {
            out.push(format!(
                "/dev/net/tun is not open to every user: callers who are not root{} cannot use --network outbound or -p \
                 (chmod 0666 /dev/net/tun, the mode most distributions ship)",
                if self.root { "" } else { ", this one included," }
            ));
        }
        let has = |c: &[String], names: &[&str]| names.iter().all(|n| c.iter().any(|x| x == n));
        if !self.root {
            out.push(
                "not root: no cgroup, so limits fall back to rlimits (memory to RLIMIT_AS, cpu time to RLIMIT_CPU, no \
                 pids limit) and cpu and memory figures are approximate (rusage)"
                    .into(),
            );
            return out;
        }
        let unusable = match &self.cgroup {
            CgroupLayout::None => Some("no cgroup filesystem is mounted"),
            CgroupLayout::V1 { controllers, .. } if !has(controllers, &["memory", "pids", "cpuacct"]) => {
                Some("cgroup v1 lacks memory, pids or cpuacct")
            }
            CgroupLayout::V2 { delegated, .. } if !has(delegated, &["memory", "pids", "cpu"]) => Some(
                "the cgroup v2 root does not delegate memory, pids and cpu (echo '+memory +pids +cpu' > \
                 /sys/fs/cgroup/cgroup.subtree_control, as systemd does)",
            ),
            _ => None,
        };
        if let Some(reason) = unusable {
            out.push(format!(
                "{reason}: runs fail with a host error unless cgroups are off (--no-cgroup, approximate)"
            ));
        }
        out
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

impl fmt::Display for HostReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "kernel           {}", self.kernel)?;
        writeln!(f, "root             {}", yes(self.root))?;
        writeln!(f, "user namespaces  {}", yes(self.user_namespaces))?;
        writeln!(f, "overlayfs        {}", yes(self.overlayfs))?;
        writeln!(f, "seccomp          {}", yes(self.seccomp))?;
        writeln!(f, "slirp4netns      {}", yes(self.slirp4netns))?;
        writeln!(f, "tun for users    {}", yes(self.tun_unprivileged))?;
        match &self.cgroup {
            CgroupLayout::V2 { controllers, delegated } => writeln!(
                f,
                "cgroup           v2 (unified): {}; delegated to children: {}",
                controllers.join(" "),
                if delegated.is_empty() { "none".to_string() } else { delegated.join(" ") }
            )?,
            CgroupLayout::V1 { controllers, hybrid } => {
                writeln!(f, "cgroup           v1{}: {}", if *hybrid { " (hybrid)" } else { "" }, controllers.join(" "))?
            }
            CgroupLayout::None => writeln!(f, "cgroup           none")?,
        }
        for d in self.degradations() {
            writeln!(f, "degraded         {d}")?;
        }
        Ok(())
    }
}

/// The public view of the cgroup layout, from `/proc/self/mounts` and the v2 root's
/// `cgroup.controllers`.
fn cgroup_layout(mounts: &str, v2_controllers: &str, v2_delegated: &str) -> CgroupLayout {
    let words = |s: &str| s.split_whitespace().map(String::from).collect();
    match Layout::parse(mounts) {
        Layout::V2 { .. } => CgroupLayout::V2 { controllers: words(v2_controllers), delegated: words(v2_delegated) },
        Layout::V1 { mounts: v1 } => {
            let mut controllers: Vec<String> = v1.into_iter().map(|(c, _)| c).collect();
            controllers.sort();
            let hybrid = mounts.lines().any(|l| l.split_whitespace().nth(2) == Some("cgroup2"));
            CgroupLayout::V1 { controllers, hybrid }
        }
        Layout::None => CgroupLayout::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_hybrid_v1() {
        let mounts = "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid 0 0\n\
                      cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,memory 0 0\n\
                      cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n\
                      cgroup /sys/fs/cgroup/pids cgroup rw,pids 0 0\n";
        assert_eq!(
            cgroup_layout(mounts, "", ""),
            CgroupLayout::V1 {
                controllers: vec!["cpu".into(), "cpuacct".into(), "memory".into(), "pids".into()],
                hybrid: true
            }
        );
    }

    #[test]
    fn detects_unified_v2_and_none() {
        let mounts = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nsdelegate 0 0\n";
        let v2 = cgroup_layout(mounts, "cpuset cpu io memory pids\n", "memory pids\n");
        assert_eq!(
            v2,
            CgroupLayout::V2 {
                controllers: ["cpuset", "cpu", "io", "memory", "pids"].map(String::from).to_vec(),
                delegated: vec!["memory".into(), "pids".into()],
            }
        );
        let report = HostReport {
            kernel: "6.1".into(),
            root: true,
            user_namespaces: true,
            overlayfs: true,
            seccomp: true,
            cgroup: v2,
            slirp4netns: true,
            tun_unprivileged: false,
        };
        assert!(report.degradations().iter().any(|d| d.contains("does not delegate")), "cpu is not delegated");
        assert!(report.degradations().iter().any(|d| d.contains("chmod 0666 /dev/net/tun")), "tun is 0600");
        assert_eq!(cgroup_layout("proc /proc proc rw 0 0\n", "", ""), CgroupLayout::None);
    }
}
