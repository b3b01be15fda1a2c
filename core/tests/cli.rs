//! The `isolette` command as a script uses it: exact bytes in and out, exit code 125 and
//! one JSON object for every failure before the program runs, and nothing left behind
//! when the process exits, even with a monitor scanning `/proc` meanwhile.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine;
use common::{PROBE, busybox, cli, marker, require_root};

fn root(image: &isolette::Image) -> &Path {
    &image.layers()[0]
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON object ({e}): {:?}", String::from_utf8_lossy(&out.stdout)))
}

fn b64(text: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD.decode(text.as_str().expect("a base64 string")).unwrap()
}

#[test]
fn json_output_is_text_when_utf8_and_base64_otherwise() {
    require_root!();
    let image = busybox!();
    let cli = cli!();
    let run = |input: &[u8]| {
        let out = Command::new(cli)
            .args(["run", "--json", "--output-limit", "1M", "--image"])
            .arg(root(&image))
            .args(["--", PROBE, "stdin-echo"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                let mut stdin = child.stdin.take().unwrap();
                let data = input.to_vec();
                let writer = std::thread::spawn(move || {
                    let _ = stdin.write_all(&data);
                });
                let out = child.wait_with_output();
                writer.join().unwrap();
                out
            })
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        json(&out)
    };
    let v = run("caf\u{e9}\n".as_bytes());
    assert_eq!(v["stdout"], "caf\u{e9}\n");
    assert!(v.get("stdout_base64").is_none());
    assert_eq!((v["stdout_truncated"].as_bool(), v["stderr_truncated"].as_bool()), (Some(false), Some(false)));

    let all: Vec<u8> = (0..=255u8).collect();
    let v = run(&all);
    assert!(v.get("stdout").is_none(), "not UTF-8, so no lossy text");
    assert_eq!(b64(&v["stdout_base64"]), all);
    assert_eq!(v["stderr"], "");

    // Binary output at exactly, one below and one above the limit.
    let limit = 1usize << 20;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(limit + 1).collect();
    for n in [limit - 1, limit] {
        let v = run(&bytes[..n]);
        assert_eq!(v["status"], "ok");
        assert_eq!(b64(&v["stdout_base64"]), bytes[..n]);
        assert_eq!(v["stdout_truncated"], false);
    }
    let v = run(&bytes);
    assert_eq!(v["status"], "output_limit");
    assert_eq!(b64(&v["stdout_base64"]), bytes[..limit]);
    assert_eq!(v["stdout_truncated"], true);
}

#[test]
fn stdout_and_stderr_files_get_the_raw_bytes() {
    require_root!();
    let image = busybox!();
    let cli = cli!();
    let dir = tempfile::tempdir().unwrap();
    let input: Vec<u8> = (0..=255u8).rev().collect();
    std::fs::write(dir.path().join("in"), &input).unwrap();
    let out = Command::new(cli)
        .args(["run", "--image"])
        .arg(root(&image))
        .arg("--stdin")
        .arg(dir.path().join("in"))
        .arg("--stdout")
        .arg(dir.path().join("out"))
        .arg("--stderr")
        .arg(dir.path().join("err"))
        .args(["--", PROBE, "stdin-echo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty(), "the output went to the file");
    assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), input);
    assert_eq!(std::fs::read(dir.path().join("err")).unwrap(), b"");
}

