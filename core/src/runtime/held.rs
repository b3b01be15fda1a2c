//! Namespace fds held past their run: a finished run's mount namespace (released on the
//! background thread, off the caller's path), a spare network namespace. A child of `fork`
//! closes its copies at once (`forked.rs`'s handler), so that a prefork worker never keeps
//! a finished sandbox's mounts or a spare alive.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// Held fds by number, -1 for a free slot.
static HELD: [AtomicI32; 64] = [const { AtomicI32::new(-1) }; 64];

/// A held namespace fd, in a [`HELD`] slot while it is open.
#[derive(Debug)]
pub(crate) struct Held {
    slot: usize,
    /// Open while held; closed when dropped.
    fd: OwnedFd,
}

impl Held {
    /// `None` (and `fd` closed) when every slot is taken.
    pub(crate) fn new(fd: OwnedFd) -> Option<Held> {
        let slot = HELD
            .iter()
            .position(|s| s.compare_exchange(-1, fd.as_raw_fd(), Ordering::SeqCst, Ordering::SeqCst).is_ok())?;
        Some(Held { slot, fd })
    }

    pub(crate) fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // The slot first: a fork between the two steps leaks a copy of the fd into the
        // child, rather than have the child close a number another fd took since.
        // The fd itself closes when the field drops, right after this.
        HELD[self.slot].store(-1, Ordering::SeqCst);
    }
}

/// Set while a namespace fd may be open outside [`HELD`] (between its `open` and its
/// [`Held`], and while a spare is made): a `fork` waits for it to clear ([`before_fork`]),
/// so that no child gets a copy that nothing would close.
static OPENING: AtomicBool = AtomicBool::new(false);

fn acquire_opening() {
    while OPENING.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::thread::yield_now();
    }
}

/// Runs `f`, which opens namespace fds and puts them in [`Held`]s, with forks held off.
pub(crate) fn opening<T>(f: impl FnOnce() -> T) -> T {
    acquire_opening();
    let result = f();
    OPENING.store(false, Ordering::Release);
    result
}

/// `pthread_atfork`'s prepare handler: waits until no namespace fd is open outside
/// [`HELD`], and keeps it so until [`after_fork`].
pub(super) fn before_fork() {
    acquire_opening();
}

/// `pthread_atfork`'s parent and child handlers: lets [`opening`] go on.
pub(super) fn after_fork() {
    OPENING.store(false, Ordering::Release);
}

/// For the child of a `fork`: closes its copies of the held namespace fds.
/// Async-signal-safe: atomics and `close` only.
pub(super) fn close_held_after_fork() {
    for slot in &HELD {
        let fd = slot.swap(-1, Ordering::SeqCst);
        if fd >= 0 {
            crate::sys::close(fd);
        }
    }
}
