//! [`Running`]: a sandbox started by [`SandboxBuilder::spawn`](crate::SandboxBuilder::spawn),
//! supervised on a thread of its own, and [`Canceller`], which stops it from anywhere.
//!
//! Parent side. The supervisor is the same one `run()` uses (`run::finish`); here it runs
//! on a thread of its own rather than on the caller's, so the limits (wall time, cpu
//! time, output) are enforced whether or not anyone waits, and a waiter can give up
//! (`wait_timeout`) or come back later. A cancel is one byte on a pipe the supervisor
//! polls: it kills the sandbox at once, from any thread.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::cancel::Canceller;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::outcome::Outcome;
use crate::run::{self, Started};
use crate::stdio::Handles;

/// A running sandbox. Dropping it without waiting cancels the run and waits for the
/// sandbox to be gone: nothing outlives the handle.
///
/// ```no_run
/// # let image = isolette::Image::open("img")?;
/// let running = isolette::Sandbox::builder(&image).spawn(["/bin/sleep", "60"])?;
/// let cancel = running.canceller();
/// std::thread::spawn(move || cancel.cancel()); // from anywhere, at any time
/// assert_eq!(running.wait()?.status, isolette::Status::Cancelled);
/// # Ok::<(), isolette::Error>(())
/// ```
#[derive(Debug)]
pub struct Running {
    id: String,
    pid: i32,
    /// The ports published, host ports as chosen.
    ports: Vec<crate::Publish>,
    /// The caller's ends of piped stdio, until taken.
    stdin: Option<File>,
    stdout: Option<UnixStream>,
    stderr: Option<UnixStream>,
    /// The terminal's master side, to resize it.
    tty: Option<OwnedFd>,
    canceller: Canceller,
    /// Where [`signal`](Running::signal) writes the numbers the supervisor passes on.
    signals: OwnedFd,
    /// Readable once the outcome is in ([`ready_fd`](Running::ready_fd)).
    ready: OwnedFd,
    state: Arc<State>,
    /// Taken when the outcome is; locked by a waiter.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    owner: crate::runtime::Owner,
}

/// Where the supervisor thread leaves the outcome.
#[derive(Debug, Default)]
struct State {
    /// The outcome, and whether the thread goes on handing output the caller has not read
    /// yet to its streams (then nobody joins it: it ends when the streams are read or
    /// dropped, and holds nothing of the sandbox, which is gone).
    outcome: Mutex<(Option<Result<Outcome>>, bool)>,
    done: Condvar,
}