#[test]
fn arguments_after_the_separator_pass_verbatim() {
    require_root!();
    let image = busybox!();
    let cli = cli!();
    let args: [&[u8]; 7] = [b"\xff\xfe", b"", b"--json", b"--memory", b"12Q", b"-x", b"--"];
    let out = Command::new(cli)
        .args(["run", "--image"])
        .arg(root(&image))
        .arg("--env")
        .arg(OsStr::from_bytes(b"K\xe9=v\xff"))
        .args(["--", PROBE, "args"])
        .args(args.iter().map(|a| OsStr::from_bytes(a)))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let want: Vec<u8> = args.iter().flat_map(|a| a.iter().copied().chain([0])).collect();
    assert_eq!(out.stdout, want);

    let out = Command::new(cli)
        .args(["run", "--image"])
        .arg(root(&image))
        .arg("--env")
        .arg(OsStr::from_bytes(b"K\xe9=v\xff"))
        .args(["--", PROBE, "env"])
        .output()
        .unwrap();
    assert!(out.stdout.split(|&b| b == b'\n').any(|l| l == b"K\xe9=v\xff"), "{:?}", out.stdout);

    // 100 KB of arguments.
    let many: Vec<String> = (0..1000).map(|i| format!("{i:0>100}")).collect();
    let out = Command::new(cli)
        .args(["run", "--image"])
        .arg(root(&image))
        .args(["--", PROBE, "args"])
        .args(&many)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout.len(), 1000 * 101);
}

#[test]
fn a_caller_with_standard_streams_closed_still_runs() {
    require_root!();
    let image = busybox!();
    let cli = cli!();
    // stdin and stderr closed: the CLI's own fds, pipes included, get the low numbers.
    let script =
        format!("exec 0<&- 2>&-; exec {cli} run --json --image {} -- {PROBE} stdin-echo", root(&image).display());
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v = json(&out);
    assert_eq!((v["status"].as_str(), v["stdout"].as_str()), (Some("ok"), Some("")), "{v}");
}

#[test]
fn a_first_run_gets_its_cgroup_with_or_without_a_user_namespace() {
    require_root!();
    let image = busybox!();
    let cli = cli!();
    // A CLI run is its process's first: on cgroup v1 its cgroup is made while the sandbox
    // mounts, and joined just before the root switch; with a user namespace the sandbox
    // is a mapped user by then, so it gets its cgroup made first instead.
    for userns in [false, true] {
        let mut args = vec!["run", "--json", "--memory", "32M", "--pids", "16"];
        args.extend(userns.then_some("--userns"));
        let image_dir = root(&image).to_str().unwrap();
        args.extend(["--image", image_dir, "--", PROBE, "memhog", "64M"]);
        let v = json(&Command::new(cli).args(&args).output().unwrap());
        assert_eq!(v["status"].as_str(), Some("memory_limit"), "userns {userns}: {v}");
        assert_eq!(v["approximate"].as_bool(), Some(false), "userns {userns}: {v}");
    }
}

/// Runs the CLI with `args` and checks it failed before the program ran: exit 125, and
/// with `--json` one setup_error object of `kind`. Returns the error object.
fn setup_failure(cli: &str, args: &[&OsStr], kind: &str) -> serde_json::Value {
    let out = Command::new(cli).args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(125), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    if !args.contains(&OsStr::new("--json")) {
        assert!(!out.stderr.is_empty(), "{args:?}: says why on stderr");
        return serde_json::Value::Null;
    }
    let v = json(&out);
    assert_eq!(v["status"], "setup_error", "{v}");
    assert_eq!(v["error"]["kind"], kind, "{args:?}: {v}");
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    for key in ["step", "errno", "path"] {
        assert!(v["error"].get(key).is_some(), "{key} is always there, null when it does not apply");
    }
    v["error"].clone()
}

