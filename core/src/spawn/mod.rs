//! Creating the sandbox: `clone3` into new namespaces, the child's setup, the init.
//!
//! The clone engine, one of the three layers with `unsafe` code (`docs/ARCHITECTURE.md`; its
//! system calls are `sys/`). A sandbox starts as a `clone3` with
//! `CLONE_VM`: its first process shares the caller's memory, on a stack of its own, so
//! the caller's page tables are never copied, however much memory it holds (a Python or
//! Node process: hundreds of megabytes). That process runs `child.rs` (the mounts), then
//! execs the init binary (`init/main.rs`, built by `build.rs`, carried in a sealed memfd:
//! `exe.rs`), which forks the program from a few pages of its own.
//!
//! Everything that runs between the clone and that exec lives in `child.rs` and must be
//! async-signal-safe and more: the caller may have many threads and shares its memory
//! with the child, so there is no allocation, no lock, no `std::fs`, no `format!`, no
//! panic and no thread-local storage (no libc); only `&CStr`, `RawFd` and integers taken
//! from the [`Plan`], ending in `execveat` or `exit`.
//!
//! # Safety
//!
//! The clone shares the caller's address space: [`clone_sandbox`] keeps the child's stack,
//! its `Start` and the plan alive and unchanged until the child has exec'd or been reaped
//! (the [`Child`] owns the first two; the caller, the plan), and the child's code
//! (`child.rs`) touches nothing else. The init binary (`init/main.rs`) is a program of its
//! own with no libc, whose `unsafe` is its raw system calls and its entry point.

mod child;
mod exe;
pub(crate) mod report;
mod stack;

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::error::{Error, Result, Step};
use crate::plan::Plan;
use crate::runtime::{Held, opening};
use crate::sys::{self, MIN_FD};

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
    /// The init binary's memfd (filled in by [`clone_sandbox`]).
    pub init: RawFd,
}

impl ChildFds {
    /// The program's stdio and the report pipe; the sync pipe and the init are filled in
    /// by `run::start` and [`clone_sandbox`].
    pub(crate) fn new(stdio: &crate::stdio::Stdio, report_w: &OwnedFd) -> ChildFds {
        ChildFds {
            sync_r: -1,
            report_w: report_w.as_raw_fd(),
            stdin: stdio.child_stdin.as_raw_fd(),
            stdout: stdio.child_stdout.as_raw_fd(),
            stderr: stdio.child_stderr.as_raw_fd(),
            init: -1,
        }
    }

    fn all(&self) -> [RawFd; 6] {
        [self.sync_r, self.report_w, self.stdin, self.stdout, self.stderr, self.init]
    }
}

/// Makes a sandbox warm (`pool.rs`): it runs the first `split` mount ops of its plan (the
/// rootfs, /proc, /dev: all that does not depend on a request), then waits on `ctl`, a
/// socket, for a request's stdio; the request's plan, which [`Child::request`] hands
/// over, gives the rest. A `parked` one goes further: it runs all of its own plan, execs
/// the init, and the init waits for the request ([`Child::request_parked`]), so only the
/// program's fork and exec are left for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Warm {
    pub split: usize,
    pub ctl: RawFd,
    pub parked: bool,
}

/// What the child starts from: read through a pointer, so it lives in the [`Child`].
struct Start {
    plan: *const Plan,
    fds: ChildFds,
    /// A network namespace made ahead (`network/spare.rs`) to join instead of a new one,
    /// or -1.
    netns: RawFd,
    warm: Option<Warm>,
    /// The request's plan, for a warm sandbox: stored before its stdio is sent.
    request: std::sync::atomic::AtomicPtr<Plan>,
    /// The child's cpu time (ns) when it moved itself into its v1 cgroups: what the
    /// cgroup did not count of the setup.
    joined_cpu: std::sync::atomic::AtomicU64,
}

/// The sandbox's init as the parent sees it. Dropping it kills and reaps the sandbox, so a
/// panic or an early return never leaves it running.
#[derive(Debug)]
pub(crate) struct Child {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    reaped: bool,
    /// The child's stack and start, which it may use until it execs the init: dropped
    /// (after the kill and reap in `drop`) only once it cannot.
    _stack: stack::Stack,
    start: Box<Start>,
    owner: crate::runtime::Owner,
    /// The sandbox's mount namespace, held so that the init's exit does not unmount its
    /// tree (an expedited RCU grace period) before the init can be reaped; released on
    /// the background thread after the reap (`runtime::release_later`).
    mnt_ns: Option<Held>,
}

