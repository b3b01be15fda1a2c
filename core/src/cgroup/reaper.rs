//! Removes finished runs' cgroups off the caller's critical path.
//!
//! `rmdir` of a cgroup whose last task has just exited costs tens of microseconds, and on
//! v1 may fail with `EBUSY` for milliseconds while the kernel lets go of the task. A run
//! hands its directories to one background thread and returns at once; that thread retries
//! busy ones for up to 5 s. At process exit an `atexit` handler finishes the queue, so a
//! short-lived caller (the CLI) leaves nothing behind either; what a killed caller leaves is
//! for [`gc`](super::gc).

use std::path::PathBuf;
use std::sync::{Condvar, Mutex, Once};
use std::time::{Duration, Instant};

use super::try_remove;

/// Directories waiting for removal, with when each was queued.
static QUEUE: Mutex<Vec<(PathBuf, Instant)>> = Mutex::new(Vec::new());
static WAKE: Condvar = Condvar::new();
static START: Once = Once::new();

/// How long a busy directory is retried before it is left to `gc`.
const GIVE_UP_AFTER: Duration = Duration::from_secs(5);

/// Queues `dirs` (deepest first) for removal.
pub(super) fn remove_later(dirs: Vec<PathBuf>) {
    START.call_once(|| {
        let started = std::thread::Builder::new().name("isolette-cgroup-rm".into()).spawn(run).is_ok();
        if started {
            crate::spawn::at_exit(flush_at_exit);
        }
    });
    let now = Instant::now();
    let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    queue.extend(dirs.into_iter().map(|d| (d, now)));
    WAKE.notify_one();
}

fn run() {
    loop {
        let batch = {
            let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
            while queue.is_empty() {
                queue = WAKE.wait(queue).unwrap_or_else(|e| e.into_inner());
            }
            std::mem::take(&mut *queue)
        };
        let busy: Vec<_> =
            batch.into_iter().filter(|(dir, queued)| !try_remove(dir) && queued.elapsed() < GIVE_UP_AFTER).collect();
        if !busy.is_empty() {
            QUEUE.lock().unwrap_or_else(|e| e.into_inner()).extend(busy);
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// Removes whatever is queued, retrying busy directories for a little while.
fn flush(deadline: Instant) {
    loop {
        let mut queue = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
        queue.retain(|(dir, _)| !try_remove(dir));
        if queue.is_empty() || Instant::now() >= deadline {
            return;
        }
        drop(queue);
        std::thread::sleep(Duration::from_millis(1));
    }
}

extern "C" fn flush_at_exit() {
    flush(Instant::now() + Duration::from_millis(500));
}
