//! Nothing outlives a run: no process, fd or mount, after many runs, timeouts, daemons and
//! concurrent runs. The tests here take one lock, since they count what the process holds.

mod common;

use std::time::Duration;

use common::{Footprint, busybox, marked_processes, marker, probe, require_root, stdout};
use isolette::{Sandbox, Status};

#[test]
fn nothing_left_after_200_runs() {
    require_root!();
    let image = busybox!();
    let _serial = common::serial();
    let mark = marker();
    let b = Sandbox::builder(&image).env(&mark.0, &mark.1);
    probe(&b, &["exit", "0"]);
    let before = Footprint::now();
    for i in 0..200 {
        let out = probe(&b, &["exit", &(i % 5).to_string()]);
        assert_eq!(out.exit_code, Some(i % 5));
    }
    assert_eq!(Footprint::now(), before);
    common::assert_no_own_cgroups();
    assert!(marked_processes(&mark).is_empty());
}

#[test]
fn nothing_left_after_a_timeout_or_a_daemon() {
    require_root!();
    let image = busybox!();
    let _serial = common::serial();
    let before = Footprint::warm(&image);
    let mark = marker();
    let b = Sandbox::builder(&image).env(&mark.0, &mark.1);
    let out = probe(&b.clone().wall_time(Duration::from_millis(200)), &["spin", "3"]);
    assert_eq!(out.status, Status::WallTimeLimit);
    assert!(marked_processes(&mark).is_empty(), "the spinners died with their sandbox");
    let out = probe(&b, &["daemon"]);
    assert_eq!(out.status, Status::Ok, "{}", stdout(&out));
    assert!(marked_processes(&mark).is_empty(), "the daemon died with its sandbox");
    assert_eq!(Footprint::now(), before);
    common::assert_no_own_cgroups();
}

#[test]
fn errors_leave_nothing_either() {
    require_root!();
    let image = busybox!();
    let _serial = common::serial();
    let before = Footprint::warm(&image);
    for _ in 0..20 {
        assert!(Sandbox::run(&image, ["no-such-command"]).is_err());
        assert!(Sandbox::builder(&image).workdir("/nope").run(["true"]).is_err());
    }
    assert_eq!(Footprint::now(), before);
    common::assert_no_own_cgroups();
}

#[test]
fn concurrent_runs_from_8_threads() {
    require_root!();
    let image = busybox!();
    let _serial = common::serial();
    let before = Footprint::warm(&image);
    std::thread::scope(|s| {
        for t in 0..8 {
            let image = &image;
            s.spawn(move || {
                let b = Sandbox::builder(image);
                for i in 0..25 {
                    let n = (t * 100 + i) % 256;
                    let out = probe(&b.clone().stdin(format!("{t}-{i}")), &["stdin-echo"]);
                    assert_eq!((out.status, stdout(&out)), (Status::Ok, format!("{t}-{i}")));
                    let out = probe(&b, &["exit", &n.to_string()]);
                    assert_eq!(out.exit_code, Some(n));
                }
            });
        }
    });
    assert_eq!(Footprint::now(), before);
    common::assert_no_own_cgroups();
}

#[test]
fn a_killed_caller_takes_its_sandboxes_along() {
    require_root!();
    let image = busybox!();
    let Some(cli) = common::cli_path() else {
        common::skip("a_killed_caller_takes_its_sandboxes_along", "build with --features cli for the CLI");
        return;
    };
    let _serial = common::serial();
    let mark = marker();
    let root = image.layers()[0].to_str().unwrap().to_string();
    let mut caller = std::process::Command::new(cli)
        .args(["run", "--image", &root, "--env", &format!("{}={}", mark.0, mark.1), "--", common::PROBE, "spin", "2"])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while marked_processes(&mark).len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(marked_processes(&mark).len(), 3, "the two spinners and the init (it has the program's environment)");
    caller.kill().unwrap();
    caller.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !marked_processes(&mark).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(marked_processes(&mark).is_empty(), "no sandbox process outlives its caller");
    // Its cgroups are left to the next start; gc (which every first run also does) removes them.
    let report = isolette::gc().unwrap();
    assert!(report.busy.is_empty(), "{report:?}");
    let caller_prefix = format!("{}-", caller.id());
    for parent in ["/sys/fs/cgroup/memory/isolette", "/sys/fs/cgroup/pids/isolette", "/sys/fs/cgroup/isolette"] {
        for e in std::fs::read_dir(parent).into_iter().flatten().flatten() {
            assert!(!e.file_name().to_string_lossy().starts_with(&caller_prefix), "{:?} left", e.path());
        }
    }
}
