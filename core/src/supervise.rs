//! The supervisor: one poll loop on the caller's thread over the init's pidfd, its report
//! pipe and the capture pipes, with the wall-time deadline as the poll timeout.
//!
//! It owns time and enforcement (wall time, output cap); it does no setup and gives no
//! verdict (`outcome.rs` does). To stop a run it kills the init, which takes every process
//! of the pid namespace with it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::cgroup::Cgroup;
use crate::error::{Error, Result};
use crate::outcome::{Ending, Enforced};
use crate::spawn::report::{self, Failure, Message};
use crate::spawn::{Child, Reaped};
use crate::sys::monotonic_ns;

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

/// What the supervisor reads and writes: the report pipe, the capture pipes, the relays
/// to the caller, and the cancel pipe.
pub(crate) struct Pipes {
    pub report: OwnedFd,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    pub relays: [Option<OwnedFd>; 2],
    pub cancel: Option<OwnedFd>,
    /// Signal numbers, one byte each, to pass on to the program (`Running::signal`).
    pub signals: Option<OwnedFd>,
    pub tty: Option<TtyInput>,
}

/// What the supervisor types into the program's terminal: bytes given up front, then what
/// the caller writes to its stdin pipe, through the terminal's master side (non-blocking;
/// its reads are the stdout capture). The terminal is never closed from here: end of file
/// is a line that starts with byte 4, as at a keyboard.
pub(crate) struct TtyInput {
    master: OwnedFd,
    input: Option<OwnedFd>,
    pending: std::collections::VecDeque<u8>,
}

impl TtyInput {
    pub(crate) fn new(master: OwnedFd, input: Option<OwnedFd>, typed: Vec<u8>) -> TtyInput {
        TtyInput { master, input, pending: typed.into() }
    }

    /// Types what is pending until the terminal takes no more; once it is gone (the
    /// program and everything holding it ended: `EIO`), nothing more is typed.
    fn type_pending(&mut self) {
        while !self.pending.is_empty() {
            let (front, _) = self.pending.as_slices();
            match nix::unistd::write(&self.master, front) {
                Ok(n) => drop(self.pending.drain(..n)),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.pending.clear();
                    self.input = None;
                }
            }
        }
    }
}

/// A captured stream: its read end while open, and what it gave.
struct Capture {
    fd: Option<OwnedFd>,
    data: Vec<u8>,
    /// Bytes were read past the cap and dropped.
    truncated: bool,
    /// For [`Output::Pipe`](crate::Output::Pipe): where the bytes go instead of `data`.
    relay: Option<Relay>,
    /// Bytes taken from the program (kept or relayed), against the output limit.
    counted: usize,
}

/// The supervisor's end of a stream to the caller, and what the caller has not taken yet
/// (at most the output limit: every byte counted against it passes through here once).
#[derive(Debug)]
pub(crate) struct Relay {
    sock: OwnedFd,
    pending: std::collections::VecDeque<u8>,
}

impl Relay {
    pub(crate) fn new(sock: OwnedFd) -> Relay {
        Relay { sock, pending: std::collections::VecDeque::new() }
    }

    /// Sends what it can without blocking; `false` once the caller's end is gone (its
    /// bytes are then dropped: nobody reads them).
    fn flush(&mut self) -> bool {
        use nix::sys::socket::{MsgFlags, send};
        while !self.pending.is_empty() {
            let (front, _) = self.pending.as_slices();
            match send(self.sock.as_raw_fd(), front, MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT) {
                Ok(n) => drop(self.pending.drain(..n)),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return true,
                Err(_) => {
                    self.pending.clear();
                    return false;
                }
            }
        }
        true
    }
}

/// Relays whose caller has not read everything yet when the run ends, with the run's
/// cancel pipe, which stops them. `drain` hands the rest over, blocking (a spawned run's
/// own thread does this after the outcome is out); dropping them discards it.
#[derive(Debug, Default)]
pub(crate) struct Leftover {
    relays: Vec<Relay>,
    cancel: Option<OwnedFd>,
}

impl Leftover {
    /// Whether nothing is left to hand over.
    pub(crate) fn is_empty(&self) -> bool {
        self.relays.is_empty()
    }

    /// Sends the rest to the caller until it is all taken, the caller's ends are gone, or
    /// the run is cancelled (dropping the handle does that).
    pub(crate) fn drain(mut self) {
        loop {
            self.relays.retain_mut(|r| r.flush() && !r.pending.is_empty());
            if self.relays.is_empty() {
                return;
            }
            let mut fds: Vec<PollFd> =
                self.relays.iter().map(|r| PollFd::new(r.sock.as_fd(), PollFlags::POLLOUT)).collect();
            if let Some(cancel) = &self.cancel {
                fds.push(PollFd::new(cancel.as_fd(), PollFlags::POLLIN));
            }
            let _ = poll(&mut fds, PollTimeout::NONE);
            if self.cancel.is_some() {
                match fds.last().and_then(PollFd::revents) {
                    // A byte: cancelled.
                    Some(r) if r.contains(PollFlags::POLLIN) => return,
                    // Only the hang-up of the handle, dropped after the outcome was taken:
                    // the streams are still the caller's, so go on.
                    Some(r) if !r.is_empty() => self.cancel = None,
                    _ => {}
                }
            }
        }
    }
}

