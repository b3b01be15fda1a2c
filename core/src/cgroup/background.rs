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
//! At process exit an `atexit` handler removes the spares and finishes the queue, so a
//! short-lived caller leaves nothing behind; what a killed caller leaves is for
//! [`gc`](super::gc).

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, Once};
use std::time::{Duration, Instant};

use super::{Guard, Limits, make, try_remove};

enum Job {
    /// A directory to remove, and when it was queued.
    Remove(PathBuf, Instant),
    /// Make a spare cgroup with these limits, unless a flush came after the request
    /// (the generation then differs).
    Spare(Limits, u64),
}

static JOBS: Mutex<Vec<Job>> = Mutex::new(Vec::new());
static WAKE: Condvar = Condvar::new();
static START: Once = Once::new();
/// Spare cgroups, with the limits they carry, and the flush generation (bumped by every
/// flush, under this lock, so a spare made while a flush ran is dropped, not kept).
static SPARES: Mutex<(Vec<(Limits, Guard)>, u64)> = Mutex::new((Vec::new(), 0));

/// How long a busy directory is retried before it is left to `gc`.
const GIVE_UP_AFTER: Duration = Duration::from_secs(5);
/// Spares kept at most: about one per caller thread running at once.
const MAX_SPARES: usize = 2;

fn submit(jobs: impl IntoIterator<Item = Job>) {
    START.call_once(|| {
        if std::thread::Builder::new().name("isolette-cgroup".into()).spawn(run).is_ok() {
            crate::spawn::at_exit(flush_at_exit);
        }
    });
    JOBS.lock().unwrap_or_else(|e| e.into_inner()).extend(jobs);
    WAKE.notify_one();
}

/// Queues `dirs` (deepest first) for removal.
pub(super) fn remove_later(dirs: Vec<PathBuf>) {
    let now = Instant::now();
    submit(dirs.into_iter().map(|d| Job::Remove(d, now)));
}

/// Asks for a spare cgroup with `limits`, for the caller's next run.
pub(super) fn prepare_spare(limits: &Limits) {
    let generation = SPARES.lock().unwrap_or_else(|e| e.into_inner()).1;
    submit([Job::Spare(limits.clone(), generation)]);
}

/// A spare made for exactly these limits, if there is one.
pub(super) fn take_spare(limits: &Limits) -> Option<Guard> {
    let mut spares = SPARES.lock().unwrap_or_else(|e| e.into_inner());
    let i = spares.0.iter().position(|(l, _)| l == limits)?;
    Some(spares.0.swap_remove(i).1)
}

fn run() {
    loop {
        let batch = {
            let mut jobs = JOBS.lock().unwrap_or_else(|e| e.into_inner());
            while jobs.is_empty() {
                jobs = WAKE.wait(jobs).unwrap_or_else(|e| e.into_inner());
            }
            std::mem::take(&mut *jobs)
        };
        let mut busy = Vec::new();
        for job in batch {
            match job {
                Job::Remove(dir, queued) => {
                    if !try_remove(&dir) && queued.elapsed() < GIVE_UP_AFTER {
                        busy.push(Job::Remove(dir, queued));
                    }
                }
                Job::Spare(limits, generation) => {
                    if SPARES.lock().unwrap_or_else(|e| e.into_inner()).0.len() < MAX_SPARES
                        && let Ok(guard) = make(&limits)
                    {
                        let mut spares = SPARES.lock().unwrap_or_else(|e| e.into_inner());
                        if spares.1 == generation && spares.0.len() < MAX_SPARES {
                            spares.0.push((limits, guard));
                        }
                        // Otherwise the guard drops here (after the lock) and queues its removal.
                    }
                }
            }
        }
        if !busy.is_empty() {
            JOBS.lock().unwrap_or_else(|e| e.into_inner()).extend(busy);
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Drops the spares and removes whatever is queued, retrying busy directories a little.
pub(super) fn flush(deadline: Instant) {
    // Dropping a spare's guard queues its directories.
    let spares = {
        let mut spares = SPARES.lock().unwrap_or_else(|e| e.into_inner());
        spares.1 += 1;
        std::mem::take(&mut spares.0)
    };
    drop(spares);
    loop {
        let mut jobs = JOBS.lock().unwrap_or_else(|e| e.into_inner());
        jobs.retain(|job| match job {
            Job::Remove(dir, _) => !try_remove(dir),
            Job::Spare(..) => false,
        });
        if jobs.is_empty() || Instant::now() >= deadline {
            return;
        }
        drop(jobs);
        std::thread::sleep(Duration::from_millis(1));
    }
}

extern "C" fn flush_at_exit() {
    flush(Instant::now() + Duration::from_millis(500));
}
