//! The sandbox's first process, from `clone3` to the exec of the init: runs the plan,
//! changes nothing in it.
//!
//! It shares the caller's memory (`CLONE_VM`) and runs on a stack of its own, so: no
//! allocation, no locks, no `std::fs`, no panics, no thread-local storage (no libc; every
//! call goes through `sys.rs`'s raw wrappers), and nothing written but its own stack.
//! Every step returns `Result<(), Failure>`; the first failure is sent to the supervisor
//! as a fixed size message and the process exits. On success it execs the init binary,
//! which gives it an address space of its own and lets the caller's memory go.

use libc::{MNT_DETACH, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC};
use nix::errno::Errno;

use super::report::{Failure, Message};
use super::{ChildFds, Start};
use crate::error::Step;
use crate::plan::Plan;
use crate::proto;
use crate::rootfs::MountOp;
use crate::sys::{self, SysResult};

/// Where the child puts the init binary's fd before exec (after stdio and the report pipe).
const INIT_FD: i32 = proto::REPORT_FD + 1;

/// The entry point `clone3_on_stack` calls, with a pointer to the [`Start`]. Never returns.
pub(super) extern "C" fn entry(start: usize) -> ! {
    // SAFETY: the parent passes a pointer to a `Start` that it keeps alive and unchanged
    // until this process has exec'd or exited (`spawn::Child` owns it).
    let start = unsafe { &*(start as *const Start) };
    match setup(start) {
        Ok((plan, fds)) => exec_init(plan, &fds, start.warm.is_some_and(|w| w.parked)),
        Err(failure) => {
            Message::Failed(failure).send(start.fds.report_w);
            sys::exit(1)
        }
    }
}

/// The sequence, one line per step; the plan and fds to exec the init with (a warm
/// sandbox's come with its request).
fn setup(start: &Start) -> Result<(&Plan, ChildFds), Failure> {
    // SAFETY: the plan outlives the `Start` (`spawn::clone_sandbox`).
    let plan = unsafe { &*start.plan };
    let fds = &start.fds;
    // The caller's handlers are meaningless here; the parent blocked every signal around
    // the clone so none ran before this line.
    sys::reset_signals();
    close_inherited_fds(fds, [start.warm.map_or(fds.init, |w| w.ctl), start.netns])
        .map_err(|e| Failure::new(Step::CloseFds, e))?;
    // A network namespace made ahead (loopback up already), in place of one from clone3.
    if start.netns >= 0 {
        sys::setns(start.netns, libc::CLONE_NEWNET).map_err(|e| Failure::new(Step::Clone, e))?;
        sys::close(start.netns);
    }
    // A cgroup made meanwhile (`plan.join_late`) is joined after the mounts, below.
    let late = plan.join_late;
    if !late {
        join_cgroups(start, plan)?;
    }
    wait_for_go(fds, late)?;
    // Our own session: the caller's terminal can no longer signal the sandbox.
    sys::setsid().map_err(|e| Failure::new(Step::Setsid, e))?;
    sys::umask(0);
    if plan.init_becomes_root {
        become_root().map_err(|e| Failure::new(Step::InitIds, e))?;
    }
    // Die with the supervising thread (kept across the exec of the init).
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong).map_err(|e| Failure::new(Step::Sync, e))?;
    // Programs that talk to themselves over 127.0.0.1 work, as with Docker's `none`. Ahead
    // of a warm sandbox's wait: it costs a cold run about 0.07 ms, a warm one nothing.
    if start.netns < 0 {
        sys::loopback_up().map_err(|e| Failure::new(Step::Loopback, e))?;
    }
    let ahead = start.warm.map_or(plan.ops.len(), |w| w.split);
    if late {
        // Every mount but the switch of root, while the parent makes the cgroup; then its
        // second byte (the cgroup is made and limited) and the join, while the host's
        // cgroup files are still in sight.
        let pivot = plan.ops.iter().position(|op| matches!(op, MountOp::PivotRoot { .. })).unwrap_or(ahead);
        apply_ops(plan, 0..pivot)?;
        wait_for_go(fds, false)?;
        join_cgroups(start, plan)?;
        apply_ops(plan, pivot..ahead)?;
    } else {
        apply_ops(plan, 0..ahead)?;
    }
    let (plan, fds) = match start.warm {
        None => (plan, *fds),
        Some(warm) if warm.parked => {
            // All of its own plan, ahead: the init then waits for the request, on `ctl`
            // as its fd 0, with the report pipe standing in for the program's output.
            apply_ops(plan, warm.split..plan.ops.len())?;
            (plan, ChildFds { stdin: warm.ctl, stdout: fds.report_w, stderr: fds.report_w, ..*fds })
        }
        Some(warm) => {
            // A warm sandbox waits here, everything request-independent done.
            let [stdin, stdout, stderr] = receive_stdio(warm.ctl).map_err(|e| Failure::new(Step::Sync, e))?;
            let request = start.request.load(std::sync::atomic::Ordering::Acquire);
            // SAFETY: `Child::request` stored a plan that outlives this process's use of
            // it before sending the stdio that woke us; it is not null then.
            let plan = unsafe { &*request };
            apply_ops(plan, warm.split..plan.ops.len())?;
            (plan, ChildFds { stdin, stdout, stderr, ..*fds })
        }
    };
    sys::sethostname(&plan.hostname).map_err(|e| Failure::new(Step::Hostname, e))?;
    // A parked init sets its request's rlimits itself.
    let rlimits = if start.warm.is_some_and(|w| w.parked) { &[][..] } else { &plan.rlimits[..] };
    for r in rlimits {
        sys::setrlimit(r.resource, r.soft, r.hard).map_err(|e| Failure::new(Step::Rlimits, e))?;
    }
    let fds = match &plan.tty {
        Some(tty) => {
            // The terminal's master side goes to the supervisor over the socket that
            // stands for stdio until here (`stdio.rs`); the program gets the slave.
            let (master, slave) = sys::open_pty(tty.rows, tty.cols, tty.uid, tty.gid, super::MIN_FD)
                .map_err(|e| Failure::new(Step::Stdio, e))?;
            let sent = sys::send_fd(fds.stdin, master);
            sys::close(master);
            sent.map_err(|e| Failure::new(Step::Stdio, e))?;
            ChildFds { stdin: slave, stdout: slave, stderr: slave, ..fds }
        }
        None => fds,
    };
    if let Some(last) = plan.drop_bounding_set {
        drop_bounding_set(last).map_err(|e| Failure::new(Step::DropCaps, e))?;
    }
    Ok((plan, fds))
}

