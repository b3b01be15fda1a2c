//! The sandbox's init (pid 1 of its pid namespace): forks the program, reaps, reports.
//!
//! Async-signal-safe only, like `child.rs`. The program is a child of the init rather than
//! the init itself so it keeps normal signal semantics (pid 1 ignores signals it has no
//! handler for). When the program ends the init reports its wait status and exits, and
//! the kernel kills whatever else is left in the namespace.

use nix::errno::Errno;

use super::ChildFds;
use super::report::{self, Failure, Message};
use super::sys::{self, SysResult};
use crate::error::Step;
use crate::plan::Plan;

pub(super) fn run(plan: &Plan, fds: &ChildFds) -> ! {
    let fail = |step, errno| -> ! {
        Message::Failed(Failure::new(step, errno)).send(fds.report_w);
        sys::exit(1)
    };
    // The program reports its own setup failure here; its copy closes on a successful exec.
    let [err_r, err_w] = sys::pipe_cloexec().unwrap_or_else(|e| fail(Step::ForkProgram, e));
    // SAFETY: the child runs `program`, which is async-signal-safe and ends in execve or _exit.
    let pid = match unsafe { sys::fork() } {
        Ok(0) => program(plan, fds, err_w),
        Ok(pid) => pid,
        Err(e) => fail(Step::ForkProgram, e),
    };
    for fd in [err_w, fds.stdin, fds.stdout, fds.stderr] {
        sys::close(fd);
    }
    // The program sends the time it reached execve, then either a failure or, by closing
    // the pipe in a successful exec, nothing more.
    let mut exec_at = 0;
    loop {
        let mut buf = [0u8; report::SIZE];
        match sys::read(err_r, &mut buf) {
            Ok(0) => break,
            Ok(_) => match Message::from_bytes(buf) {
                Some(Message::Started(at, _)) => exec_at = at,
                _ => {
                    let _ = sys::write_all(fds.report_w, &buf);
                    sys::exit(1)
                }
            },
            Err(e) => fail(Step::ForkProgram, e),
        }
    }
    Message::Started(exec_at, sys::process_cpu_ns()).send(fds.report_w);
    sys::close(err_r);
    loop {
        match sys::wait4(-1, libc::__WALL) {
            Ok((p, status, _)) if p == pid => {
                Message::Exited(status, sys::monotonic_ns()).send(fds.report_w);
                sys::exit(0)
            }
            Ok(_) => {}
            Err(_) => sys::exit(1),
        }
    }
}

/// The program's last steps before `execve`. Never returns.
fn program(plan: &Plan, fds: &ChildFds, err_w: i32) -> ! {
    if let Err(failure) = prepare(plan, fds, err_w) {
        Message::Failed(failure).send(err_w);
        sys::exit(126)
    }
    // Try each `PATH` candidate as execvp(3) does: skip what is missing, remember EACCES.
    let p = &plan.program;
    let mut denied = None;
    for (i, path) in p.candidates.iter().enumerate() {
        match sys::execve(path, &p.argv, &p.envp) {
            Errno::ENOENT | Errno::ENOTDIR => {}
            Errno::EACCES => denied = denied.or(Some(i)),
            errno => exec_failed(err_w, i, errno),
        }
    }
    match denied {
        Some(i) => exec_failed(err_w, i, Errno::EACCES),
        None => exec_failed(err_w, 0, Errno::ENOENT),
    }
}

fn exec_failed(err_w: i32, index: usize, errno: Errno) -> ! {
    Message::Failed(Failure { step: Step::Exec, index: index as u16, errno }).send(err_w);
    sys::exit(127)
}

fn prepare(plan: &Plan, fds: &ChildFds, err_w: i32) -> Result<(), Failure> {
    let p = &plan.program;
    sys::setsid().map_err(|e| Failure::new(Step::Setsid, e))?;
    stdio(fds).map_err(|e| Failure::new(Step::Stdio, e))?;
    // The program sees exactly stdin, stdout and stderr (and, until exec, the report pipe).
    sys::close_range(3, err_w as u32 - 1)
        .and_then(|()| sys::close_range(err_w as u32 + 1, u32::MAX))
        .map_err(|e| Failure::new(Step::CloseFds, e))?;
    sys::chdir(&p.workdir).map_err(|e| Failure::new(Step::Workdir, e))?;
    // The bounding set first: dropping it needs CAP_SETPCAP, which the id change removes.
    drop_bounding_set(p.cap_last_cap).map_err(|e| Failure::new(Step::DropCaps, e))?;
    set_ids(p.uid, p.gid, p.setgroups).map_err(|e| Failure::new(Step::SetIds, e))?;
    clear_capabilities().map_err(|e| Failure::new(Step::DropCaps, e))?;
    sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| Failure::new(Step::NoNewPrivs, e))?;
    sys::umask(0o022);
    // The run's wall clock starts here, just before the exec (as `time(1)` counts it); the
    // filter below may forbid `write`, so this goes first.
    Message::Started(sys::monotonic_ns(), 0).send(err_w);
    // Last, as bubblewrap does: from here on every call the program makes is filtered.
    if let Some(filter) = &p.seccomp {
        sys::seccomp_set_filter(filter).map_err(|e| Failure::new(Step::Seccomp, e))?;
    }
    Ok(())
}

fn stdio(fds: &ChildFds) -> SysResult<()> {
    sys::dup2(fds.stdin, 0)?;
    sys::dup2(fds.stdout, 1)?;
    sys::dup2(fds.stderr, 2)
}

fn drop_bounding_set(last: u32) -> SysResult<()> {
    for cap in 0..=last {
        match sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) {
            Ok(()) | Err(Errno::EINVAL) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn set_ids(uid: u32, gid: u32, setgroups: bool) -> SysResult<()> {
    if setgroups {
        sys::setgroups_empty()?;
    }
    sys::setresgid(gid)?;
    sys::setresuid(uid)
}

fn clear_capabilities() -> SysResult<()> {
    sys::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong)?;
    sys::capset_empty()
}
