//! State that belongs to one process, made afresh in the child of a `fork`.
//!
//! A prefork server (gunicorn, Celery, a Python `multiprocessing` pool) imports the
//! library and runs a sandbox in its parent, then forks workers. A child of `fork` gets a
//! copy of the parent's memory but only the forking thread: a copy of the cgroup queue
//! would name work for a thread it does not have, the parent's spare cgroups would be
//! used twice, and a lock some other thread held at the fork would stay locked for good.
//! So such state lives in a [`ProcessLocal`]: a child's first use makes a new one, and the
//! copy of the parent's is left alone (leaked, never locked).
//!
//! A `pthread_atfork` handler in the child bumps a generation counter (one atomic add,
//! safe in a child of a multi-threaded parent); each value remembers its generation. It
//! also closes the child's copies of the namespaces the parent holds (finished runs' mount
//! namespaces, spare network namespaces: `held.rs`), which would otherwise stay
//! alive in a worker; a fork waits while such an fd is being opened.
//! The sandbox's own `clone3` runs no such handler, and its child never uses this state.

use std::sync::Once;
use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};

/// How many `fork`s lie between the first process that used the library and this one.
static GENERATION: AtomicU64 = AtomicU64::new(0);

extern "C" fn before_fork() {
    super::held::before_fork();
}

extern "C" fn after_fork_in_parent() {
    super::held::after_fork();
}

extern "C" fn after_fork_in_child() {
    GENERATION.fetch_add(1, Ordering::SeqCst);
    super::held::close_held_after_fork();
    super::held::after_fork();
}

/// This process's generation (see the module docs).
pub(crate) fn generation() -> u64 {
    static REGISTER: Once = Once::new();
    // The child's handler does atomics and `close` only (async-signal-safe).
    REGISTER.call_once(|| crate::sys::at_fork(before_fork, after_fork_in_parent, after_fork_in_child));
    GENERATION.load(Ordering::SeqCst)
}

/// Marks a value as this process's. A copy of it that a fork gave a child must do nothing
/// when dropped: not kill its parent's sandbox (the pidfd is inherited), not remove its
/// parent's cgroups, not join a thread the child does not have.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner(u64);

impl Owner {
    /// This process.
    pub(crate) fn here() -> Owner {
        Owner(generation())
    }

    /// Whether this is still the process that made the value.
    pub(crate) fn is_here(self) -> bool {
        self.0 == generation()
    }
}

/// A value made on first use in each process (see the module docs).
pub(crate) struct ProcessLocal<T: 'static> {
    slot: AtomicPtr<(u64, T)>,
    init: fn() -> T,
}

impl<T: Send + Sync + 'static> ProcessLocal<T> {
    pub(crate) const fn new(init: fn() -> T) -> ProcessLocal<T> {
        ProcessLocal { slot: AtomicPtr::new(std::ptr::null_mut()), init }
    }

    /// This process's value.
    pub(crate) fn get(&self) -> &'static T {
        let now = generation();
        loop {
            let current = self.slot.load(Ordering::Acquire);
            // SAFETY: a non-null slot points to a leaked box that is never freed.
            if let Some((made, value)) = unsafe { current.as_ref() }
                && *made == now
            {
                return value;
            }
            let fresh = Box::into_raw(Box::new((now, (self.init)())));
            match self.slot.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
                // SAFETY: just leaked; from here on it lives for the rest of the process.
                Ok(_) => return unsafe { &(*fresh).1 },
                // Another thread of this process was first: drop ours, take theirs.
                // SAFETY: `fresh` was never shared, so this is its only owner.
                Err(_) => drop(unsafe { Box::from_raw(fresh) }),
            }
        }
    }

    /// Whether this process has made its value yet.
    pub(crate) fn is_made(&self) -> bool {
        // SAFETY: as in `get`.
        unsafe { self.slot.load(Ordering::Acquire).as_ref() }.is_some_and(|(made, _)| *made == generation())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_of_fork_gets_its_own_value() {
        static COUNTER: ProcessLocal<AtomicU64> = ProcessLocal::new(|| AtomicU64::new(0));
        COUNTER.get().fetch_add(5, Ordering::SeqCst);
        assert_eq!(COUNTER.get().load(Ordering::SeqCst), 5);
        assert!(COUNTER.is_made());
        // SAFETY: the child only reads atomics and exits with `_exit`.
        match unsafe { libc::fork() } {
            0 => {
                let fresh = !COUNTER.is_made() && COUNTER.get().load(Ordering::SeqCst) == 0;
                // SAFETY: ends the child without running the parent's exit handlers.
                unsafe { libc::_exit(if fresh { 0 } else { 1 }) }
            }
            pid => {
                let mut status = 0;
                // SAFETY: waits for the child just forked.
                unsafe { libc::waitpid(pid, &mut status, 0) };
                assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the child saw its parent's value");
                assert_eq!(COUNTER.get().load(Ordering::SeqCst), 5, "the parent keeps its own");
            }
        }
    }
}
