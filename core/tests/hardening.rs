//! Hostile programs against the default hardening: seccomp, capabilities, ids, /proc, /dev,
//! terminals. Each asserts the verdict and that the host is unchanged.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{busybox, probe, require_root, stdout};
use isolette::{Image, Sandbox, SeccompAction, SeccompPolicy, Status};

fn host_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap()
}

#[test]
fn forbidden_syscalls_are_blocked() {
    require_root!();
    let image = busybox!();
    let hostname = host_hostname();
    for userns in [false, true] {
        let b = Sandbox::builder(&image).user_namespace(userns);
        for call in [
            "ptrace",
            "mount",
            "unshare",
            "setns",
            "bpf",
            "perf_event_open",
            "io_uring_setup",
            "userfaultfd",
            "kexec_load",
            "keyctl",
            "chroot",
        ] {
            let out = probe(&b, &["try-syscall", call]);
            assert_eq!(
                (out.status, out.signal),
                (Status::SyscallBlocked, Some(libc::SIGSYS)),
                "{call} userns={userns}"
            );
        }
        let out = probe(&b, &["try-syscall", "getppid"]);
        assert_eq!((out.status, stdout(&out)), (Status::Ok, "ok\n".into()), "a harmless call passes");
    }
    assert_eq!(host_hostname(), hostname);
}

#[test]
fn errno_action_fails_the_call_and_the_program_goes_on() {
    require_root!();
    let image = busybox!();
    let b = Sandbox::builder(&image).seccomp(SeccompPolicy::default_deny().with_action(SeccompAction::Errno));
    let out = probe(&b, &["try-syscall", "ptrace"]);
    assert_eq!((out.status, stdout(&out)), (Status::Ok, "errno=1 Operation not permitted\n".into()));
}

#[test]
fn custom_policies() {
    require_root!();
    let image = busybox!();
    let deny = Sandbox::builder(&image).seccomp(SeccompPolicy::deny(["getppid"]).unwrap());
    assert_eq!(probe(&deny, &["try-syscall", "getppid"]).status, Status::SyscallBlocked);
    assert_eq!(probe(&deny, &["try-syscall", "keyctl"]).status, Status::Ok, "only what the list names");
    let off = Sandbox::builder(&image).seccomp(SeccompPolicy::disabled());
    assert_eq!(probe(&off, &["try-syscall", "keyctl"]).status, Status::Ok);
    // What the static probe needs to start and exit (strace -f isolette-probe exit 3).
    let out = Sandbox::builder(&image).seccomp(tiny_policy()).run([common::PROBE, "exit", "3"]).unwrap();
    assert_eq!(out.exit_code, Some(3), "{out:?}");
    let out = Sandbox::builder(&image).seccomp(tiny_policy()).run([common::PROBE, "pwd"]).unwrap();
    assert_eq!(out.status, Status::SyscallBlocked, "getcwd is not on the list");
    assert!(matches!(SeccompPolicy::deny(["fork_bomb"]), Err(isolette::Error::Config(_))));
}

fn tiny_policy() -> SeccompPolicy {
    SeccompPolicy::allow([
        "mprotect",
        "brk",
        "readlink",
        "arch_prctl",
        "set_tid_address",
        "set_robust_list",
        "prlimit64",
        "getrandom",
        "rseq",
    ])
    .unwrap()
}

#[test]
fn foreign_architectures_are_killed() {
    require_root!();
    let image = busybox!();
    let b = Sandbox::builder(&image);
    for abi in ["int80", "x32"] {
        let out = probe(&b, &[abi]);
        assert_eq!(out.status, Status::SyscallBlocked, "{abi}: {}", stdout(&out));
    }
}

