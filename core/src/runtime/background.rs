//! Work kept off the caller's critical path, done by one background thread per process.
//!
//! - **Removal** of directories (cgroups): `rmdir` of a cgroup whose last task has just
//!   exited costs tens of microseconds, and on v1 it may fail with `EBUSY` for
//!   milliseconds while the kernel lets go of the task. A run hands its directories over
//!   and returns at once; busy ones are retried for up to 5 s.
//! - **Work of other modules** ([`run_later`]): spares made ahead of a caller's next run
//!   (`spares.rs`: cgroups, network namespaces), and a finished run's hold on its mount
//!   namespace let go ([`release_later`]): the last reference to a sandbox's mount
//!   namespace unmounts its tree, which waits for an expedited RCU grace period.
//!
//! At process exit an `atexit` handler clears the spares and finishes the queue,
//! including the removals the thread is in the middle of, so a short-lived caller leaves
//! nothing behind; what a killed caller leaves is for `gc`.
//!
//! All of it is per process (`forked.rs`): the child of a prefork server starts with an
//! empty queue, no spares and no thread, and starts its own thread when it needs one.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use super::forked::ProcessLocal;

enum Job {
    /// A directory to remove, and when it was queued.
    Remove(PathBuf, Instant),
    /// Work of another module done here: a spare made, a finished run's hold on its
    /// mount namespace let go. A flush drops it unrun.
    Run(Box<dyn FnOnce() + Send>),
}

/// The queue, and how many jobs the thread has taken out of it and not finished yet: a
/// flush waits for those too, not only for an empty queue (the thread takes the whole
/// queue at once, so an empty queue says nothing about whether its `rmdir`s are done).
struct Queue {
    jobs: Vec<Job>,
    in_flight: usize,
}

/// The state of this process's background work.
struct Background {
    queue: Mutex<Queue>,
    /// Signalled when jobs arrive.
    wake: Condvar,
    /// Signalled when the thread has finished a batch.
    idle: Condvar,
    start: Once,
    /// What a flush clears first (`spares.rs` registers each [`Spares`] on its first use).
    ///
    /// [`Spares`]: super::Spares
    hooks: Mutex<Vec<&'static (dyn Flush + Sync)>>,
}

/// Something a flush clears before it finishes the queue.
pub(super) trait Flush {
    /// Drops what is held; may queue removals, which the flush then waits for.
    fn clear(&self);
}

static STATE: ProcessLocal<Background> = ProcessLocal::new(|| Background {
    queue: Mutex::new(Queue { jobs: Vec::new(), in_flight: 0 }),
    wake: Condvar::new(),
    idle: Condvar::new(),
    start: Once::new(),
    hooks: Mutex::new(Vec::new()),
});

fn state() -> &'static Background {
    STATE.get()
}

/// How long a busy directory is retried before it is left to `gc`.
const GIVE_UP_AFTER: Duration = Duration::from_secs(5);

/// How long [`cleanup`] and the exit handler wait for directories the kernel still holds.
/// It is reached only when something keeps an exited task pinned (a monitor scanning
/// `/proc` makes v1 `rmdir` return `EBUSY` for some milliseconds); what is left then is
/// `gc`'s.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(2);

fn queue() -> MutexGuard<'static, Queue> {
    state().queue.lock().unwrap_or_else(|e| e.into_inner())
}

/// Has a flush clear `hook` (once, however often it is registered).
pub(super) fn on_flush(hook: &'static (dyn Flush + Sync)) {
    let mut hooks = state().hooks.lock().unwrap_or_else(|e| e.into_inner());
    if !hooks.iter().any(|h| std::ptr::addr_eq(*h, hook)) {
        hooks.push(hook);
    }
}

fn submit(jobs: impl IntoIterator<Item = Job>) {
    state().start.call_once(|| {
        if std::thread::Builder::new().name("isolette-cgroup".into()).spawn(run).is_ok() {
            // Once per process: a child of fork runs its parent's handler too, which
            // flushes the child's own state.
            static AT_EXIT: Once = Once::new();
            AT_EXIT.call_once(|| crate::sys::at_exit(flush_at_exit));
        }
    });
    queue().jobs.extend(jobs);
    state().wake.notify_one();
}

