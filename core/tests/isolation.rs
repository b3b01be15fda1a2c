//! What the program can see and reach: processes, network, host files, the image, ids.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{busybox, probe, require_root, stdout};
use isolette::{Image, Sandbox, Status};

#[test]
fn only_the_sandbox_processes_are_visible() {
    require_root!();
    let image = busybox!();
    let out = probe(&Sandbox::builder(&image), &["pids"]);
    assert_eq!(stdout(&out), "1 2\n", "the init and the program only");
}

#[test]
fn the_init_does_not_show_the_callers_command_line() {
    require_root!();
    let image = busybox!();
    let out = probe(&Sandbox::builder(&image), &["cat", "/proc/1/cmdline"]);
    let shown: Vec<&[u8]> = out.stdout.split(|&b| b == 0).filter(|s| !s.is_empty()).collect();
    assert_eq!(shown, [b"isolette-init"], "{:?}", stdout(&out));
    let out = probe(&Sandbox::builder(&image).user_namespace(true), &["cat", "/proc/1/environ"]);
    assert_eq!(out.status, Status::RuntimeError, "{}", stdout(&out));
}

#[test]
fn host_loopback_is_unreachable() {
    require_root!();
    let image = busybox!();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let out = probe(&Sandbox::builder(&image), &["connect", "127.0.0.1", &port]);
    assert_eq!(out.status, Status::RuntimeError, "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error") || stdout(&out).contains("error"));
}

#[test]
fn every_sandbox_gets_a_network_namespace_of_its_own() {
    require_root!();
    let image = busybox!();
    // After a process's first run, root's sandboxes join network namespaces made ahead on
    // the background thread (`network/spare.rs`), with and without a cgroup: not the
    // host's, loopback up and nothing else, and never one that another sandbox has.
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    let script =
        "readlink /proc/self/ns/net; busybox ip -o link show lo | cut -d' ' -f3; tail -n +3 /proc/net/dev; sleep 0.5";
    for round in 0..3 {
        let runs: Vec<_> =
            (0..4).map(|i| Sandbox::builder(&image).cgroup(i % 2 == 0).spawn(["sh", "-c", script]).unwrap()).collect();
        let mut seen = std::collections::HashSet::new();
        for run in runs {
            let text = stdout(&run.wait().unwrap());
            let lines: Vec<&str> = text.lines().collect();
            let [ns, lo_flags, devices @ ..] = &lines[..] else { panic!("round {round}: {text}") };
            assert_ne!(std::path::Path::new(ns), host, "round {round}: the host's namespace");
            // Namespace inode numbers are reused once a namespace is gone, so only
            // sandboxes alive at once can be told apart this way.
            assert!(seen.insert(ns.to_string()), "round {round}: {ns} is another sandbox's too");
            assert!(lo_flags.contains(",UP,"), "round {round}: loopback is down: {lo_flags}");
            assert_eq!(devices.len(), 1, "round {round}: loopback only: {devices:?}");
        }
    }
}

#[test]
fn host_files_outside_the_image_cannot_be_read() {
    require_root!();
    let image = busybox!();
    // Under /tmp on purpose: the sandbox's /tmp is its own.
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let canary = dir.path().join("canary");
    std::fs::write(&canary, "secret").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o644)).unwrap();
    let b = Sandbox::builder(&image);
    for path in [canary.to_str().unwrap(), "/etc/shadow", "/.oldroot/etc/hostname", "/root/.bashrc"] {
        let out = probe(&b, &["cat", path]);
        assert_eq!(out.status, Status::RuntimeError, "{path}: {}", stdout(&out));
        assert!(!stdout(&out).contains("secret"));
    }
}

/// A two-layer image with a world-writable directory, in a temp dir.
fn layered_image(busybox: &Image) -> (tempfile::TempDir, Image) {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("top");
    std::fs::create_dir_all(top.join("w")).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(top.join("w"), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(top.join("w/from-top"), "top").unwrap();
    let mut layers = busybox.layers().to_vec();
    layers.push(top);
    (dir, Image::from_layers(layers).unwrap())
}

#[test]
fn writes_never_reach_the_image() {
    require_root!();
    let busybox = busybox!();
    let (dir, image) = layered_image(&busybox);
    let before = std::fs::read_dir(dir.path().join("top/w")).unwrap().count();
    let out = probe(&Sandbox::builder(&image), &["write-file", "/w/new", "data"]);
    assert_eq!(out.status, Status::Ok, "{}", String::from_utf8_lossy(&out.stderr));
    let out = probe(&Sandbox::builder(&image), &["ls", "/w"]);
    assert_eq!(stdout(&out), "from-top\n", "each run starts from the image");
    assert_eq!(std::fs::read_dir(dir.path().join("top/w")).unwrap().count(), before);
    assert!(!busybox.layers()[0].join("w").exists());
}

#[test]
fn hostname_and_ids_are_the_sandbox_ones() {
    require_root!();
    let image = busybox!();
    for userns in [false, true] {
        let out = probe(&Sandbox::builder(&image).hostname("judge-7").user_namespace(userns), &["id"]);
        assert_eq!(
            stdout(&out),
            "uid=60000 gid=60000 euid=60000 egid=60000 groups=0\nhostname=judge-7\n",
            "userns={userns}"
        );
        let out = probe(&Sandbox::builder(&image).user_namespace(userns), &["cat", "/proc/self/status"]);
        for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            assert!(stdout(&out).contains(&format!("{cap}:\t0000000000000000")), "{cap} userns={userns}");
        }
        assert!(stdout(&out).contains("NoNewPrivs:\t1"));
    }
}

