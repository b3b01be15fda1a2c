//! Exit codes, signals, wall time, I/O and errors of real runs.

mod common;

use std::time::Duration;

use common::{PROBE, busybox, probe, require_root, stdout};
use isolette::{Error, Output, Sandbox, Status, Stdin, Step};

#[test]
fn exit_codes() {
    require_root!();
    let image = busybox!();
    let b = Sandbox::builder(&image);
    let out = probe(&b, &["exit", "0"]);
    assert_eq!((out.status, out.exit_code, out.signal), (Status::Ok, Some(0), None));
    let out = probe(&b, &["exit", "3"]);
    assert_eq!((out.status, out.exit_code, out.signal), (Status::RuntimeError, Some(3), None));
}

#[test]
fn signals_are_reported_as_outside() {
    require_root!();
    let image = busybox!();
    let b = Sandbox::builder(&image);
    for (sig, num) in [("ABRT", 6), ("SEGV", 11), ("KILL", 9), ("TERM", 15)] {
        let out = probe(&b, &["kill-self", sig]);
        assert_eq!((out.status, out.exit_code, out.signal), (Status::Signaled, None, Some(num)), "{sig}");
    }
}

#[test]
fn wall_time_limit_kills_the_sandbox() {
    require_root!();
    let image = busybox!();
    let b = Sandbox::builder(&image).wall_time(Duration::from_millis(300));
    let out = probe(&b, &["sleep", "10"]);
    assert_eq!(out.status, Status::WallTimeLimit);
    assert_eq!(out.signal, Some(9));
    assert!(
        out.wall_time >= Duration::from_millis(300) && out.wall_time < Duration::from_secs(2),
        "{:?}",
        out.wall_time
    );
    let out = probe(&b, &["sleep", "0.01"]);
    assert_eq!(out.status, Status::Ok);
    assert!(out.wall_time >= Duration::from_millis(10), "{:?}", out.wall_time);
    // Making the sandbox took some time, and far less than the whole run.
    assert!(out.setup_time > Duration::ZERO && out.setup_time < Duration::from_secs(2), "{:?}", out.setup_time);
}

#[test]
fn stdin_bytes_and_file() {
    require_root!();
    let image = busybox!();
    let out = probe(&Sandbox::builder(&image).stdin("hello\nworld\n"), &["stdin-echo"]);
    assert_eq!(stdout(&out), "hello\nworld\n");
    let big = vec![b'a'; 1 << 20];
    let out = probe(&Sandbox::builder(&image).stdin(big.clone()), &["stdin-echo"]);
    assert_eq!(out.stdout, big);

    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "from a file\n").unwrap();
    let out = probe(&Sandbox::builder(&image).stdin_from(Stdin::File(input)), &["stdin-echo"]);
    assert_eq!(stdout(&out), "from a file\n");
    let out = probe(&Sandbox::builder(&image), &["stdin-echo"]);
    assert_eq!((out.status, stdout(&out)), (Status::Ok, String::new()), "stdin is empty by default");
}

#[test]
fn output_to_files_and_captured_stderr() {
    require_root!();
    let image = busybox!();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.txt");
    let out = probe(&Sandbox::builder(&image).stdout(Output::File(path.clone())), &["write-bytes", "1000"]);
    assert_eq!(out.status, Status::Ok);
    assert!(out.stdout.is_empty());
    assert_eq!(std::fs::read(&path).unwrap(), vec![b'x'; 1000]);
    let out = probe(&Sandbox::builder(&image), &["write-bytes", "5", "2"]);
    assert_eq!((out.stdout.len(), &out.stderr[..]), (0, &b"xxxxx"[..]));
}

#[test]
fn output_limit_caps_capture_exactly() {
    require_root!();
    let image = busybox!();
    let out = probe(&Sandbox::builder(&image).output_limit(1000), &["write-bytes", "1000000"]);
    assert_eq!(out.status, Status::OutputLimit);
    assert_eq!(out.stdout.len(), 1000);
    let out = probe(&Sandbox::builder(&image).output_limit(1000), &["write-bytes", "1000"]);
    assert_eq!(out.status, Status::Ok, "exactly the limit is fine");
}

#[test]
fn clean_environment_and_workdir() {
    require_root!();
    let image = busybox!();
    let out = probe(&Sandbox::builder(&image).env("LANG", "C.UTF-8"), &["env"]);
    let mut env: Vec<&str> =
        out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| std::str::from_utf8(l).unwrap()).collect();
    env.sort();
    assert_eq!(env, ["LANG=C.UTF-8", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]);
    let out = probe(&Sandbox::builder(&image).workdir("/tmp"), &["pwd"]);
    assert_eq!(stdout(&out), "/tmp\n");
}

#[test]
fn path_lookup_finds_commands() {
    require_root!();
    let image = busybox!();
    let out = Sandbox::builder(&image).run(["isolette-probe", "exit", "4"]).unwrap();
    assert_eq!(out.exit_code, Some(4));
}

#[test]
fn missing_command_is_an_error_not_a_status() {
    require_root!();
    let image = busybox!();
    match Sandbox::run(&image, ["no-such-command"]) {
        Err(Error::CommandNotFound { command, .. }) => assert_eq!(command, "no-such-command"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(Sandbox::run(&image, ["/bin/no-such"]), Err(Error::CommandNotFound { .. })));
    // A directory is not executable: EACCES names the path.
    match Sandbox::run(&image, ["/tmp"]) {
        Err(Error::Setup { step: Step::Exec, errno, path }) => {
            assert_eq!(errno, isolette::Errno::EACCES);
            assert_eq!(path.unwrap().to_str(), Some("/tmp"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn setup_errors_name_step_and_path() {
    require_root!();
    let image = busybox!();
    let err = Sandbox::builder(&image).workdir("/no/such/dir").run([PROBE, "pwd"]).unwrap_err();
    assert!(matches!(err, Error::Setup { step: Step::Workdir, .. }), "{err:?}");
    assert_eq!(err.to_string(), "workdir `/no/such/dir`: ENOENT (No such file or directory)");
}

#[test]
fn bad_config_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let image = isolette::Image::open(dir.path()).unwrap();
    for (builder, argv) in [
        (Sandbox::builder(&image), vec!["a\0b"]),
        (Sandbox::builder(&image), vec![]),
        (Sandbox::builder(&image).wall_time(Duration::ZERO), vec!["x"]),
        (Sandbox::builder(&image).mount_ro("/", "relative"), vec!["x"]),
        (Sandbox::builder(&image).env("A", "b\0"), vec!["x"]),
        (Sandbox::builder(&image).output_limit(0), vec!["x"]),
    ] {
        assert!(matches!(builder.run(argv.clone()), Err(Error::Config(_))), "{argv:?}");
    }
}

#[test]
fn python_runs_from_a_debian_image() {
    require_root!();
    let Some(image) = common::image("debian-python") else {
        common::skip(
            "python_runs_from_a_debian_image",
            "the debian-python image is missing; run scripts/build-test-images.sh --python",
        );
        return;
    };
    let out = Sandbox::builder(&image).stdin("21\n").run(["python3", "-c", "print(int(input()) * 2)"]).unwrap();
    assert_eq!(
        (out.status, stdout(&out)),
        (Status::Ok, "42\n".to_string()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Sandbox::run(&image, ["python3", "-c", "raise SystemExit(7)"]).unwrap();
    assert_eq!((out.status, out.exit_code), (Status::RuntimeError, Some(7)));
}