/// Runs the loop until the init is reaped and every pipe is at EOF. A setup failure
/// reported by the child comes back as `Err(Ok(failure))` after the sandbox is gone.
pub(crate) fn watch(
    child: &mut Child,
    cgroup: Option<&dyn Cgroup>,
    pipes: Pipes,
    limits: Enforce,
) -> Result<(std::result::Result<Watched, Failure>, Leftover)> {
    let Pipes { report, stdout, stderr, relays, cancel, mut signals, mut tty } = pipes;
    if let Some(tty) = &mut tty {
        tty.type_pending();
    }
    let mut cancel_open = cancel.is_some();
    // Signals for the program, passed on once it has started (before, the init has no
    // handler to pass them on with, and would drop them).
    let mut queued: Vec<u8> = Vec::new();
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
    let [relay_out, relay_err] = relays;
    let capture = |fd, relay: Option<OwnedFd>| Capture {
        fd,
        data: Vec::new(),
        truncated: false,
        relay: relay.map(Relay::new),
        counted: 0,
    };
    let mut out = [capture(stdout, relay_out), capture(stderr, relay_err)];
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
        // Poll slots: 0 = pidfd, 1 = report, 2 and 3 = captures, 4 = cancel, 5 and 6 =
        // relays with bytes the caller has not taken, 7 = what the caller types into the
        // terminal, 8 = the terminal, while it has not taken all that was typed, 9 = signals
        // for the program; closed ones are skipped.
        let mut slots: Vec<usize> = Vec::with_capacity(10);
        let mut fds: Vec<PollFd> = Vec::with_capacity(10);
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
        if let (true, Some(fd)) = (cancel_open, &cancel) {
            slots.push(4);
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        for (i, c) in out.iter().enumerate() {
            if let Some(relay) = c.relay.as_ref().filter(|r| !r.pending.is_empty()) {
                slots.push(5 + i);
                fds.push(PollFd::new(relay.sock.as_fd(), PollFlags::POLLOUT));
            }
        }
        if let Some(tty) = &tty {
            match &tty.input {
                Some(input) if tty.pending.is_empty() => {
                    slots.push(7);
                    fds.push(PollFd::new(input.as_fd(), PollFlags::POLLIN));
                }
                _ if !tty.pending.is_empty() => {
                    slots.push(8);
                    fds.push(PollFd::new(tty.master.as_fd(), PollFlags::POLLOUT));
                }
                _ => {}
            }
        }
        if let Some(fd) = &signals {
            slots.push(9);
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::io("poll", "sandbox pipes", e.into())),
        }
        let ready: Vec<usize> =
            slots.iter().zip(&fds).filter(|(_, p)| p.any().unwrap_or(false)).map(|(i, _)| *i).collect();
        // The cancel pipe counts only with a byte in it (a hang-up alone is not a cancel).
        let cancel_byte = slots
            .iter()
            .zip(&fds)
            .any(|(&slot, p)| slot == 4 && p.revents().is_some_and(|r| r.contains(PollFlags::POLLIN)));
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
                                // The cgroup counted the init's setup too (from when it
                                // joined): not the program's.
                                cpu_base = Duration::from_nanos(setup_cpu.saturating_sub(child.joined_cpu()));
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
                    // Cancelled: stop the sandbox now, with the figures so far. A limit
                    // already enforced keeps its verdict.
                    cancel_open = false;
                    if cancel_byte && !killed && reaped.is_none() {
                        enforced.get_or_insert(Enforced::Cancelled);
                        ended.get_or_insert_with(monotonic_ns);
                        child.kill();
                        killed = true;
                    }
                }
                9 => {
                    let mut bytes = [0u8; 64];
                    match nix::unistd::read(signals.as_ref().expect("polled"), &mut bytes) {
                        Ok(0) => signals = None,
                        Ok(n) => queued.extend_from_slice(&bytes[..n]),
                        Err(Errno::EAGAIN | Errno::EINTR) => {}
                        Err(_) => signals = None,
                    }
                }
                7 | 8 => {
                    let tty = tty.as_mut().expect("polled");
                    if slot == 7 {
                        let input = tty.input.as_ref().expect("polled");
                        match nix::unistd::read(input, &mut buf) {
                            Ok(0) => tty.input = None,
                            Ok(n) => tty.pending.extend(&buf[..n]),
                            Err(Errno::EAGAIN | Errno::EINTR) => {}
                            Err(_) => tty.input = None,
                        }
                    }
                    tty.type_pending();
                }
                5 | 6 => {
                    let capture = &mut out[slot - 5];
                    if capture.relay.as_mut().is_some_and(|r| !r.flush()) {
                        capture.relay = None;
                    }
                }
                _ => {
                    let total = out.iter().map(|c| c.counted).sum::<usize>();
                    let capture = &mut out[slot - 2];
                    let fd = capture.fd.as_ref().expect("polled");
                    match nix::unistd::read(fd, &mut buf) {
                        Ok(0) => capture.fd = None,
                        Ok(n) => {
                            let room = (limits.output_limit as usize).saturating_sub(total);
                            let kept = &buf[..n.min(room)];
                            capture.counted += kept.len();
                            match &mut capture.relay {
                                Some(relay) => {
                                    relay.pending.extend(kept);
                                    if !relay.flush() {
                                        capture.relay = None;
                                    }
                                }
                                None => capture.data.extend_from_slice(kept),
                            }
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
        if started.is_some() && !killed && reaped.is_none() {
            for sig in queued.drain(..) {
                child.signal(i32::from(sig));
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

    // What the callers of relayed streams have not taken yet, and the cancel pipe that stops
    // handing it over; a relay with nothing left closes here (the reader's end of file).
    let relays: Vec<Relay> = out.iter_mut().filter_map(|c| c.relay.take()).filter(|r| !r.pending.is_empty()).collect();
    let leftover = Leftover { relays, cancel };
    if let Some(f) = failure {
        return Ok((Err(f), leftover));
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
    let watched =
        Watched { ending, enforced, wall_time, started_at: started, stdout, stderr, truncated, reaped, cpu_base };
    Ok((Ok(watched), leftover))
}
