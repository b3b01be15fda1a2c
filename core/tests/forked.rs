//! A prefork server: the library used in a parent, which then forks a worker (as gunicorn,
//! Celery and Python's multiprocessing do). The worker's runs work and leave nothing; the
//! copies of the parent's handles it got never touch the parent's sandboxes.

mod common;

use std::time::Duration;

use common::{busybox, require_root};
use isolette::{Sandbox, Status};

#[test]
fn a_forked_worker_runs_sandboxes_and_leaves_the_parents_alone() {
    require_root!();
    let image = busybox!();
    // The parent: runs (so the cgroup thread and a spare exist), a pool, and a run going on.
    for _ in 0..3 {
        assert_eq!(Sandbox::builder(&image).run(["/bin/true"]).unwrap().status, Status::Ok);
    }
    let pool = Sandbox::builder(&image).pool(1).unwrap();
    assert!(pool.wait_ready(Duration::from_secs(10)));
    let running = Sandbox::builder(&image).wall_time(Duration::from_secs(30)).spawn(["/bin/sleep", "20"]).unwrap();

    // The parent holds the running sandbox's mount namespace (so that its end does not
    // wait for the unmounts) and spare network namespaces for its next runs; the worker
    // must not keep a copy of any of them.
    assert!(namespace_fds("mnt") >= 1, "the parent holds the running sandbox's mount namespace");
    // (The spare is made on the background thread: wait for it.)
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while namespace_fds("net") == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(namespace_fds("net") >= 1, "the parent has a spare network namespace");

    // SAFETY: the child runs sandboxes and ends with `_exit`; it shares nothing with the
    // parent's threads but the copies fork made.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut ok = namespace_fds("mnt") == 0 && namespace_fds("net") == 0;
            for _ in 0..5 {
                let out = Sandbox::builder(&image).memory(64 << 20).run(["/bin/echo", "child"]).unwrap();
                ok &= out.status == Status::Ok && out.stdout == b"child\n" && !out.approximate;
            }
            // The copies of the parent's pool run cold, and dropping them and the run's
            // handle does not end the parent's sandboxes.
            let out = pool.builder().run(["/bin/true"]).unwrap();
            ok &= out.status == Status::Ok && pool.served() == (0, 1);
            drop(pool);
            drop(running);
            isolette::cleanup();
            ok
        }));
        // SAFETY: ends the child without the test harness's exit path.
        unsafe { libc::_exit(if code.unwrap_or(false) { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0, "the worker failed: {status:#x}");

    // The parent's run and pool are untouched.
    assert!(running.try_wait().unwrap().is_none(), "the worker's copy ended the parent's run");
    assert_eq!(pool.builder().run(["/bin/true"]).unwrap().status, Status::Ok);
    assert_eq!(pool.served().0, 1, "the parent's pool still serves warm");
    running.kill();
    assert_eq!(running.wait().unwrap().status, Status::Cancelled);
    drop(pool);
    isolette::cleanup();
    common::assert_no_own_cgroups();
}

/// This process's fds open on a namespace of `kind` (`mnt`, `net`).
fn namespace_fds(kind: &str) -> usize {
    let prefix = format!("{kind}:[");
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().starts_with(&prefix)))
        .count()
}
