//! A slot holding a value leaked into it, replaced atomically and never freed: what the
//! runtime's per-process values (`runtime::ProcessLocal`) are made of, without a lock a
//! `fork` could leave held.

use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};

/// Nothing, or a `&'static T` leaked into the slot.
pub(crate) struct LeakedSlot<T: 'static>(AtomicPtr<T>);

impl<T: Send + Sync + 'static> LeakedSlot<T> {
    /// An empty slot.
    pub(crate) const fn new() -> LeakedSlot<T> {
        LeakedSlot(AtomicPtr::new(null_mut()))
    }

    /// The value in the slot.
    pub(crate) fn get(&self) -> Option<&'static T> {
        // SAFETY: the slot holds null or a pointer from `Box::into_raw` in `replace`, whose
        // box is never freed; `T: Sync` lets the reference be shared between threads.
        unsafe { self.0.load(Ordering::Acquire).as_ref() }
    }

    /// Leaks `value` into the slot if the slot still holds `current` (compared by address),
    /// and returns it; otherwise gives `value` back.
    pub(crate) fn replace(&self, current: Option<&'static T>, value: Box<T>) -> Result<&'static T, Box<T>> {
        let current = current.map_or(null_mut(), |c| std::ptr::from_ref(c).cast_mut());
        let fresh = Box::into_raw(value);
        match self.0.compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: just leaked into the slot, which never frees it.
            Ok(_) => Ok(unsafe { &*fresh }),
            // SAFETY: the exchange failed, so `fresh` was never shared: this is its only owner.
            Err(_) => Err(unsafe { Box::from_raw(fresh) }),
        }
    }
}

/// For tests: runs `child` in a child of `fork` and returns what it returned. The child
/// ends with `_exit`, running none of the parent's exit handlers; `child` should do no
/// more than a child of a multi-threaded parent may (atomics, no locks).
#[cfg(test)]
pub(crate) fn in_forked_child(child: impl FnOnce() -> bool) -> bool {
    // SAFETY: the child runs `child` and `_exit`s; the parent waits for it.
    match unsafe { libc::fork() } {
        0 => {
            let ok = child();
            // SAFETY: ends the child without running the parent's exit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        pid => {
            let mut status = 0;
            // SAFETY: waits for the child just forked.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
        }
    }
}
