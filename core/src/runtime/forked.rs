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
use std::sync::atomic::{AtomicU64, Ordering};

use crate::sys::LeakedSlot;

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

/// `<pid>-<starttime>`: names this process among every process the machine has had since
/// it booted (a pid alone is reused). What a process leaves on the host (a run's cgroup, a
/// temporary directory) carries it, so `gc` can tell whether its owner still runs. Per
/// process: a child of `fork` has a tag of its own.
pub(crate) fn owner_tag() -> &'static str {
    static TAG: ProcessLocal<String> = ProcessLocal::new(|| {
        let pid = std::process::id();
        format!("{pid}-{}", start_time(pid).unwrap_or(0))
    });
    TAG.get()
}

/// Whether the process an [`owner_tag`] names still runs; `true` for text that is no tag
/// (what we did not name is left alone). A zombie does not run: a killed owner whose
/// parent has not reaped it yet (this machine's pid 1 reaps late, if at all) is gone.
pub(crate) fn tag_alive(tag: &str) -> bool {
    let Some((pid, start)) = tag.split_once('-') else { return true };
    let (Ok(pid), Ok(start)) = (pid.parse::<u32>(), start.parse::<u64>()) else { return true };
    matches!(state_and_start(pid), Some((state, started)) if started == start && state != 'Z')
}

/// Fields 3 and 22 of `/proc/<pid>/stat`: the process's state (`Z` for a zombie) and when
/// it started, in clock ticks since boot.
fn state_and_start(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    Some((state, fields.nth(18)?.parse().ok()?))
}

/// When process `pid` started, in clock ticks since boot.
fn start_time(pid: u32) -> Option<u64> {
    state_and_start(pid).map(|(_, start)| start)
}

/// A value made on first use in each process (see the module docs).
pub(crate) struct ProcessLocal<T: 'static> {
    slot: LeakedSlot<(u64, T)>,
    init: fn() -> T,
}

impl<T: Send + Sync + 'static> ProcessLocal<T> {
    pub(crate) const fn new(init: fn() -> T) -> ProcessLocal<T> {
        ProcessLocal { slot: LeakedSlot::new(), init }
    }

    /// This process's value.
    pub(crate) fn get(&self) -> &'static T {
        let now = generation();
        loop {
            let current = self.slot.get();
            if let Some((made, value)) = current
                && *made == now
            {
                return value;
            }
            // Another thread of this process may be first: then ours drops, theirs is taken.
            if let Ok((_, value)) = self.slot.replace(current, Box::new((now, (self.init)()))) {
                return value;
            }
        }
    }

    /// Whether this process has made its value yet.
    pub(crate) fn is_made(&self) -> bool {
        self.slot.get().is_some_and(|(made, _)| *made == generation())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_a_live_owner() {
        let tag = owner_tag();
        assert!(tag.starts_with(&format!("{}-", std::process::id())));
        assert!(tag_alive(tag));
        assert!(!tag_alive("999999999-1"), "no such process");
        let (pid, start) = tag.split_once('-').unwrap();
        let later: u64 = start.parse::<u64>().unwrap() + 1;
        assert!(!tag_alive(&format!("{pid}-{later}")), "the pid reused by another process");
        for other in ["not-ours", "12", "a-1", ""] {
            assert!(tag_alive(other), "{other:?} is no tag: left alone");
        }
        let child_tag = crate::sys::in_forked_child(|| owner_tag() != tag);
        assert!(child_tag, "a child of fork has a tag of its own");
        // An owner that has ended but is not reaped yet (a zombie) is gone.
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let zombie = format!("{}-{}", child.id(), start_time(child.id()).unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while state_and_start(child.id()).is_some_and(|(state, _)| state != 'Z') {
            assert!(std::time::Instant::now() < deadline, "the child never ended");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(!tag_alive(&zombie), "a zombie owner is gone");
        child.wait().unwrap();
    }

    #[test]
    fn a_child_of_fork_gets_its_own_value() {
        static COUNTER: ProcessLocal<AtomicU64> = ProcessLocal::new(|| AtomicU64::new(0));
        COUNTER.get().fetch_add(5, Ordering::SeqCst);
        assert_eq!(COUNTER.get().load(Ordering::SeqCst), 5);
        assert!(COUNTER.is_made());
        let fresh = crate::sys::in_forked_child(|| !COUNTER.is_made() && COUNTER.get().load(Ordering::SeqCst) == 0);
        assert!(fresh, "the child saw its parent's value");
        assert_eq!(COUNTER.get().load(Ordering::SeqCst), 5, "the parent keeps its own");
    }
}
