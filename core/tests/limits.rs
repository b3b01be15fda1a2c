//! Limits and accounting with known answers, on the real kernel's cgroups. Every test
//! checks that no cgroup of ours is left afterwards.

mod common;

use std::time::Duration;

use common::{assert_no_own_cgroups, busybox, probe, require_root, serial};
use isolette::{Sandbox, Status};

const MIB: u64 = 1 << 20;

#[test]
fn cpu_time_limit_one_spinner_and_four() {
    require_root!();
    let image = busybox!();
    let _serial = serial();
    for spinners in ["1", "4"] {
        let b = Sandbox::builder(&image).cpu_time(Duration::from_millis(500));
        let out = probe(&b, &["spin", spinners]);
        assert_eq!(out.status, Status::CpuTimeLimit, "{spinners} spinner(s)");
        assert!(!out.approximate);
        let ms = out.cpu_time.as_millis();
        assert!((500..=560).contains(&ms), "{spinners} spinner(s): {ms} ms of cpu");
    }
    assert_no_own_cgroups();
}

#[test]
fn memory_limit_and_peak() {
    require_root!();
    let image = busybox!();
    let _serial = serial();
    let out = probe(&Sandbox::builder(&image).memory(128 * MIB), &["memhog", "200M"]);
    assert_eq!(out.status, Status::MemoryLimit, "{out:?}");
    let out = probe(&Sandbox::builder(&image).memory(256 * MIB), &["memhog", "200M"]);
    assert_eq!(out.status, Status::Ok, "{out:?}");
    let peak = out.memory_peak / MIB;
    assert!((200..=220).contains(&peak), "peak {peak} MiB");
    assert_no_own_cgroups();
}

#[test]
fn fork_bomb_is_contained() {
    require_root!();
    let image = busybox!();
    let _serial = serial();
    let mark = common::marker();
    let b = Sandbox::builder(&image).pids(32).wall_time(Duration::from_secs(1)).env(&mark.0, &mark.1);
    let out = probe(&b, &["forkbomb"]);
    assert_eq!(out.status, Status::WallTimeLimit);
    assert!(common::marked_processes(&mark).is_empty(), "every bomb process is gone");
    // The host can still fork: the limit held inside.
    assert!(std::process::Command::new("true").status().unwrap().success());
    assert_no_own_cgroups();
}

#[test]
fn pids_limit_fails_fork_inside_and_the_run_goes_on() {
    require_root!();
    let image = busybox!();
    let _serial = serial();
    let b = Sandbox::builder(&image).pids(3);
    let out = b.run(["/bin/sh", "-c", "for i in 1 2 3 4 5; do sleep 1 & done; echo done"]).unwrap();
    // The shell gets EAGAIN from fork and gives up by itself: not a verdict of ours.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("can't fork: Resource temporarily unavailable"), "{stderr}");
    assert_eq!(out.status, Status::RuntimeError);
    assert!(out.wall_time < Duration::from_millis(900), "ended on its own, not by a limit");
    assert_no_own_cgroups();
}

#[test]
fn file_size_limit_is_an_output_limit() {
    require_root!();
    let image = busybox!();
    let _serial = serial();
    let out = Sandbox::builder(&image).fsize(1000).run(["/bin/sh", "-c", "head -c 5000 /dev/zero > /tmp/x"]).unwrap();
    assert_eq!((out.status, out.signal), (Status::OutputLimit, Some(libc::SIGXFSZ)));
    assert_no_own_cgroups();
}

#[test]
fn cpu_quota_slows_a_spinner_down() {
    require_root!();
    let image = busybox!();
    let _serial = serial();
    let out = probe(&Sandbox::builder(&image).cpus(0.25).wall_time(Duration::from_millis(800)), &["spin"]);
    assert_eq!(out.status, Status::WallTimeLimit);
    let ms = out.cpu_time.as_millis();
    assert!((100..=350).contains(&ms), "a quarter core for 0.8 s gave {ms} ms of cpu");
    let out = probe(&Sandbox::builder(&image).cpuset("0"), &["exit", "0"]);
    assert_eq!(out.status, Status::Ok);
    assert_no_own_cgroups();
}

#[test]
fn accounting_covers_the_whole_tree() {
    require_root!();
    let image = busybox!();
    let _serial = serial();
    // Two children each hold 60 MiB at the same time: the tree's peak is over 100.
    let out = Sandbox::builder(&image)
        .run(["/bin/sh", "-c", "isolette-probe memhog 60M 0.3 & isolette-probe memhog 60M 0.3 & wait"])
        .unwrap();
    assert_eq!(out.status, Status::Ok);
    assert!(!out.approximate);
    assert!(out.memory_peak >= 100 * MIB, "peak {} MiB", out.memory_peak / MIB);
    assert_no_own_cgroups();
}

#[test]
fn gc_removes_what_a_dead_caller_left() {
    require_root!();
    let _serial = serial();
    let Some(parent) = ["/sys/fs/cgroup/memory/isolette", "/sys/fs/cgroup/isolette"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.parent().is_some_and(|m| m.join("cgroup.procs").exists()))
    else {
        common::skip("gc_removes_what_a_dead_caller_left", "no memory cgroup hierarchy");
        return;
    };
    std::fs::create_dir_all(&parent).unwrap();
    // Named like a run of a process that no longer exists.
    let dead = parent.join("999999999-1-0");
    std::fs::create_dir(&dead).unwrap();
    let report = isolette::gc().unwrap();
    assert!(report.removed.contains(&dead), "{report:?}");
    assert!(!dead.exists());
}
