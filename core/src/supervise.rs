//! The supervisor: one poll loop on the caller's thread over the init's pidfd, its report
//! pipe and the capture pipes, with the wall-time deadline as the poll timeout.
//!
//! It owns time and enforcement (wall time, output cap); it does no setup and gives no
//! verdict (`outcome.rs` does). To stop a run it kills the init, which takes every process
//! of the pid namespace with it.

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::outcome::{Ending, Enforced};
use crate::spawn::report::{self, Failure, Message};
use crate::spawn::{Child, Reaped, monotonic_ns};

/// What the supervisor saw of one run.
#[derive(Debug)]
pub(crate) struct Watched {
    pub ending: Ending,
    pub enforced: Option<Enforced>,
    pub wall_time: Duration,
    /// When the program's `execve` was (`CLOCK_MONOTONIC`, ns), as the init reported.
    pub started_at: Option<u64>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Whether the cap dropped bytes of stdout and of stderr.
    pub truncated: [bool; 2],
    pub reaped: Reaped,
    /// Cpu time the init used for the setup, which the cgroup counts too: to subtract.
    pub cpu_base: Duration,
}

/// Limits the supervisor enforces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Enforce {
    pub wall_time: Duration,
    /// Enforced only with a cgroup to read the whole tree's usage from.
    pub cpu_time: Option<Duration>,
    pub output_limit: u64,
}

/// Cpus this process may run on (its affinity), read once; it only paces the cpu-time
/// checks. (`available_parallelism` would read cgroup files too, on every call.)
fn cores() -> u32 {
    static CORES: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0));
        set.map_or(1, |set| (0..nix::sched::CpuSet::count()).filter(|&i| set.is_set(i).unwrap_or(false)).count()).max(1)
            as u32
    })
}

/// A captured stream: its read end while open, and what it gave.
struct Capture {
    fd: Option<OwnedFd>,
    data: Vec<u8>,
    /// Bytes were read past the cap and dropped.
    truncated: bool,
}

