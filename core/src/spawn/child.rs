//! The child's setup sequence, from `clone3` to the init: runs the plan, changes nothing in it.
//!
//! Async-signal-safe only: no allocation, no locks, no `std::fs`, no panics. Every step
//! returns `Result<(), Failure>`; the first failure is sent to the supervisor as a fixed
//! size message and the child exits.

use libc::{MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC};
use nix::errno::Errno;

use super::report::{Failure, Message};
use super::sys::{self, SysResult};
use super::{ChildFds, init};
use crate::error::Step;
use crate::plan::Plan;
use crate::rootfs::MountOp;

/// Runs the setup sequence, then becomes the sandbox's init. Never returns.
pub(super) fn run(plan: &Plan, fds: &ChildFds) -> ! {
    match setup(plan, fds) {
        Ok(()) => init::run(plan, fds),
        Err(failure) => {
            Message::Failed(failure).send(fds.report_w);
            sys::exit(1)
        }
    }
}

/// The sequence, one line per step.
fn setup(plan: &Plan, fds: &ChildFds) -> Result<(), Failure> {
    // The caller's handlers are meaningless here; the parent blocked every signal around
    // the clone so none ran before this line.
    sys::reset_signals();
    close_inherited_fds(fds).map_err(|e| Failure::new(Step::CloseFds, e))?;
    join_cgroups(plan)?;
    wait_for_go(fds)?;
    // Our own session: the caller's terminal can no longer signal the sandbox.
    sys::setsid().map_err(|e| Failure::new(Step::Setsid, e))?;
    sys::umask(0);
    if plan.init_becomes_root {
        become_root().map_err(|e| Failure::new(Step::InitIds, e))?;
    }
    // After the id change, which resets both (prctl(2)).
    hide_caller(plan).map_err(|e| Failure::new(Step::Sync, e))?;
    // Die with the supervising thread.
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong).map_err(|e| Failure::new(Step::Sync, e))?;
    for (i, op) in plan.ops.iter().enumerate() {
        apply(op).map_err(|errno| Failure { step: op.step(), index: i as u16, errno })?;
    }
    sys::sethostname(&plan.hostname).map_err(|e| Failure::new(Step::Hostname, e))?;
    for r in &plan.rlimits {
        sys::setrlimit(r.resource, r.soft, r.hard).map_err(|e| Failure::new(Step::Rlimits, e))?;
    }
    Ok(())
}

/// Closes every fd inherited from the caller except the ones the plan hands over.
/// Another thread's pipes must not stay open here, or its supervisor would never see EOF.
fn close_inherited_fds(fds: &ChildFds) -> SysResult<()> {
    let mut keep = fds.all();
    keep.sort_unstable();
    let mut next = 3u32;
    for fd in keep {
        let fd = fd as u32;
        if fd >= next {
            if fd > next {
                sys::close_range(next, fd - 1)?;
            }
            next = fd + 1;
        }
    }
    sys::close_range(next, u32::MAX)
}

/// Moves this process into its v1 cgroups (see `Cgroup::join_files`), then makes them the
/// root of its new cgroup namespace.
fn join_cgroups(plan: &Plan) -> Result<(), Failure> {
    if plan.cgroup_join.is_empty() {
        return Ok(());
    }
    for (i, tasks) in plan.cgroup_join.iter().enumerate() {
        sys::write_file(tasks, b"0").map_err(|errno| Failure { step: Step::CgroupJoin, index: i as u16, errno })?;
    }
    sys::unshare(libc::CLONE_NEWCGROUP).map_err(|e| Failure::new(Step::CgroupJoin, e))
}

/// Blocks until the parent has written the id maps (and joined cgroups); EOF means the
/// parent gave up, so leave quietly.
fn wait_for_go(fds: &ChildFds) -> Result<(), Failure> {
    let mut byte = [0u8; 1];
    match sys::read(fds.sync_r, &mut byte) {
        Ok(1) => {
            sys::close(fds.sync_r);
            Ok(())
        }
        Ok(_) => sys::exit(0),
        Err(e) => Err(Failure::new(Step::Sync, e)),
    }
}

/// Keeps the caller's secrets out of the sandbox: the init's copy of the caller's argv and
/// environment is zeroed (`/proc/1/cmdline` is world-readable), and the init is made
/// non-dumpable, so a program running with the same uid can neither read `/proc/1/environ`
/// or `/proc/1/mem` nor ptrace it.
fn hide_caller(plan: &Plan) -> SysResult<()> {
    for (start, end) in plan.caller_strings {
        // SAFETY: the ranges come from this process's own /proc/self/stat (arg and env
        // strings on the initial stack, writable) and nothing in the child reads them.
        unsafe { sys::zero_memory(start, end) };
    }
    sys::prctl(libc::PR_SET_NAME, c"isolette-init".as_ptr() as libc::c_ulong)?;
    sys::prctl(libc::PR_SET_DUMPABLE, 0)
}

fn become_root() -> SysResult<()> {
    sys::setresgid(0)?;
    sys::setresuid(0)
}

fn apply(op: &MountOp) -> SysResult<()> {
    match op {
        MountOp::MakePrivate { target } => sys::mount(None, target, None, MS_REC | MS_PRIVATE, None),
        MountOp::Tmpfs { target, data } => {
            sys::mount(Some(c"tmpfs"), target, Some(c"tmpfs"), MS_NOSUID | MS_NODEV, Some(data))
        }
        MountOp::Mkdir { path, mode, must_create } => match sys::mkdir(path, *mode) {
            Err(Errno::EEXIST) if !must_create => Ok(()),
            other => other,
        },
        MountOp::Touch { path } => sys::touch(path, 0o644),
        MountOp::Symlink { target, link } => sys::symlink(target, link),
        MountOp::Chdir { path } => sys::chdir(path),
        MountOp::PivotRoot { new_root, put_old } => sys::pivot_root(new_root, put_old),
        MountOp::Overlay { target, data } => {
            sys::mount(Some(c"overlay"), target, Some(c"overlay"), MS_NODEV, Some(data))
        }
        MountOp::Proc { target } => {
            sys::mount(Some(c"proc"), target, Some(c"proc"), MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        }
        MountOp::Sysfs { target } => {
            sys::mount(Some(c"sysfs"), target, Some(c"sysfs"), MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
        }
        MountOp::Bind { source, target, .. } => sys::mount(Some(source), target, None, MS_BIND | MS_REC, None),
        MountOp::Setattr { target, attrs } => sys::mount_setattr(target, *attrs),
        MountOp::Detach { target } => sys::umount2(target, MNT_DETACH),
        MountOp::Mask { source, target } => match sys::mount(Some(source), target, None, MS_BIND, None) {
            Err(Errno::ENOENT) => Ok(()),
            other => other,
        },
    }
}
