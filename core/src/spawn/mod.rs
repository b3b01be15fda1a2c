//! Creating the sandbox: `clone3` into new namespaces, the child's setup, the init.
//!
//! This is the only module with `unsafe` code. Everything that runs after the clone lives
//! in `child.rs` and `init.rs` and must be async-signal-safe: the caller may be a Python
//! or Node process with many threads, and the child is a copy of just one of them, so a
//! lock held by another thread stays held forever. Between clone and exec there is no
//! allocation, no lock, no `std::fs`, no `format!`, no panic; only `&CStr`, `RawFd` and
//! integers taken from the [`Plan`], ending in `execve` or `_exit`.

mod child;
mod init;
pub(crate) mod report;
mod sys;

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub(crate) use sys::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, monotonic_ns};

use crate::error::{Error, Result, Step};
use crate::plan::Plan;

/// The fds the child keeps, by number; everything else it closes first thing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildFds {
    /// Read end of the sync pipe: one byte from the parent means "go".
    pub sync_r: RawFd,
    /// Write end of the report pipe.
    pub report_w: RawFd,
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
}

impl ChildFds {
    fn all(&self) -> [RawFd; 5] {
        [self.sync_r, self.report_w, self.stdin, self.stdout, self.stderr]
    }
}

/// The sandbox's init as the parent sees it. Dropping it kills and reaps the sandbox, so a
/// panic or an early return never leaves it running.
#[derive(Debug)]
pub(crate) struct Child {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    reaped: bool,
}

/// The resources the init and the whole tree it reaped used.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reaped {
    pub usage: libc::rusage,
}

impl Child {
    pub(crate) fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Readable once the init has exited.
    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.pidfd.as_fd()
    }

    /// SIGKILLs the init, which takes every process of the sandbox down with it.
    pub(crate) fn kill(&self) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
    }

    /// Waits for the init to exit (after which the namespace is empty) and reaps it.
    pub(crate) fn reap(&mut self) -> Result<Reaped> {
        let (_, _, usage) = sys::wait4(self.pid, libc::__WALL).map_err(|e| Error::setup(Step::Clone, e))?;
        self.reaped = true;
        Ok(Reaped { usage })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = self.reap();
        }
    }
}

/// `CLONE_INTO_CGROUP`: the child starts in the cgroup whose directory fd is `args.cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Clones the sandbox's init into its new namespaces (and straight into `cgroup_fd`, a v2
/// cgroup directory, when given); it waits for [`release`].
pub(crate) fn clone_sandbox(plan: &Plan, fds: &ChildFds, cgroup_fd: Option<RawFd>) -> Result<Child> {
    let mut pidfd: RawFd = -1;
    let mut args = sys::CloneArgs {
        flags: plan.clone_flags | cgroup_fd.map_or(0, |_| CLONE_INTO_CGROUP),
        cgroup: cgroup_fd.map_or(0, |fd| fd as u64),
        pidfd: &mut pidfd as *mut RawFd as u64,
        // No exit signal: the caller's SIGCHLD handler and waitpid(-1) never see the sandbox.
        exit_signal: 0,
        ..Default::default()
    };
    // No handler of the caller may run in the child before it resets them.
    let old_mask = sys::block_all_signals();
    // SAFETY: the child runs only `child::run`, which is async-signal-safe and ends in
    // execve or _exit; it reads the plan and fds, which the copy of memory holds.
    let result = unsafe { sys::clone3(&mut args) };
    if let Ok(0) = result {
        child::run(plan, fds);
    }
    sys::set_signal_mask(&old_mask);
    let pid = result.map_err(|e| Error::from_clone(e, nix::unistd::geteuid().is_root()))?;
    // SAFETY: clone3 succeeded with CLONE_PIDFD, so `pidfd` is a new fd that we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    Ok(Child { pid, pidfd, reaped: false })
}

/// Registers `f` to run at normal process exit (`atexit(3)`).
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function that stays valid for the life of the process.
    unsafe { libc::atexit(f) };
}

/// Lets the child go on past its sync point.
pub(crate) fn release(sync_w: OwnedFd) -> Result<()> {
    sys::write_all(sync_w.as_raw_fd(), &[1]).map_err(|e| Error::setup(Step::Sync, e))
}