#[test]
fn every_failure_before_the_program_exits_125_and_prints_json() {
    require_root!();
    let image = busybox!();
    let cli = cli!();
    let img = root(&image).as_os_str();
    let a = |s: &'static str| OsStr::new(s);
    let cases: Vec<(Vec<&OsStr>, &str)> = vec![
        (vec![a("run"), a("--json"), a("--memory"), a("12Q"), a("--image"), img, a("--"), a("true")], "config"),
        (vec![a("run"), a("--json"), a("--no-such-flag"), a("--image"), img, a("--"), a("true")], "config"),
        (vec![a("run"), a("--json"), a("--wall-time"), a("0s"), a("--image"), img, a("--"), a("true")], "config"),
        (vec![a("run"), a("--json"), a("--env"), a("NOEQUALS"), a("--image"), img, a("--"), a("true")], "config"),
        (vec![a("run"), a("--json"), a("--mount"), a("/nope-src:/x"), a("--image"), img, a("--"), a("true")], "config"),
        (vec![a("run"), a("--json"), a("--image"), img, a("--"), a("no-such-command")], "command_not_found"),
        (
            vec![a("run"), a("--json"), a("--image"), img, a("--workdir"), a("/no/such/dir"), a("--"), a("true")],
            "setup",
        ),
        (vec![a("run"), a("--json"), a("--image"), a("./no-such-dir"), a("--"), a("true")], "image"),
        (vec![a("run"), a("--memory"), a("12Q"), a("--image"), img, a("--"), a("true")], ""),
        (vec![a("run"), a("--image"), a("./no-such-dir"), a("--"), a("true")], ""),
    ];
    for (args, kind) in &cases {
        setup_failure(cli, args, kind);
    }
    let e = setup_failure(cli, &cases[6].0, "setup");
    assert_eq!((e["step"].as_str(), e["errno"].as_i64()), (Some("workdir"), Some(libc::ENOENT as i64)), "{e}");
    let e = setup_failure(cli, &cases[7].0, "image");
    assert_eq!(e["path"], "./no-such-dir");
    assert!(e["message"].as_str().unwrap().contains("no such directory"), "{e}");
    // Without --json the same words go to stderr.
    let out = Command::new(cli).args(["run", "--image", "./no-such-dir", "--", "true"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such directory"));
    // --help is not a failure.
    assert_eq!(Command::new(cli).args(["run", "--help"]).output().unwrap().status.code(), Some(0));
}

#[test]
fn quiet_import_prints_nothing() {
    require_root!();
    let cli = cli!();
    let fixture = common::images_dir().join("../oci-fixtures/two-layer.oci.tar");
    if !fixture.exists() {
        common::skip(module_path!(), "the OCI fixtures are missing; run scripts/build-oci-fixtures.sh");
        return;
    }
    let store = tempfile::tempdir().unwrap();
    let out = Command::new(cli)
        .arg("--store")
        .arg(store.path())
        .args(["image", "import", "--quiet", "--name", "quiet:1"])
        .arg(&fixture)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((out.stdout.as_slice(), out.stderr.as_slice()), (&b""[..], &b""[..]));
}

/// Reads every process's `stat`, `status` and `cgroup` over and over, as `top` and
/// monitoring agents do; this keeps exited tasks pinned and v1 `rmdir` busy for longer.
fn scan_proc(stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            if entry.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
                for file in ["stat", "status", "cgroup"] {
                    let _ = std::fs::read(entry.path().join(file));
                }
            }
        }
    }
}

#[test]
fn nothing_left_after_500_cli_runs_while_proc_is_scanned() {
    require_root!();
    let image = busybox!();
    let cli = cli!();
    let mark = marker();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| scan_proc(&stop));
        let result = std::panic::catch_unwind(|| {
            for i in 0..500 {
                let child = Command::new(cli)
                    .args(["run", "--memory", "64M", "--pids", "16", "--env"])
                    .arg(format!("{}={}", mark.0, mark.1))
                    .arg("--image")
                    .arg(root(&image))
                    .args(["--", PROBE, "exit", "0"])
                    .spawn()
                    .unwrap();
                let pid = child.id();
                let out = child.wait_with_output().unwrap();
                assert_eq!(out.status.code(), Some(0), "run {i}");
                assert_eq!(common::cgroups_of(pid), Vec::<PathBuf>::new(), "run {i}: the CLI exited and left cgroups");
                assert!(common::marked_processes(&mark).is_empty(), "run {i}: processes left");
                let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
                assert!(!mounts.contains("isolette"), "run {i}: mounts left");
            }
        });
        stop.store(true, Ordering::Relaxed);
        if let Err(panic) = result {
            std::panic::resume_unwind(panic);
        }
    });
}
