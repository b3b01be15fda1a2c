//! Network namespaces made ahead of time, for sandboxes without a network of their own.
//!
//! Making a network namespace is the largest single kernel cost of starting a sandbox
//! (0.35 ms here: per-namespace sysctl tables, the loopback device). A process that runs
//! sandboxes again and again gets the next one's made on its background thread: the
//! thread `unshare`s into a new namespace, brings its loopback up, keeps it as an fd and
//! goes back to its own. The sandbox's first process then `setns`es into it instead of
//! making one in `clone3`. Each spare is fresh and serves one sandbox: the parent hands
//! its fd over at the clone and closes its own copy.
//!
//! Only for a root caller whose sandbox has no user namespace and no network: a namespace
//! owned by the host's user namespace is one that a sandbox with a user namespace of its
//! own could not join. Spares are per process (`runtime/spares.rs`), held fds a child of
//! `fork` closes at once (`runtime/held.rs`), and dropped by [`crate::cleanup`].

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::runtime::{Held, Spares};

/// The spares: one kind, so no key.
static SPARES: Spares<(), Held> = Spares::new();

/// Whether a sandbox cloned with `clone_flags` and no network of its own may join a spare.
pub(crate) fn fits(clone_flags: u64, has_network: bool) -> bool {
    clone_flags & libc::CLONE_NEWNET as u64 != 0
        && clone_flags & libc::CLONE_NEWUSER as u64 == 0
        && !has_network
        && nix::unistd::geteuid().is_root()
}

/// A spare, if one is ready; asks for the next one either way (it is made on the
/// background thread, which this starts when the process has none yet). A process's
/// first run asks for none: a one-shot caller such as the CLI would only pay for it.
pub(crate) fn take() -> Option<Held> {
    if first_call() {
        return None;
    }
    let taken = SPARES.take(&());
    SPARES.prepare((), |_| {
        // No fork while the thread's own namespace or the new one is open outside a
        // `Held` (`runtime::opening`).
        crate::runtime::opening(|| {
            let mut made = None;
            make(|fd| made = Held::new(fd));
            made
        })
    });
    taken
}

/// Whether this is the process's first use of spares.
fn first_call() -> bool {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    CALLS.fetch_add(1, Ordering::Relaxed) == 0
}

/// Makes a new network namespace with its loopback up on the calling thread, hands it to
/// `deliver` (nothing when any step fails), and puts the thread back in its own namespace
/// (a failure to return aborts the process rather than leave the thread in a namespace a
/// sandbox will get).
fn make(deliver: impl FnOnce(OwnedFd)) {
    let Ok(own) = std::fs::File::open("/proc/thread-self/ns/net") else { return };
    if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
        return;
    }
    // Above the fds the sandbox's first process moves things into.
    let made = std::fs::File::open("/proc/thread-self/ns/net").ok().and_then(|f| crate::sys::high_fd(f.into()).ok());
    if let (Ok(()), Some(made)) = (crate::sys::loopback_up(), made) {
        deliver(made);
    }
    if nix::sched::setns(&own, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
        std::process::abort();
    }
}
