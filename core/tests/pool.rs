//! Warm sandboxes (`Pool`): the same isolation, limits and verdicts as a cold run, each
//! sandbox used once, and nothing left when the pool goes.

mod common;

use std::time::Duration;

use common::{Footprint, busybox, marked_processes, marker, probe, require_root, stdout};
use isolette::{Error, Sandbox, Status};

const READY: Duration = Duration::from_secs(10);

#[test]
fn warm_runs_behave_as_cold_ones() {
    require_root!();
    let image = busybox!();
    // Serial: the footprint test counts what the whole process holds.
    let _serial = common::serial();
    let pool = Sandbox::builder(&image).pool(2).unwrap();
    assert!(pool.wait_ready(READY), "{pool:?}");
    let b = pool.builder();
    // The refill runs at idle priority, so on a busy machine it may lag: each run here
    // waits for a ready sandbox, to test warm runs and not a race.
    let probe = |b: &isolette::SandboxBuilder, args: &[&str]| {
        assert!(pool.wait_ready(READY));
        probe(b, args)
    };
    let out = probe(&b, &["id"]);
    assert!(stdout(&out).starts_with("uid=60000 gid=60000"), "{}", stdout(&out));
    let out = probe(&b.clone().stdin("hello"), &["stdin-echo"]);
    assert_eq!((out.status, stdout(&out)), (Status::Ok, "hello".into()));
    let out = probe(&b, &["pids"]);
    assert_eq!(stdout(&out), "1 2\n", "the init and the program only");
    // Limits set by the request apply to the warm sandbox's cgroup.
    let out = probe(&b.clone().memory(32 << 20), &["memhog", "64M"]);
    assert_eq!(out.status, Status::MemoryLimit);
    let out = probe(&b.clone().wall_time(Duration::from_millis(200)), &["sleep", "5"]);
    assert_eq!(out.status, Status::WallTimeLimit);
    // The request's own bind mounts, environment and working directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.txt"), "from the host").unwrap();
    let out = probe(&b.clone().mount_ro(dir.path(), "/data").workdir("/data").env("K", "v"), &["cat", "input.txt"]);
    assert_eq!(stdout(&out), "from the host");
    let out = probe(&b.clone().env("K", "v"), &["env"]);
    assert!(stdout(&out).lines().any(|l| l == "K=v"));
    // The program runs at the ordinary priority, not the refill thread's idle one
    // (proc(5): field 19 is nice, field 41 the policy; SCHED_OTHER is 0).
    let out = probe(&b, &["cat", "/proc/self/stat"]);
    let stat = stdout(&out);
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    assert_eq!((fields[19 - 3], fields[41 - 3]), ("0", "0"), "{stat}");
    // Setup errors are errors, as cold.
    assert!(pool.wait_ready(READY));
    assert!(matches!(b.run(["no-such-command"]), Err(Error::CommandNotFound { .. })));
    // The request with a bind mount found only parked sandboxes (init exec'd ahead, made
    // since the first request, which needed none): it ran cold (`a_pool_follows_...`).
    assert_eq!(pool.served(), (8, 1));
}

#[test]
fn a_pool_follows_what_its_requests_need() {
    require_root!();
    let image = busybox!();
    let _serial = common::serial();
    let pool = Sandbox::builder(&image).pool(1).unwrap();
    let b = pool.builder();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("input.txt"), "from the host").unwrap();
    let with_mount = b.clone().mount_ro(dir.path(), "/data");
    let run = |b: &isolette::SandboxBuilder, args: &[&str]| {
        assert!(pool.wait_ready(READY), "{pool:?}");
        probe(b, args)
    };
    let sh = |b: &isolette::SandboxBuilder, script: &str| {
        assert!(pool.wait_ready(READY), "{pool:?}");
        b.run(["sh", "-c", script]).unwrap()
    };
    // The first sandbox waits before the mounts; a request without any of its own makes
    // the pool park the next ones (their init exec'd, waiting for the request).
    assert_eq!(run(&b, &["exit", "0"]).status, Status::Ok);
    assert_eq!(pool.served(), (1, 0));
    // A parked sandbox serves what fits it, with the request's own rlimits, environment,
    // working directory, stdin and limits...
    let parked = b.clone().nofile(77).env("K", "v").workdir("/tmp").stdin("in").memory(32 << 20);
    let out = sh(&parked, "ulimit -n; echo $K; pwd; cat; echo");
    assert_eq!((out.status, stdout(&out)), (Status::Ok, "77\nv\n/tmp\nin\n".into()));
    assert_eq!(run(&parked, &["memhog", "64M"]).status, Status::MemoryLimit);
    let out = run(&b.clone().cpu_time(Duration::from_millis(300)), &["spin", "5"]);
    assert_eq!(out.status, Status::CpuTimeLimit);
    assert_eq!(run(&b, &["pids"]).stdout, b"1 2\n", "the init and the program only");
    assert_eq!(pool.served(), (5, 0));
    // ...but not one with a mount: that one runs cold, and the next sandbox waits before
    // the mounts again, so the next such request is warm.
    assert_eq!(stdout(&run(&with_mount, &["cat", "/data/input.txt"])), "from the host");
    assert_eq!(pool.served(), (5, 1));
    assert_eq!(stdout(&run(&with_mount, &["cat", "/data/input.txt"])), "from the host");
    assert_eq!(pool.served(), (6, 1));
    // A hostname of its own does not fit a parked sandbox either.
    assert_eq!(run(&b, &["exit", "0"]).status, Status::Ok);
    let out = sh(&b.clone().hostname("judge-7"), "hostname");
    assert_eq!(stdout(&out), "judge-7\n");
    assert_eq!(pool.served(), (7, 2));
}