impl Running {
    /// Starts a run on a thread of its own: `begin` makes the sandbox there (so the sandbox
    /// dies with that thread, `PR_SET_PDEATHSIG`, and not with the caller's, which may end
    /// first), then the thread supervises it. Returns once the sandbox is started, or with
    /// the error that kept it from starting.
    pub(crate) fn spawn(config: Config, begin: impl FnOnce() -> Result<Started> + Send + 'static) -> Result<Running> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        // The builder's canceller if it has one, so that it cancels this run too.
        let canceller = match &config.canceller {
            Some(c) => c.clone(),
            None => Canceller::new()?,
        };
        let cancel_r = canceller.watch()?;
        // A socket, not a pipe: a signal sent once the supervisor is gone must not be a
        // SIGPIPE in the caller's process.
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (signals_r, signals_w) =
            socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK)
                .map_err(|e| Error::io("socketpair", "signals", e.into()))?;
        // A pipe whose write end the supervisor thread closes when the outcome is in: end of
        // file on the read end is the news an event loop polls for.
        let (ready_r, ready_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::io("pipe2", "ready", e.into()))?;
        let state = Arc::new(State::default());
        let shared = Arc::clone(&state);
        type Told = (i32, Vec<crate::Publish>, Handles);
        let (tell, started_pid) = std::sync::mpsc::sync_channel::<Result<Told>>(1);
        let thread = std::thread::Builder::new()
            .name("isolette-supervise".into())
            .spawn(move || {
                let mut started = match begin() {
                    Ok(started) => started,
                    Err(e) => {
                        let _ = tell.send(Err(e));
                        return;
                    }
                };
                started.cancel = Some(cancel_r);
                started.signals = Some(signals_r);
                let caller = std::mem::take(&mut started.caller);
                let ports = started.network.as_ref().map(|n| n.ports.clone()).unwrap_or_default();
                let _ = tell.send(Ok((started.child.pid(), ports, caller)));
                let (outcome, leftover) = run::finish_relaying(&config, started);
                *shared.outcome.lock().unwrap_or_else(|e| e.into_inner()) = (Some(outcome), !leftover.is_empty());
                shared.done.notify_all();
                drop(ready_w);
                // The outcome is out; what the caller has not read of the output yet still
                // goes to it, until it is all taken, its stream is dropped, or the run is
                // cancelled (a handle dropped before the outcome cancels).
                leftover.drain();
            })
            .map_err(|e| Error::io("spawn thread", "isolette-supervise", e))?;
        let (pid, ports, caller) = match started_pid.recv() {
            Ok(Ok(started)) => started,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(Error::io("spawn", "isolette-supervise", std::io::Error::other("the thread ended early")));
            }
        };
        Ok(Running {
            id: format!("{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)),
            pid,
            ports,
            stdin: caller.stdin.map(File::from),
            stdout: caller.stdout.map(UnixStream::from),
            stderr: caller.stderr.map(UnixStream::from),
            tty: caller.tty,
            canceller,
            signals: signals_w,
            ready: ready_r,
            state,
            thread: Mutex::new(Some(thread)),
            owner: crate::runtime::Owner::here(),
        })
    }

    /// This sandbox's id, unique in this process.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The sandbox ports published on the host, with the host ports chosen for port 0.
    pub fn ports(&self) -> &[crate::Publish] {
        &self.ports
    }

    /// The host pid of the sandbox's init (pid 1 inside).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The sandbox's network namespace, for another sandbox to share
    /// ([`Network::Shared`](crate::Network::Shared)): a healthcheck that asks `localhost`.
    /// Ask while it runs: once a wait has returned its outcome, its init is reaped, and
    /// the pid may already be another process's.
    pub fn network(&self) -> Result<crate::SharedNetwork> {
        crate::network::SharedNetwork::of(self.pid)
    }

    /// The program's stdin, to write while it runs, for [`Stdin::Pipe`](crate::Stdin::Pipe)
    /// (once; `None` otherwise). Dropping it is end of file.
    pub fn take_stdin(&mut self) -> Option<File> {
        self.stdin.take()
    }

    /// The program's stdout as it comes, for [`Output::Pipe`](crate::Output::Pipe) (once;
    /// `None` otherwise). It reaches end of file when the program's output has all been
    /// read; what the output limit cut never arrives.
    pub fn take_stdout(&mut self) -> Option<UnixStream> {
        self.stdout.take()
    }

    /// The program's stderr as it comes, for [`Output::Pipe`](crate::Output::Pipe), as
    /// [`take_stdout`](Running::take_stdout).
    pub fn take_stderr(&mut self) -> Option<UnixStream> {
        self.stderr.take()
    }

    /// Resizes the program's terminal ([`SandboxBuilder::tty`](crate::SandboxBuilder::tty));
    /// the program gets `SIGWINCH`. A run without a terminal is a config error.
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        use std::os::fd::AsFd;
        let Some(master) = &self.tty else {
            return Err(Error::config("this run has no terminal to resize; start it with tty(true)"));
        };
        if rows == 0 || cols == 0 {
            return Err(Error::config("a terminal needs at least one row and one column"));
        }
        crate::sys::set_window_size(master.as_fd(), rows, cols)
    }

    /// Sends `signal` to the program (the sandbox's init passes it on, as Docker's does): a
    /// graceful stop is `signal(libc::SIGTERM)`, then [`kill`](Running::kill) if it does
    /// not end. A signal sent before the program has started reaches it once it has;
    /// after the run has ended, nothing happens. `SIGKILL` is [`kill`](Running::kill).
    /// Signals the init does not pass on (`SIGSTOP`, the ones a fault raises, `SIGCHLD`,
    /// `SIGPIPE`, `SIGXCPU`, `SIGXFSZ`) are a config error.
    pub fn signal(&self, signal: i32) -> Result<()> {
        if signal == libc::SIGKILL {
            self.kill();
            return Ok(());
        }
        if !crate::proto::FORWARDED_SIGNALS.iter().any(|&s| i32::from(s) == signal) {
            return Err(Error::config(format!("signal {signal} is not passed on to a sandboxed program")));
        }
        // The supervisor passes it on (`supervise.rs`), or drops it once the run is over.
        use nix::sys::socket::{MsgFlags, send};
        use std::os::fd::AsRawFd;
        match send(self.signals.as_raw_fd(), &[signal as u8], MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT) {
            Ok(_) | Err(nix::errno::Errno::EPIPE | nix::errno::Errno::ECONNRESET) => Ok(()),
            Err(e) => Err(Error::io("send", "signal socket", e.into())),
        }
    }

    /// Stops the sandbox now; the run ends with [`Status::Cancelled`](crate::Status::Cancelled).
    pub fn kill(&self) {
        self.canceller.cancel();
    }

    /// A handle that stops the sandbox from any thread.
    pub fn canceller(&self) -> Canceller {
        self.canceller.clone()
    }

    /// An fd that becomes readable (end of file) once the outcome is in, for an event loop
    /// to watch (Python's `loop.add_reader`, libuv's poll) instead of blocking a thread in
    /// [`wait`](Running::wait), which then returns at once.
    pub fn ready_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.ready.as_fd()
    }

    /// Waits for the run to end and returns its outcome.
    pub fn wait(self) -> Result<Outcome> {
        match self.wait_until(None)? {
            Some(outcome) => Ok(outcome),
            None => unreachable!("waiting without a deadline ends with an outcome"),
        }
    }

    /// Waits up to `timeout`; `None` when the run is still going. Takes `&self`, so one
    /// thread may wait while others signal, resize or kill (concurrent waiters take turns).
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<Outcome>> {
        self.wait_until(Some(Instant::now() + timeout))
    }

    /// The outcome if the run has ended, without waiting.
    pub fn try_wait(&self) -> Result<Option<Outcome>> {
        self.wait_until(Some(Instant::now()))
    }

    fn wait_until(&self, deadline: Option<Instant>) -> Result<Option<Outcome>> {
        let mut thread = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        if thread.is_none() {
            return Err(Error::config("this run's outcome was already taken"));
        }
        let mut outcome = self.state.outcome.lock().unwrap_or_else(|e| e.into_inner());
        while outcome.0.is_none() {
            let Some(deadline) = deadline else {
                outcome = self.state.done.wait(outcome).unwrap_or_else(|e| e.into_inner());
                continue;
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            outcome = self.state.done.wait_timeout(outcome, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        let result = outcome.0.take().expect("set");
        let draining = outcome.1;
        drop(outcome);
        let handle = thread.take().expect("checked above");
        if !draining {
            let _ = handle.join();
        }
        result.map(Some)
    }
}

impl Drop for Running {
    /// Before the outcome: cancels the run and waits for the sandbox to be gone. After it,
    /// output the caller has not read still reaches the streams it took.
    fn drop(&mut self) {
        let thread = self.thread.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if !self.owner.is_here() {
            // A fork's copy: the run is its parent's, and so is the thread.
            std::mem::forget(thread);
            return;
        }
        if let Some(thread) = thread {
            self.canceller.cancel();
            let _ = thread.join();
        }
    }
}