#[test]
fn no_privilege_can_be_regained() {
    require_root!();
    let busybox = busybox!();
    // A setuid-root copy of the probe in a layer of the image.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy(busybox.layers()[0].join("usr/local/bin/isolette-probe"), bin.join("suid-probe")).unwrap();
    std::fs::set_permissions(bin.join("suid-probe"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let mut layers = busybox.layers().to_vec();
    layers.push(dir.path().to_path_buf());
    let image = Image::from_layers(layers).unwrap();
    let b = Sandbox::builder(&image);
    let out = b.run(["/bin/suid-probe", "setuid0"]).unwrap();
    assert_eq!(out.status, Status::RuntimeError);
    assert!(stdout(&out).starts_with("uid=60000 setuid=Operation not permitted"), "{}", stdout(&out));

    let out = probe(&b, &["mknod-block", "/tmp/sda"]);
    assert_eq!((out.status, stdout(&out)), (Status::RuntimeError, "error: Operation not permitted\n".into()));
    let out = probe(&b, &["chroot-escape"]);
    assert_eq!(out.status, Status::SyscallBlocked);
    let out = probe(&b, &["write-exe"]);
    assert_eq!(out.status, Status::RuntimeError, "{}", stdout(&out));
}

#[test]
fn proc_and_dev_hold_nothing_dangerous() {
    require_root!();
    let image = busybox!();
    let hostname = host_hostname();
    let b = Sandbox::builder(&image);
    let out = probe(&b, &["write-file", "/proc/sys/kernel/hostname", "evil"]);
    assert_eq!(out.status, Status::RuntimeError);
    assert_eq!(host_hostname(), hostname);
    for path in ["/proc/kcore", "/proc/sysrq-trigger", "/proc/keys", "/proc/timer_list"] {
        let out = probe(&b, &["cat", path]);
        assert!(out.stdout.is_empty(), "{path} shows something");
    }
    let out = probe(&b, &["ls", "/dev"]);
    assert_eq!(stdout(&out), "fd\nfull\nnull\nrandom\nshm\nstderr\nstdin\nstdout\ntty\nurandom\nzero\n");
    let out = probe(&b, &["ls", "/sys"]);
    assert_eq!(out.stdout, b"", "no /sys unless asked");
    let with_sys = Sandbox::builder(&image).sys(true);
    let out = probe(&with_sys, &["ls", "/sys/class/net"]);
    assert_eq!(stdout(&out), "lo\n", "the sandbox's own network namespace");
    let out = probe(&with_sys, &["write-file", "/sys/kernel/uevent_helper", "/evil"]);
    assert_eq!(out.status, Status::RuntimeError, "read-only");
}

#[test]
fn signals_cannot_reach_outside() {
    require_root!();
    let image = busybox!();
    let mut host = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    let out = probe(&Sandbox::builder(&image), &["kill", &host.id().to_string(), "9"]);
    assert_eq!(out.status, Status::RuntimeError, "{}", stdout(&out));
    assert!(host.try_wait().unwrap().is_none(), "the host process lives");
    host.kill().unwrap();
    host.wait().unwrap();
    let out = probe(&Sandbox::builder(&image), &["kill", "1", "9"]);
    assert_eq!(out.status, Status::RuntimeError, "not even the sandbox's init");
}

#[test]
fn no_terminal_injection() {
    require_root!();
    let image = busybox!();
    let out = probe(&Sandbox::builder(&image).seccomp(SeccompPolicy::disabled()), &["tiocsti"]);
    // Without the filter: a new session and no controlling terminal, so nothing to inject into.
    assert_eq!(out.status, Status::RuntimeError, "{}", stdout(&out));
    let out = probe(&Sandbox::builder(&image), &["tiocsti"]);
    assert_eq!(out.status, Status::SyscallBlocked);
}

#[test]
fn python_runs_normal_programs_under_the_default_policy() {
    require_root!();
    let Some(image) = common::image("debian-python") else {
        common::skip(module_path!(), "the debian-python image is missing; run scripts/build-test-images.sh --python");
        return;
    };
    let program = r#"
import threading, subprocess, os, json, hashlib, tempfile, multiprocessing, socket, time, sqlite3
t = threading.Thread(target=lambda: None); t.start(); t.join()
assert subprocess.run(["/bin/true"]).returncode == 0
with multiprocessing.Pool(2) as p: assert p.map(abs, [-1, -2]) == [1, 2]
with tempfile.NamedTemporaryFile() as f: f.write(b"x"); f.flush()
socket.socketpair()
con = sqlite3.connect(":memory:"); con.execute("select 1")
print(hashlib.sha256(b"ok").hexdigest()[:8], json.dumps([1]), time.monotonic() > 0)
"#;
    let out = Sandbox::builder(&image).run(["python3", "-c", program]).unwrap();
    assert_eq!(out.status, Status::Ok, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout(&out), "2689367b [1] True\n");
}