// SAFETY: `Start` holds a pointer to the plan only for the child's use; the parent never
// reads through it, so a `Child` may move to another thread like any other value.
unsafe impl Send for Child {}

impl std::fmt::Debug for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Start").field("fds", &self.fds).finish_non_exhaustive()
    }
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

    /// Gives the sandbox the ordinary scheduling policy (`SCHED_OTHER`, nice 0), which a
    /// warm one made by an idle-priority thread did not have (see [`sys::idle_priority`]).
    pub(crate) fn normal_priority(&self) -> Result<()> {
        if !sys::set_scheduler(self.pid, libc::SCHED_OTHER) {
            return Err(Error::setup(Step::Sync, Errno::last()));
        }
        Ok(())
    }

    /// Hands a warm sandbox its request: `plan`, which must outlive this `Child` and share
    /// the first `split` mount ops with the sandbox's own plan, and the program's stdio,
    /// sent over `ctl` (the sandbox's cue to go on).
    pub(crate) fn request(&self, plan: &Plan, ctl: &OwnedFd, stdio: [RawFd; 3]) -> Result<()> {
        use std::sync::atomic::Ordering;
        self.start.request.store(plan as *const Plan as *mut Plan, Ordering::Release);
        let fds = [nix::sys::socket::ControlMessage::ScmRights(&stdio)];
        let byte = [std::io::IoSlice::new(&[1])];
        nix::sys::socket::sendmsg::<()>(ctl.as_raw_fd(), &byte, &fds, nix::sys::socket::MsgFlags::MSG_NOSIGNAL, None)
            .map(drop)
            .map_err(|e| Error::setup(Step::Sync, e))
    }

    /// Hands a parked sandbox (`Warm::parked`) its request: the program's stdio and a
    /// memfd with `plan`'s init argv, environment and rlimits (`proto.rs` lays it out),
    /// sent over `ctl`. The plan must match the sandbox's own in everything else (mounts,
    /// hostname, no terminal), which the pool checks.
    pub(crate) fn request_parked(&self, plan: &Plan, ctl: &OwnedFd, stdio: [RawFd; 3]) -> Result<()> {
        let block = plan.parked_block();
        let memfd = exe::filled_memfd(c"isolette-request", 0, &block).map_err(|e| Error::setup(Step::Sync, e))?;
        let fds = [stdio[0], stdio[1], stdio[2], memfd.as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        let len = (block.len() as u64).to_ne_bytes();
        let data = [std::io::IoSlice::new(&len)];
        nix::sys::socket::sendmsg::<()>(ctl.as_raw_fd(), &data, &cmsg, nix::sys::socket::MsgFlags::MSG_NOSIGNAL, None)
            .map(drop)
            .map_err(|e| Error::setup(Step::Sync, e))
    }

    /// The sandbox's cpu time (ns) before it joined its v1 cgroups (0 on v2, where it is
    /// cloned into its cgroup): the part of the init's setup cpu the cgroup did not count.
    pub(crate) fn joined_cpu(&self) -> u64 {
        self.start.joined_cpu.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Readable once the init has exited.
    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.pidfd.as_fd()
    }

    /// Sends `signal` to the init (which passes the usual ones on to the program).
    pub(crate) fn signal(&self, signal: i32) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), signal);
    }

    /// SIGKILLs the init, which takes every process of the sandbox down with it.
    pub(crate) fn kill(&self) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
    }

    /// Waits for the init to exit (after which the namespace is empty) and reaps it.
    pub(crate) fn reap(&mut self) -> Result<Reaped> {
        let (_, _, usage) = sys::wait4(self.pid, libc::__WALL).map_err(|e| Error::setup(Step::Clone, e))?;
        self.reaped = true;
        if let Some(fd) = self.mnt_ns.take() {
            crate::runtime::release_later(fd);
        }
        Ok(Reaped { usage })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.owner.is_here() {
            // A fork's copy: the sandbox is the parent's to end, and its stack and start
            // may still be in use there (in this process they are copies: let them be).
            std::mem::forget(std::mem::replace(&mut self._stack, stack::Stack::none()));
            // The fork handler closed this copy's fd already; its number may be another's now.
            std::mem::forget(self.mnt_ns.take());
            return;
        }
        if !self.reaped {
            self.kill();
            let _ = self.reap();
        }
    }
}

