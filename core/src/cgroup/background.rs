//! Cgroup work kept off the caller's critical path, done by one background thread.
//!
//! - **Removal.** `rmdir` of a cgroup whose last task has just exited costs tens of
//!   microseconds, and on v1 it may fail with `EBUSY` for milliseconds while the kernel
//!   lets go of the task. A run hands its directories over and returns at once; busy ones
//!   are retried for up to 5 s.
//! - **Spares.** Creating and limiting a run's cgroups costs a few hundred microseconds on
//!   v1. Once a process has run a sandbox, a fresh spare cgroup with the same limits is
//!   made ahead of its next run (a single run, as from the CLI, makes none). Spares are
//!   never reused: a run's page cache and counters stay behind in its own cgroup, so no
//!   run's figures leak into the next.
//!
//! - **Mount namespaces.** The last reference to a sandbox's mount namespace unmounts its
//!   tree, which waits for an expedited RCU grace period. When the sandbox's init holds it,
//!   the run waits for that before it can reap the init; a caller that runs again and
//!   again has the namespace held by an fd instead, which this thread closes.
//!
//! - **Network namespaces** made ahead for a caller's next run (`network/spare.rs`).
//!
//! At process exit an `atexit` handler removes the spares and finishes the queue,
//! including the removals the thread is in the middle of, so a short-lived caller leaves
//! nothing behind; what a killed caller leaves is for [`gc`](super::gc).
//!
//! All of it is per process (`forked.rs`): the child of a prefork server starts with an
//! empty queue, no spares and no thread, and starts its own thread when it needs one.

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use super::{Guard, Limits, make, try_remove};
use crate::forked::ProcessLocal;

enum Job {
    /// A directory to remove, and when it was queued.
    Remove(PathBuf, Instant),
    /// Make a spare cgroup with these limits, unless a flush came after the request
    /// (the generation then differs).
    Spare(Limits, u64),
    /// Work of another module done here: a spare network namespace made, a finished
    /// run's hold on its mount namespace let go. A flush drops it unrun.
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
    /// Spare cgroups, with the limits they carry, and the flush generation (bumped by every
    /// flush, under this lock, so a spare made while a flush ran is dropped, not kept).
    spares: Mutex<(Vec<(Limits, Guard)>, u64)>,
}

static STATE: ProcessLocal<Background> = ProcessLocal::new(|| Background {
    queue: Mutex::new(Queue { jobs: Vec::new(), in_flight: 0 }),
    wake: Condvar::new(),
    idle: Condvar::new(),
    start: Once::new(),
    spares: Mutex::new((Vec::new(), 0)),
});

fn state() -> &'static Background {
    STATE.get()
}

/// How long a busy directory is retried before it is left to `gc`.
const GIVE_UP_AFTER: Duration = Duration::from_secs(5);
/// Spares kept at most: about one per caller thread running at once.
const MAX_SPARES: usize = 2;

fn queue() -> MutexGuard<'static, Queue> {
    state().queue.lock().unwrap_or_else(|e| e.into_inner())
}

fn spares() -> MutexGuard<'static, (Vec<(Limits, Guard)>, u64)> {
    state().spares.lock().unwrap_or_else(|e| e.into_inner())
}

fn submit(jobs: impl IntoIterator<Item = Job>) {
    state().start.call_once(|| {
        if std::thread::Builder::new().name("isolette-cgroup".into()).spawn(run).is_ok() {
            // Once per process: a child of fork runs its parent's handler too, which
            // flushes the child's own state.
            static AT_EXIT: Once = Once::new();
            AT_EXIT.call_once(|| crate::spawn::at_exit(flush_at_exit));
        }
    });
    queue().jobs.extend(jobs);
    state().wake.notify_one();
}

/// Removes `dirs` (deepest first): at once while this process has no background thread
/// yet (a one-shot caller such as the CLI gains nothing from one, and would pay for
/// starting it), else, and for what is still busy, in the background.
pub(super) fn remove(mut dirs: Vec<PathBuf>) {
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
pub(super) fn running() -> bool {
    STATE.is_made() && state().start.is_completed()
}

/// Runs `work` on the background thread (starting it if need be). A flush does not run
/// what is still queued.
pub(super) fn run_later(work: Box<dyn FnOnce() + Send>) {
    submit([Job::Run(work)]);
}

/// Queues `dirs` (deepest first) for removal.
pub(super) fn remove_later(dirs: Vec<PathBuf>) {
    let now = Instant::now();
    submit(dirs.into_iter().map(|d| Job::Remove(d, now)));
}

/// Asks for a spare cgroup with `limits`, for the caller's next run.
pub(super) fn prepare_spare(limits: &Limits) {
    let generation = spares().1;
    submit([Job::Spare(limits.clone(), generation)]);
}

/// A spare made for exactly these limits, if there is one.
pub(super) fn take_spare(limits: &Limits) -> Option<Guard> {
    let mut spares = spares();
    let i = spares.0.iter().position(|(l, _)| l == limits)?;
    Some(spares.0.swap_remove(i).1)
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
                Job::Run(work) => work(),
                Job::Spare(limits, generation) => {
                    if spares().0.len() < MAX_SPARES
                        && let Ok(guard) = make(&limits)
                    {
                        let mut spares = spares();
                        if spares.1 == generation && spares.0.len() < MAX_SPARES {
                            spares.0.push((limits, guard));
                        }
                        // Otherwise the guard drops here (after the lock) and queues its
                        // removal, still inside this batch, so a flush waits for it.
                    }
                }
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

/// Drops the spares and removes whatever is queued or being removed, retrying busy
/// directories until `deadline`. Returns when nothing is left, both in the queue and in
/// the thread's hands, or at the deadline.
pub(super) fn flush(deadline: Instant) {
    crate::network::spare::clear();
    // Dropping a spare's guard queues its directories.
    let taken = {
        let mut spares = spares();
        spares.1 += 1;
        std::mem::take(&mut spares.0)
    };
    drop(taken);
    let mut q = queue();
    loop {
        q.jobs.retain(|job| match job {
            Job::Remove(dir, _) => !try_remove(dir),
            Job::Spare(..) | Job::Run(_) => false,
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
    flush(Instant::now() + super::FLUSH_TIMEOUT);
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