#[test]
fn each_sandbox_serves_one_run() {
    require_root!();
    let image = busybox!();
    // Serial: the footprint test counts what the whole process holds.
    let _serial = common::serial();
    let pool = Sandbox::builder(&image).pool(2).unwrap();
    let b = pool.builder();
    for i in 0..6 {
        assert!(pool.wait_ready(READY));
        let out = probe(&b, &["ls", "/tmp/left-by-a-run"]);
        assert_eq!(out.status, Status::RuntimeError, "run {i} sees nothing of an earlier one");
        let out = probe(&b, &["write-file", "/tmp/left-by-a-run", "x"]);
        assert_eq!(out.status, Status::Ok);
    }
    assert_eq!(pool.served().1, 0, "every run was warm");
}

#[test]
fn a_bad_pool_is_refused_with_a_config_error() {
    require_root!();
    let image = busybox!();
    for size in [0, 65] {
        assert!(matches!(Sandbox::builder(&image).pool(size), Err(Error::Config(_))), "{size}");
    }
    // A base config that every request would fail on is refused at once, too.
    assert!(matches!(Sandbox::builder(&image).wall_time(Duration::ZERO).pool(1), Err(Error::Config(_))));
}

#[test]
fn a_request_that_does_not_fit_runs_cold() {
    require_root!();
    let image = busybox!();
    // Serial: the footprint test counts what the whole process holds.
    let _serial = common::serial();
    let pool = Sandbox::builder(&image).pool(1).unwrap();
    assert!(pool.wait_ready(READY));
    let out = probe(&pool.builder().tmpfs_size(1 << 20), &["exit", "3"]);
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(pool.served(), (0, 1));
    assert_eq!(pool.ready(), 1, "the warm sandbox is still there for a request that fits");
}

#[test]
fn nothing_is_left_when_the_pool_goes() {
    require_root!();
    let image = busybox!();
    let _serial = common::serial();
    let before = Footprint::warm(&image);
    let mark = marker();
    let pool = Sandbox::builder(&image).env(&mark.0, &mark.1).pool(3).unwrap();
    assert!(pool.wait_ready(READY));
    for _ in 0..20 {
        assert_eq!(probe(&pool.builder(), &["exit", "0"]).status, Status::Ok);
    }
    assert!(pool.wait_ready(READY));
    drop(pool);
    assert!(marked_processes(&mark).is_empty(), "the waiting sandboxes died with the pool");
    assert_eq!(Footprint::now(), before);
    common::assert_no_own_cgroups();
}

/// The scheduling policy of this process's thread named `name` (proc(5): field 41 of its
/// `stat`; SCHED_OTHER is 0, SCHED_IDLE 5), if there is one.
fn thread_policy(name: &str) -> Option<String> {
    std::fs::read_dir("/proc/self/task").unwrap().flatten().find_map(|t| {
        let comm = std::fs::read_to_string(t.path().join("comm")).ok()?;
        if comm.trim_end() != name {
            return None;
        }
        let stat = std::fs::read_to_string(t.path().join("stat")).ok()?;
        Some(stat[stat.rfind(')')? + 2..].split(' ').nth(41 - 3)?.to_string())
    })
}

#[test]
fn the_refill_idles_once_the_pool_is_full_and_again_after_requests_drain_it() {
    require_root!();
    let image = busybox!();
    let _serial = common::serial();
    let pool = Sandbox::builder(&image).pool(1).unwrap();
    let idles = || {
        // It goes idle just after the last sandbox is in: allow it that moment.
        let deadline = std::time::Instant::now() + READY;
        while thread_policy("isolette-pool").as_deref() != Some("5") {
            assert!(
                std::time::Instant::now() < deadline,
                "the refill never went idle: {:?}",
                thread_policy("isolette-pool")
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    assert!(pool.wait_ready(READY));
    idles();
    // Requests back to back drain a pool of one: those that find it empty run cold and
    // give the refill the ordinary priority until the pool is full again (what that is
    // worth under load, the side-by-side bench measures: a timed test would be flaky).
    let b = pool.builder();
    for _ in 0..20 {
        assert_eq!(b.run(["/bin/true"]).unwrap().status, Status::Ok);
    }
    let (warm, cold) = pool.served();
    assert_eq!(warm + cold, 20);
    assert!(pool.wait_ready(READY));
    idles();
}
