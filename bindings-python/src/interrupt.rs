//! Ctrl-C during a synchronous `run` on the main thread. The run happens on the caller's
//! thread with the GIL released, so Python's own handler can only set its flag; for the
//! run's duration this module puts a handler of its own in front of Python's, which
//! cancels the run (one byte to its `Canceller`, async-signal-safe) and then calls
//! Python's. The binding raises `KeyboardInterrupt` once the sandbox is gone.
//!
//! Main thread only: Python delivers `KeyboardInterrupt` there, and one run at a time
//! happens there, so one slot suffices. A `SIGINT` disposition that is not a plain
//! function (the default, ignored, or an `SA_SIGINFO` handler) is left alone.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

/// The current run's cancel fd, or -1.
static CANCEL_FD: AtomicI32 = AtomicI32::new(-1);
/// The handler this one stands in front of (Python's).
static PREVIOUS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_sigint(signal: libc::c_int) {
    let fd = CANCEL_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: write(2) of one byte from a static buffer; async-signal-safe.
        unsafe { libc::write(fd, b"\x01".as_ptr().cast(), 1) };
    }
    let previous = PREVIOUS.load(Ordering::SeqCst);
    if previous != 0 {
        // SAFETY: `previous` is the plain handler function `install` found in place.
        let handler: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(previous) };
        handler(signal);
    }
}

/// Puts the previous `SIGINT` disposition back when dropped.
pub(crate) struct Guard(Option<libc::sigaction>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(previous) = self.0.take() {
            // SAFETY: restores the disposition read by `install`.
            unsafe { libc::sigaction(libc::SIGINT, &previous, std::ptr::null_mut()) };
            CANCEL_FD.store(-1, Ordering::SeqCst);
        }
    }
}

/// On the main thread, makes `SIGINT` also write a byte to `cancel_fd` until the guard
/// drops.
pub(crate) fn install(cancel_fd: RawFd) -> Guard {
    // SAFETY: plain syscalls without arguments.
    if unsafe { libc::gettid() != libc::getpid() } {
        return Guard(None);
    }
    // SAFETY: an all-zero sigaction is a valid value for the kernel to overwrite.
    let mut previous: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: reads the current disposition into `previous`.
    if unsafe { libc::sigaction(libc::SIGINT, std::ptr::null(), &mut previous) } != 0 {
        return Guard(None);
    }
    let plain = previous.sa_flags & libc::SA_SIGINFO == 0
        && previous.sa_sigaction != libc::SIG_DFL
        && previous.sa_sigaction != libc::SIG_IGN;
    if !plain {
        return Guard(None);
    }
    PREVIOUS.store(previous.sa_sigaction, Ordering::SeqCst);
    CANCEL_FD.store(cancel_fd, Ordering::SeqCst);
    let mut ours = previous;
    ours.sa_sigaction = on_sigint as extern "C" fn(libc::c_int) as usize;
    // SAFETY: installs a handler that only writes a byte and calls the previous one.
    if unsafe { libc::sigaction(libc::SIGINT, &ours, std::ptr::null_mut()) } != 0 {
        CANCEL_FD.store(-1, Ordering::SeqCst);
        return Guard(None);
    }
    Guard(Some(previous))
}