#[test]
fn the_program_sees_only_stdio_fds() {
    require_root!();
    let image = busybox!();
    // A leaked fd of the caller without CLOEXEC must not reach the program.
    let leaked = nix::fcntl::open("/etc/hostname", nix::fcntl::OFlag::O_RDONLY, nix::sys::stat::Mode::empty()).unwrap();
    let out = probe(&Sandbox::builder(&image), &["fds"]);
    assert_eq!(stdout(&out), "0 1 2\n");
    drop(leaked);
}

#[test]
fn bind_mounts_read_only_and_writable() {
    require_root!();
    let image = busybox!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(dir.path().join("in.txt"), "input").unwrap();
    let b = Sandbox::builder(&image).mount_ro(dir.path(), "/data/ro").mount_rw(dir.path(), "/data/rw");
    let out = probe(&b, &["cat", "/data/ro/in.txt"]);
    assert_eq!(stdout(&out), "input");
    let out = probe(&b, &["write-file", "/data/ro/x", "no"]);
    assert_eq!(out.status, Status::RuntimeError);
    assert!(String::from_utf8_lossy(&out.stderr).contains("Read-only"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = probe(&b, &["write-file", "/data/rw/out.txt", "yes"]);
    assert_eq!(out.status, Status::Ok, "{}", String::from_utf8_lossy(&out.stderr));
    let written = dir.path().join("out.txt");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), "yes");
    assert_eq!(std::fs::metadata(&written).unwrap().uid(), 60000, "owned by the dedicated sandbox uid");

    // With a user namespace, the file belongs to the high host range, never a real user.
    std::fs::remove_file(&written).unwrap();
    let out = probe(&b.clone().user_namespace(true), &["write-file", "/data/rw/out.txt", "yes"]);
    assert_eq!(out.status, Status::Ok, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::metadata(&written).unwrap().uid(), (1 << 30) + 60000);
}

#[test]
fn writable_layer_is_size_limited() {
    require_root!();
    let image = busybox!();
    let out = Sandbox::builder(&image)
        .tmpfs_size(1 << 20)
        .run(["/bin/sh", "-c", "head -c 2000000 /dev/zero > /tmp/big; echo $?; wc -c < /tmp/big"])
        .unwrap();
    // head fails (ENOSPC) after exactly the tmpfs size.
    assert_eq!(stdout(&out), "1\n1048576\n", "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn an_unprivileged_caller_gets_a_user_namespace_and_approximate_figures() {
    require_root!(); // to become an unprivileged user for the test
    let image = busybox!();
    let Some(cli) = common::cli_path() else {
        common::skip(module_path!(), "build with --features cli for the CLI");
        return;
    };
    if !isolette::HostReport::probe().user_namespaces {
        common::skip(module_path!(), "user namespaces are disabled on this host");
        return;
    }
    let root = image.layers()[0].to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", cli, "run", "--json", "--image", &root])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let json = run(&["--", common::PROBE, "id"]);
    assert!(json.contains(r#""status":"ok""#), "{json}");
    assert!(json.contains("uid=60000 gid=60000 euid=60000 egid=60000"), "{json}");
    assert!(json.contains(r#""approximate":true"#), "no cgroup for an unprivileged caller: {json}");
    // The memory limit falls back to RLIMIT_AS: the allocation fails inside.
    let json = run(&["--memory", "64M", "--", common::PROBE, "memhog", "100M"]);
    assert!(json.contains(r#""status":"runtime_error""#) && json.contains("alloc-failed"), "{json}");
    // Still no network and no host files.
    let json = run(&["--", common::PROBE, "cat", "/etc/shadow"]);
    assert!(json.contains(r#""status":"runtime_error""#), "{json}");
    // A terminal of the sandbox's own devpts, owned by the sandbox's user.
    let json = run(&["-t", "--", "/bin/sh", "-c", "tty; ls -ln /dev/pts/0"]);
    assert!(json.contains(r#""stdout":"/dev/pts/0\r\ncrw--w----    1 60000    60000"#), "{json}");
}