/// Runs the plan's mount ops in `range`; a failure names the op by its index.
fn apply_ops(plan: &Plan, range: std::ops::Range<usize>) -> Result<(), Failure> {
    for i in range {
        let op = &plan.ops[i];
        apply(op).map_err(|errno| Failure { step: op.step(), index: i as u16, errno })?;
    }
    Ok(())
}

/// Waits for a request's stdio on `ctl` (one byte with three fds, `SCM_RIGHTS`). End of
/// file means the pool let this sandbox go: leave quietly. The fds land on the lowest free
/// numbers, which may be below 5 when the caller runs with a standard stream closed; they
/// move up, so that `exec_init` moving fds into 0 to 4 cannot overwrite one it still needs.
fn receive_stdio(ctl: i32) -> SysResult<[i32; 3]> {
    let Some(mut fds) = sys::receive_fds(ctl)? else { sys::exit(0) };
    for fd in &mut fds {
        if *fd < super::MIN_FD {
            let high = sys::dup_above(*fd, super::MIN_FD)?;
            sys::close(*fd);
            *fd = high;
        }
    }
    Ok(fds)
}

/// Empties the capability bounding set (`PR_CAPBSET_DROP` for each, up to `last`).
fn drop_bounding_set(last: u32) -> SysResult<()> {
    for cap in 0..=last {
        match sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) {
            Ok(()) | Err(Errno::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Closes every fd inherited from the caller except the ones the plan hands over and
/// `also` (-1 for none). Another thread's pipes must not stay open here, or its
/// supervisor would never see EOF.
fn close_inherited_fds(fds: &ChildFds, also: [i32; 2]) -> SysResult<()> {
    let mut keep = [0; 8];
    keep[..6].copy_from_slice(&fds.all());
    keep[6..].copy_from_slice(&also);
    keep.sort_unstable();
    let mut next = 3u32;
    for fd in keep {
        if fd < 0 {
            continue;
        }
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
/// root of its new cgroup namespace. Notes its cpu time first: the cgroup counts from here.
fn join_cgroups(start: &Start, plan: &Plan) -> Result<(), Failure> {
    if plan.cgroup_join.is_empty() {
        return Ok(());
    }
    let cpu = crate::sys::raw::clock_ns(crate::sys::raw::CLOCK_PROCESS_CPUTIME_ID);
    start.joined_cpu.store(cpu, std::sync::atomic::Ordering::Release);
    for (i, tasks) in plan.cgroup_join.iter().enumerate() {
        sys::write_file(tasks, b"0").map_err(|errno| Failure { step: Step::CgroupJoin, index: i as u16, errno })?;
    }
    sys::unshare(libc::CLONE_NEWCGROUP).map_err(|e| Failure::new(Step::CgroupJoin, e))
}

/// Blocks until the parent has written the id maps (the first byte), or has made the
/// cgroup to join late (the second); `more` keeps the pipe open for that second one. End
/// of file means the parent gave up, so leave quietly.
fn wait_for_go(fds: &ChildFds, more: bool) -> Result<(), Failure> {
    let mut byte = [0u8; 1];
    match sys::read(fds.sync_r, &mut byte) {
        Ok(1) => {
            if !more {
                sys::close(fds.sync_r);
            }
            Ok(())
        }
        Ok(_) => sys::exit(0),
        Err(e) => Err(Failure::new(Step::Sync, e)),
    }
}

/// Execs the init binary, with the program's stdio at 0 to 2 and the report pipe at 3
/// (`proto.rs`), and no other fd; `parked`, with `argv[0]` alone and no environment, to
/// wait for its request (`fds.stdin` is then the pool's socket). Never returns.
fn exec_init(plan: &Plan, fds: &ChildFds, parked: bool) -> ! {
    let fail = |fd, errno| -> ! {
        Message::Failed(Failure::new(Step::ExecInit, errno)).send(fd);
        sys::exit(1)
    };
    // The parent put every fd above INIT_FD, so no dup below overwrites one still needed.
    let placed = sys::dup_to(fds.stdin, 0, false)
        .and_then(|()| sys::dup_to(fds.stdout, 1, false))
        .and_then(|()| sys::dup_to(fds.stderr, 2, false))
        .and_then(|()| sys::dup_to(fds.report_w, proto::REPORT_FD, false))
        .and_then(|()| sys::dup_to(fds.init, INIT_FD, true));
    if let Err(e) = placed {
        fail(fds.report_w, e);
    }
    if let Err(e) = sys::close_range(INIT_FD as u32 + 1, u32::MAX) {
        fail(proto::REPORT_FD, e);
    }
    // On this process's own stack: the only memory it may write.
    let argv0 = [plan.program.init_argv.pointers()[0], std::ptr::null()];
    let none = [std::ptr::null()];
    let errno = if parked {
        sys::execveat(INIT_FD, &argv0, &none)
    } else {
        sys::execveat(INIT_FD, plan.program.init_argv.pointers(), plan.program.init_envp.pointers())
    };
    fail(proto::REPORT_FD, errno)
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
        MountOp::WriteFile { path, data } => sys::replace_file(path, data),
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
        MountOp::Devpts { target } => sys::mount(
            Some(c"devpts"),
            target,
            Some(c"devpts"),
            MS_NOSUID | MS_NOEXEC,
            Some(c"newinstance,ptmxmode=0666,mode=0620"),
        ),
        MountOp::Bind { source, target, .. } => sys::mount(Some(source), target, None, MS_BIND | MS_REC, None),
        MountOp::Setattr { target, attrs } => sys::mount_setattr(target, *attrs),
        MountOp::Detach { target } => sys::umount2(target, MNT_DETACH),
        MountOp::Mask { source, target } => match sys::mount(Some(source), target, None, MS_BIND, None) {
            Err(Errno::ENOENT) => Ok(()),
            other => other,
        },
    }
}
