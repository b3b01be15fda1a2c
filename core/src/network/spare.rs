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
//! own could not join. Spares are per process (`forked.rs`), held fds a child of `fork`
//! closes at once (`spawn::Held`), and dropped by [`crate::cleanup`].

use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::forked::ProcessLocal;
use crate::spawn::Held;

/// Spares kept at most: about one per caller thread running at once.
const MAX: usize = 2;

/// The spares, and a generation that [`clear`] bumps: a spare made while a clear ran is
/// dropped, not kept (as `cgroup/background.rs` does with spare cgroups).
static SPARES: ProcessLocal<Mutex<(Vec<Held>, u64)>> = ProcessLocal::new(Default::default);

fn spares() -> std::sync::MutexGuard<'static, (Vec<Held>, u64)> {
    SPARES.get().lock().unwrap_or_else(|e| e.into_inner())
}

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
    let (taken, generation) = {
        let mut spares = spares();
        (spares.0.pop(), spares.1)
    };
    crate::cgroup::run_in_background(move || {
        if spares().0.len() < MAX
            && let Some(held) = make().ok().and_then(Held::new)
        {
            let mut spares = spares();
            if spares.0.len() < MAX && spares.1 == generation {
                spares.0.push(held);
            }
        }
    });
    taken
}

/// Whether this is the process's first use of spares.
fn first_call() -> bool {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    CALLS.fetch_add(1, Ordering::Relaxed) == 0
}

/// A namespace being made on a thread of its own, for a process's first run while it
/// makes that run's cgroup (the CLI's case): the two overlap. [`Ahead::join`] before the
/// clone.
pub(crate) struct Ahead(std::thread::JoinHandle<Option<Held>>);

impl Ahead {
    /// Starts making one; `None` when no thread could be started (the run then makes
    /// its namespace in `clone3`, as without).
    pub(crate) fn start() -> Option<Ahead> {
        first_call();
        let work = || make().ok().and_then(Held::new);
        std::thread::Builder::new().name("isolette-netns".into()).spawn(work).ok().map(Ahead)
    }

    /// The namespace, once made (`None` if that failed).
    pub(crate) fn join(self) -> Option<Held> {
        self.0.join().ok().flatten()
    }
}

/// Drops the spares (`cleanup()`, and the exit handler).
pub(crate) fn clear() {
    if SPARES.is_made() {
        let taken = {
            let mut spares = spares();
            spares.1 += 1;
            std::mem::take(&mut spares.0)
        };
        drop(taken);
    }
}

/// A new network namespace with its loopback up, made by the calling thread, which ends
/// back in its own namespace (a failure to return aborts the process rather than leave
/// the thread in a namespace a sandbox will get).
fn make() -> std::io::Result<OwnedFd> {
    let own = OwnedFd::from(std::fs::File::open("/proc/thread-self/ns/net")?);
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
    let made = std::fs::File::open("/proc/thread-self/ns/net").map(OwnedFd::from);
    let up = crate::spawn::loopback_up();
    if nix::sched::setns(&own, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
        std::process::abort();
    }
    up.map_err(std::io::Error::from)?;
    // Above the fds the sandbox's first process moves things into.
    crate::spawn::high_fd(made?).map_err(|e| std::io::Error::other(e.to_string()))
}