/// Removes the empty directories `dirs` (deepest first): at once while this process has
/// no background thread yet (a one-shot caller such as the CLI gains nothing from one, and
/// would pay for starting it), else, and for what is still busy, in the background.
pub(crate) fn remove_dirs(mut dirs: Vec<PathBuf>) {
    if !STATE.is_made() || !state().start.is_completed() {
        dirs.retain(|d| !try_remove(d));
        if dirs.is_empty() {
            return;
        }
    }
    remove_later(dirs);
}

/// Whether this process has its background thread: it ran sandboxes before, and work
/// handed to [`run_later`] then leaves the caller's path.
pub(crate) fn running() -> bool {
    STATE.is_made() && state().start.is_completed()
}

/// Runs `work` on the background thread (starting it if need be). A flush does not run
/// what is still queued.
pub(super) fn run_later(work: impl FnOnce() + Send + 'static) {
    submit([Job::Run(Box::new(work))]);
}

/// Lets go of `held` (a finished run's hold on its mount namespace) on the background
/// thread when this process has one, else at once.
pub(crate) fn release_later(held: impl Send + 'static) {
    if running() {
        run_later(move || drop(held));
    }
}

/// Queues `dirs` (deepest first) for removal.
fn remove_later(dirs: Vec<PathBuf>) {
    let now = Instant::now();
    submit(dirs.into_iter().map(|d| Job::Remove(d, now)));
}

/// Removes an empty directory; whether it is gone (`false`: busy, try again).
pub(crate) fn try_remove(dir: &std::path::Path) -> bool {
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

fn run() {
    loop {
        let batch = {
            let mut q = queue();
            while q.jobs.is_empty() {
                q = state().wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            q.in_flight = q.jobs.len();
            std::mem::take(&mut q.jobs)
        };
        let mut busy = Vec::new();
        for job in batch {
            match job {
                Job::Remove(dir, queued) => {
                    if !try_remove(&dir) && queued.elapsed() < GIVE_UP_AFTER {
                        busy.push(Job::Remove(dir, queued));
                    }
                }
                // A spare made here that a flush made unwanted drops inside this batch
                // and queues its removal, so the flush waits for that too.
                Job::Run(work) => work(),
            }
        }
        let retry = !busy.is_empty();
        {
            let mut q = queue();
            q.jobs.extend(busy);
            q.in_flight = 0;
        }
        state().idle.notify_all();
        if retry {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Clears the spares and removes whatever is queued or being removed, retrying busy
/// directories until `deadline`. Returns when nothing is left, both in the queue and in
/// the thread's hands, or at the deadline.
fn flush(deadline: Instant) {
    if !STATE.is_made() {
        return;
    }
    let hooks = state().hooks.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // Dropping a spare may queue its directories.
    for hook in hooks {
        hook.clear();
    }
    let mut q = queue();
    loop {
        q.jobs.retain(|job| match job {
            Job::Remove(dir, _) => !try_remove(dir),
            Job::Run(_) => false,
        });
        let now = Instant::now();
        if (q.jobs.is_empty() && q.in_flight == 0) || now >= deadline {
            return;
        }
        // Woken when the thread finishes its batch; otherwise retry busy ones shortly.
        let wait = deadline.saturating_duration_since(now).min(Duration::from_millis(2));
        q = state().idle.wait_timeout(q, wait).unwrap_or_else(|e| e.into_inner()).0;
    }
}

extern "C" fn flush_at_exit() {
    flush(Instant::now() + FLUSH_TIMEOUT);
}

/// Removes this process's spares (cgroups and network namespaces made ahead for its next
/// run) and finishes every removal still queued or under way, waiting up to two seconds
/// for busy ones. It happens by itself at normal process exit; call it before a long idle
/// period, or to check from a test that nothing else is left.
pub fn cleanup() {
    flush(Instant::now() + FLUSH_TIMEOUT);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread takes the whole queue at once: a flush that came then used to find the
    /// queue empty and return while the thread was still removing (the process then
    /// exited and left cgroups behind). Plain empty directories stand in for cgroups here.
    #[test]
    fn flush_waits_for_the_removals_the_thread_has_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..2000).map(|i| tmp.path().join(i.to_string())).collect();
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
        }
        remove_later(dirs.clone());
        // Wait until the thread holds the batch: the queue is empty, the work is not done.
        while !queue().jobs.is_empty() {
            std::hint::spin_loop();
        }
        flush(Instant::now() + Duration::from_secs(10));
        let left = dirs.iter().filter(|d| d.exists()).count();
        assert_eq!(left, 0, "flush returned while the thread still had directories to remove");
    }
}