/// `CLONE_INTO_CGROUP`: the child starts in the cgroup whose directory fd is `args.cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Clones the sandbox's first process into its new namespaces (and straight into
/// `cgroup_fd`, a v2 cgroup directory, when given), sharing the caller's memory until it
/// execs the init; it waits for [`release`]. `plan` must outlive the returned [`Child`].
/// Every fd in `fds` must be at least [`MIN_FD`]. With `netns`, a network namespace
/// made ahead, the sandbox joins that one instead of making its own.
pub(crate) fn clone_sandbox(
    plan: &Plan,
    fds: &ChildFds,
    cgroup_fd: Option<RawFd>,
    warm: Option<Warm>,
    netns: Option<&Held>,
) -> Result<Child> {
    let init = exe::init_fd()?;
    let start = Box::new(Start {
        plan,
        fds: ChildFds { init, ..*fds },
        netns: netns.map_or(-1, Held::as_raw_fd),
        warm,
        request: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
        joined_cpu: std::sync::atomic::AtomicU64::new(0),
    });
    debug_assert!(warm.is_none_or(|w| w.ctl >= MIN_FD));
    debug_assert!(start.netns < 0 || start.netns >= MIN_FD);
    let ns_flags = if netns.is_some() { plan.clone_flags & !(libc::CLONE_NEWNET as u64) } else { plan.clone_flags };
    debug_assert!(start.fds.all().iter().all(|&fd| fd >= MIN_FD), "{:?}", start.fds);
    let stack = stack::Stack::take().map_err(|e| Error::setup(Step::Clone, e))?;
    let mut pidfd: RawFd = -1;
    let mut args = sys::CloneArgs {
        flags: ns_flags | libc::CLONE_VM as u64 | cgroup_fd.map_or(0, |_| CLONE_INTO_CGROUP),
        cgroup: cgroup_fd.map_or(0, |fd| fd as u64),
        pidfd: &mut pidfd as *mut RawFd as u64,
        // No exit signal: the caller's SIGCHLD handler and waitpid(-1) never see the sandbox.
        exit_signal: 0,
        stack: stack.base() as u64,
        stack_size: stack.size() as u64,
        ..Default::default()
    };
    // No handler of the caller may run in the child before it resets them.
    let old_mask = sys::block_all_signals();
    // SAFETY: `stack` is a mapped stack for the child alone; `child::entry` follows the
    // CLONE_VM rules (no TLS, no allocation, no locks, ends in execveat or exit); `start`
    // and the plan it points to stay alive and unchanged until after the child is reaped
    // (the `Child` owns the stack and `start`; the caller keeps the plan).
    let result = unsafe { sys::clone3_on_stack(&mut args, child::entry, &*start as *const Start as usize) };
    sys::set_signal_mask(&old_mask);
    let pid = result.map_err(|e| Error::from_clone(e, nix::unistd::geteuid().is_root()))?;
    // SAFETY: clone3 succeeded with CLONE_PIDFD, so `pidfd` is a new fd that we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // Best effort (O_CLOEXEC by std): without it the init's exit unmounts, as it would anyway.
    let path = format!("/proc/{pid}/ns/mnt");
    let mnt_ns = crate::runtime::running()
        .then(|| opening(|| std::fs::File::open(&path).ok().and_then(|f| Held::new(f.into()))))
        .flatten();
    Ok(Child { pid, pidfd, reaped: false, _stack: stack, start, owner: crate::runtime::Owner::here(), mnt_ns })
}

/// Lets the child go on past its sync point.
pub(crate) fn release(sync_w: &OwnedFd) -> Result<()> {
    sys::write_all(sync_w.as_raw_fd(), &[1]).map_err(|e| Error::setup(Step::Sync, e))
}
