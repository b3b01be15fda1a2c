//! [`Canceller`]: a cancel that reaches a run from any thread: one byte on a pipe that
//! the run's supervisor polls.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Stops a running sandbox from any thread: cheap to clone, `Send + Sync`, and idempotent.
/// A cancelled run ends with [`Status::Cancelled`](crate::Status::Cancelled).
///
/// [`Running::canceller`](crate::Running::canceller) gives one for a run under way; [`Canceller::new`] makes one for
/// runs not started yet, given to [`SandboxBuilder::canceller`](crate::SandboxBuilder::canceller)
/// (then `run()`, on the caller's thread, can be cancelled from elsewhere too).
#[derive(Debug, Clone)]
pub struct Canceller {
    /// The pipe's write end: a byte in it is the cancel.
    pipe: Arc<OwnedFd>,
    /// Its read end, which supervisors poll (each a copy of its own).
    watch: Arc<OwnedFd>,
}

impl Canceller {
    /// A canceller for runs to come. Once cancelled it stays so: every run started with it
    /// (before or after the cancel) ends `cancelled`.
    pub fn new() -> Result<Canceller> {
        let (watch, pipe) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
            .map_err(|e| Error::io("pipe2", "cancel", e.into()))?;
        Ok(Canceller { pipe: Arc::new(pipe), watch: Arc::new(watch) })
    }

    /// Ends the run now (the sandbox is killed within milliseconds); does nothing when it
    /// has already ended or was cancelled before.
    pub fn cancel(&self) {
        // One byte is enough; a full pipe means a cancel is already on its way.
        let _ = nix::unistd::write(&*self.pipe, &[1]);
    }

    /// Whether [`cancel`](Canceller::cancel) was called (by any clone).
    pub fn is_cancelled(&self) -> bool {
        let mut fds = [nix::poll::PollFd::new(self.watch.as_fd(), nix::poll::PollFlags::POLLIN)];
        nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO).is_ok_and(|n| n > 0)
    }

    /// A supervisor's copy of the end it polls.
    pub(crate) fn watch(&self) -> Result<OwnedFd> {
        self.watch.try_clone().map_err(|e| Error::io("dup", "cancel pipe", e))
    }
}

impl std::os::fd::AsFd for Canceller {
    /// The fd a byte is written to by [`cancel`](Canceller::cancel): for code that can only
    /// make system calls, such as a signal handler (a `write` of one byte there is a
    /// cancel, async-signal-safe).
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.pipe.as_fd()
    }
}
