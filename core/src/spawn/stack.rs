//! Stacks for the sandbox's first process, which shares the caller's memory (`CLONE_VM`)
//! and so cannot run on the caller's stack.
//!
//! Parent side. A stack is mapped once and kept in a small pool: unmapping touched memory
//! in a multi-threaded caller costs a TLB shootdown on every core. Each has a guard page
//! below it, so an overflow faults instead of writing into the caller's memory.

use std::sync::Mutex;

use nix::errno::Errno;

/// Usable bytes: the setup sequence needs a few kilobytes; this leaves room to spare.
const SIZE: usize = 256 << 10;
/// The guard page below the stack.
const GUARD: usize = 4096;
/// Stacks kept for reuse (about one per caller thread running sandboxes at once).
const POOL: usize = 8;

/// Per process (`forked.rs`): a child of fork starts with none (the copies of its parent's
/// mappings it has are left alone), and never waits on a lock its parent's threads held.
static FREE: crate::runtime::ProcessLocal<Mutex<Vec<Region>>> =
    crate::runtime::ProcessLocal::new(|| Mutex::new(Vec::new()));

/// A mapping: its start address and length (the guard page included).
#[derive(Debug)]
struct Region(usize);

/// A child's stack; back to the pool when dropped.
#[derive(Debug)]
pub(crate) struct Stack(Option<Region>);

impl Stack {
    /// A stack from the pool, or a new mapping.
    pub(crate) fn take() -> Result<Stack, Errno> {
        if let Some(region) = FREE.get().lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(Stack(Some(region)));
        }
        // SAFETY: a fresh anonymous private mapping, owned by the new `Stack` alone.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SIZE + GUARD,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let region = Region(addr as usize);
        // SAFETY: the lowest page of the mapping just made.
        if unsafe { libc::mprotect(addr, GUARD, libc::PROT_NONE) } != 0 {
            return Err(Errno::last());
        }
        Ok(Stack(Some(region)))
    }

    /// No stack: what a fork's copy of a `Child` swaps its stack for, so that the copy of
    /// its parent's stack is not put in the child's pool.
    pub(crate) fn none() -> Stack {
        Stack(None)
    }

    /// Lowest usable address (above the guard page), for `clone_args.stack`.
    pub(crate) fn base(&self) -> usize {
        self.0.as_ref().map_or(0, |r| r.0 + GUARD)
    }

    /// Usable bytes, for `clone_args.stack_size`.
    pub(crate) fn size(&self) -> usize {
        SIZE
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let Some(region) = self.0.take() else { return };
        let mut free = FREE.get().lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < POOL {
            free.push(region);
        } else {
            drop(free);
            // SAFETY: the mapping is ours, and no process uses it any more.
            unsafe { libc::munmap(region.0 as *mut libc::c_void, SIZE + GUARD) };
        }
    }
}
