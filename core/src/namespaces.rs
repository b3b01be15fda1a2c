//! Clone flags and user namespace id maps.
//!
//! Parent side: the maps are text made before the clone and written by the parent to
//! `/proc/<pid>/{setgroups,uid_map,gid_map}` while the child waits on the sync pipe.

use std::path::PathBuf;

use crate::error::{Error, Result, Step};

/// Namespaces every sandbox gets: pid, mount, network, ipc, uts and cgroup.
pub(crate) const BASE_FLAGS: u64 = (libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u64;
/// `CLONE_PIDFD`: the parent gets a pidfd of the child from `clone3`.
pub(crate) const CLONE_PIDFD: u64 = 0x1000;

/// First host uid/gid of the range a root caller's user namespace maps to: ids inside map to
/// `HOST_ID_BASE + id`, so nothing the sandbox owns belongs to a real host user.
pub(crate) const HOST_ID_BASE: u32 = 1 << 30;
/// How many ids a root caller's user namespace maps.
pub(crate) const HOST_ID_COUNT: u32 = 65536;

/// What the parent writes into `/proc/<pid>/` for a user namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdMaps {
    pub uid_map: String,
    pub gid_map: String,
    /// `"deny"` when an unprivileged caller maps itself (the kernel requires it).
    pub setgroups: &'static str,
}

impl IdMaps {
    /// Root caller: ids 0..65536 inside map to a high host range.
    pub(crate) fn for_root() -> IdMaps {
        let line = format!("0 {HOST_ID_BASE} {HOST_ID_COUNT}\n");
        IdMaps { uid_map: line.clone(), gid_map: line, setgroups: "allow" }
    }

    /// A root caller's build step: ids 0..65536 inside are the same ids outside, so the
    /// image's files keep their owners and the namespace's root may change them (with
    /// capabilities over the namespace only).
    pub(crate) fn identity() -> IdMaps {
        let line = format!("0 0 {HOST_ID_COUNT}\n");
        IdMaps { uid_map: line.clone(), gid_map: line, setgroups: "allow" }
    }

    /// Unprivileged caller: only its own uid and gid, seen inside as the sandbox's ids.
    pub(crate) fn for_caller(inside_uid: u32, inside_gid: u32, host_uid: u32, host_gid: u32) -> IdMaps {
        IdMaps {
            uid_map: format!("{inside_uid} {host_uid} 1\n"),
            gid_map: format!("{inside_gid} {host_gid} 1\n"),
            setgroups: "deny",
        }
    }

    /// Writes the maps of process `pid`; setgroups first, as gid_map requires.
    pub(crate) fn write(&self, pid: i32) -> Result<()> {
        for (file, text) in [("setgroups", self.setgroups), ("uid_map", &self.uid_map), ("gid_map", &self.gid_map)] {
            let path = PathBuf::from(format!("/proc/{pid}/{file}"));
            std::fs::write(&path, text).map_err(|e| match e.raw_os_error() {
                Some(errno) => Error::Setup {
                    step: Step::IdMap,
                    errno: nix::errno::Errno::from_raw(errno),
                    path: Some(path.clone()),
                },
                None => Error::io("write", &path, e),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_text() {
        let root = IdMaps::for_root();
        assert_eq!(root.uid_map, "0 1073741824 65536\n");
        assert_eq!(root.setgroups, "allow");
        let user = IdMaps::for_caller(60000, 60000, 1000, 100);
        assert_eq!(user.uid_map, "60000 1000 1\n");
        assert_eq!(user.gid_map, "60000 100 1\n");
        assert_eq!(user.setgroups, "deny");
    }
}