/// Runs the loop until the init is reaped and every pipe is at EOF. A setup failure
/// reported by the child comes back as `Err(Ok(failure))` after the sandbox is gone.
pub(crate) fn watch(
    child: &mut Child,
    cgroup: Option<&dyn Cgroup>,
    report: OwnedFd,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    mut cancel: Option<OwnedFd>,
    limits: Enforce,
) -> Result<std::result::Result<Watched, Failure>> {
    let released = Instant::now();
    // Until the program has started, the deadline also bounds the setup.
    let mut deadline = released + limits.wall_time;
    // Wall time runs on CLOCK_MONOTONIC readings: the init's for start and end, ours when
    // the supervisor ends the run.
    let mut started: Option<u64> = None;
    let mut ended: Option<u64> = None;
    let mut status: Option<i32> = None;
    let mut enforced = None;
    let mut killed = false;
    let mut failure = None;
    let mut report = Some(report);
    let capture = |fd| Capture { fd, data: Vec::new(), truncated: false };
    let mut out = [capture(stdout), capture(stderr)];
    let mut reaped = None;
    let mut buf = vec![0u8; 64 << 10];
    // Cpu time is polled: next check after the time the remaining budget would take with
    // every core busy, so checks get denser as the limit nears (overshoot about 1 ms).
    let cpu_limit = cgroup.and(limits.cpu_time);
    let cores = cores();
    let mut cpu_base = Duration::ZERO;
    let mut next_cpu_check: Option<Instant> = None;

    loop {
        if reaped.is_some() && report.is_none() && out.iter().all(|c| c.fd.is_none()) {
            break;
        }
        let timeout = if killed || reaped.is_some() {
            PollTimeout::NONE
        } else {
            let wake = next_cpu_check.map_or(deadline, |c| c.min(deadline));
            let left = wake.saturating_duration_since(Instant::now());
            // Round up, so the deadline has really passed when the poll returns.
            let ms = left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32;
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        };
        // Poll slots: 0 = pidfd, 1 = report, 2 and 3 = captures, 4 = cancel; closed ones are
        // skipped.
        let mut slots: Vec<usize> = Vec::with_capacity(5);
        let mut fds: Vec<PollFd> = Vec::with_capacity(5);
        if reaped.is_none() {
            slots.push(0);
            fds.push(PollFd::new(child.pidfd(), PollFlags::POLLIN));
        }
        if let Some(fd) = &report {
            slots.push(1);
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        for (i, c) in out.iter().enumerate() {
            if let Some(fd) = &c.fd {
                slots.push(2 + i);
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
        }
        if let Some(fd) = &cancel {
            slots.push(4);
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::io("poll", "sandbox pipes", e.into())),
        }
        let ready: Vec<usize> =
            slots.iter().zip(&fds).filter(|(_, p)| p.any().unwrap_or(false)).map(|(i, _)| *i).collect();
        drop(fds);

        for slot in ready {
            match slot {
                0 => {
                    reaped = Some(child.reap()?);
                    ended.get_or_insert_with(monotonic_ns);
                }
                1 => {
                    let fd = report.as_ref().expect("polled");
                    let mut msg = [0u8; report::SIZE];
                    match nix::unistd::read(fd, &mut msg) {
                        Ok(report::SIZE) => match Message::from_bytes(msg) {
                            Some(Message::Started(at, setup_cpu)) => {
                                let now = Instant::now();
                                started = Some(at);
                                // Counted from the exec itself, however late we read this.
                                let since_exec = Duration::from_nanos(monotonic_ns().saturating_sub(at));
                                deadline = now + limits.wall_time.saturating_sub(since_exec);
                                // The cgroup counted the init's setup too: not the program's.
                                cpu_base = Duration::from_nanos(setup_cpu);
                                next_cpu_check = cpu_limit.map(|_| now);
                            }
                            Some(Message::Exited(s, at)) => {
                                status = Some(s);
                                ended = Some(at);
                            }
                            Some(Message::Failed(f)) => {
                                failure.get_or_insert(f);
                                child.kill();
                                killed = true;
                            }
                            None => report = None,
                        },
                        Ok(_) | Err(_) => report = None,
                    }
                }
                4 => {
                    // Cancelled (or the handle is gone): stop the sandbox now, with the
                    // figures so far. A limit already enforced keeps its verdict.
                    cancel = None;
                    if !killed && reaped.is_none() {
                        enforced.get_or_insert(Enforced::Cancelled);
                        ended.get_or_insert_with(monotonic_ns);
                        child.kill();
                        killed = true;
                    }
                }
                _ => {
                    let total: usize = out.iter().map(|c| c.data.len()).sum();
                    let capture = &mut out[slot - 2];
                    let fd = capture.fd.as_ref().expect("polled");
                    match nix::unistd::read(fd, &mut buf) {
                        Ok(0) => capture.fd = None,
                        Ok(n) => {
                            let room = (limits.output_limit as usize).saturating_sub(total);
                            capture.data.extend_from_slice(&buf[..n.min(room)]);
                            capture.truncated |= n > room;
                            if n > room && enforced.is_none() && !killed {
                                enforced = Some(Enforced::Output);
                                ended.get_or_insert_with(monotonic_ns);
                                child.kill();
                                killed = true;
                            }
                        }
                        Err(Errno::EAGAIN | Errno::EINTR) => {}
                        Err(_) => capture.fd = None,
                    }
                }
            }
        }
        if let (Some(limit), Some(cg), Some(at)) = (cpu_limit, cgroup, next_cpu_check)
            && !killed
            && reaped.is_none()
            && Instant::now() >= at
        {
            let used = cg.cpu_usage()?.saturating_sub(cpu_base);
            if used >= limit {
                enforced = Some(Enforced::CpuTime);
                ended.get_or_insert_with(monotonic_ns);
                child.kill();
                killed = true;
            } else {
                let step = ((limit - used) / cores).max(Duration::from_millis(1));
                next_cpu_check = Some(Instant::now() + step);
            }
        }
        if !killed && reaped.is_none() && Instant::now() >= deadline {
            enforced = Some(Enforced::WallTime);
            ended.get_or_insert_with(monotonic_ns);
            child.kill();
            killed = true;
        }
    }

    if let Some(f) = failure {
        return Ok(Err(f));
    }
    let reaped = reaped.expect("loop ends after the reap");
    let ending = match status {
        Some(s) if libc::WIFEXITED(s) => Ending::Exited(libc::WEXITSTATUS(s)),
        Some(s) if libc::WIFSIGNALED(s) => Ending::Signaled(libc::WTERMSIG(s)),
        _ => Ending::Killed,
    };
    let wall_time = match (started, ended) {
        (Some(s), Some(e)) => Duration::from_nanos(e.saturating_sub(s)),
        _ => Duration::ZERO,
    };
    let truncated = [out[0].truncated, out[1].truncated];
    let [stdout, stderr] = out.map(|c| c.data);
    Ok(Ok(Watched { ending, enforced, wall_time, started_at: started, stdout, stderr, truncated, reaped, cpu_base }))
}
