//! Bytes are bytes: argv, environment, working directory and mount paths reach the program
//! exactly as given, and its output comes back exactly, up to and at the output limit.

mod common;

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use common::{PROBE, busybox, require_root};
use isolette::{Sandbox, Status};

fn os(bytes: &[u8]) -> OsString {
    OsString::from_vec(bytes.to_vec())
}

/// What `isolette-probe args` printed: each argument followed by NUL.
fn args_out(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = bytes.split(|&b| b == 0).map(<[u8]>::to_vec).collect();
    assert_eq!(parts.pop(), Some(vec![]), "ends with NUL");
    parts
}

#[test]
fn arguments_pass_verbatim() {
    require_root!();
    let image = busybox!();
    let args: Vec<OsString> = vec![
        os(b"\xff\xfe not utf-8 \x80"),
        os(b""),
        os(b"--json"),
        os(b"-x"),
        os(b"--"),
        os("caf\u{e9} \u{2603}".as_bytes()),
        os(b"latin1 caf\xe9"),
        os(b" spaced  and\ttabbed\n"),
        os(&(1..=255u8).collect::<Vec<_>>()),
    ];
    let argv: Vec<OsString> = [OsString::from(PROBE), "args".into()].into_iter().chain(args.clone()).collect();
    let out = Sandbox::builder(&image).run(&argv).unwrap();
    assert_eq!(out.status, Status::Ok, "{}", String::from_utf8_lossy(&out.stderr));
    let want: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    assert_eq!(args_out(&out.stdout), want);
}

#[test]
fn a_hundred_kilobytes_of_arguments() {
    require_root!();
    let image = busybox!();
    // 1,000 arguments of 100 bytes each, every one different.
    let args: Vec<OsString> = (0..1000u32).map(|i| os(format!("{i:0>100}").as_bytes())).collect();
    let argv: Vec<OsString> = [OsString::from(PROBE), "args".into()].into_iter().chain(args.clone()).collect();
    let out = Sandbox::builder(&image).run(&argv).unwrap();
    assert_eq!(out.status, Status::Ok);
    assert_eq!(args_out(&out.stdout).len(), 1000);
    assert_eq!(args_out(&out.stdout), args.iter().map(|a| a.as_bytes().to_vec()).collect::<Vec<_>>());
}

#[test]
fn environment_names_and_values_are_bytes() {
    require_root!();
    let image = busybox!();
    let out = Sandbox::builder(&image)
        .env(OsStr::from_bytes(b"K\xe9Y"), OsStr::from_bytes(b"v\xff\x80 = x"))
        .env("EMPTY", "")
        .run([PROBE, "env"])
        .unwrap();
    let lines: Vec<&[u8]> = out.stdout.split(|&b| b == b'\n').collect();
    assert!(lines.contains(&&b"K\xe9Y=v\xff\x80 = x"[..]), "{:?}", String::from_utf8_lossy(&out.stdout));
    assert!(lines.contains(&&b"EMPTY="[..]));
}

#[test]
fn workdir_and_mount_paths_are_bytes() {
    require_root!();
    let image = busybox!();
    let host = tempfile::tempdir().unwrap();
    let source = host.path().join(OsStr::from_bytes(b"src-\xff\xfe"));
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join(OsStr::from_bytes(b"f\xe9")), b"latin1 name").unwrap();
    let target = std::path::PathBuf::from(OsStr::from_bytes(b"/data-\xe9\xff"));
    let out = Sandbox::builder(&image).mount_ro(&source, &target).workdir(&target).run([PROBE, "pwd"]).unwrap();
    assert_eq!(out.status, Status::Ok, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, [target.as_os_str().as_bytes(), b"\n"].concat());
    let file = target.join(OsStr::from_bytes(b"f\xe9"));
    let out =
        Sandbox::builder(&image).mount_ro(&source, &target).run([OsStr::new(PROBE), "cat".as_ref(), file.as_os_str()]);
    assert_eq!(out.unwrap().stdout, b"latin1 name");
}

#[test]
fn every_byte_value_comes_back() {
    require_root!();
    let image = busybox!();
    let all: Vec<u8> = (0..=255u8).cycle().take(256 * 64).collect();
    let out = Sandbox::builder(&image).stdin(all.clone()).run([PROBE, "stdin-echo"]).unwrap();
    assert_eq!(out.status, Status::Ok);
    assert_eq!(out.stdout, all);
    assert!(!out.stdout_truncated && !out.stderr_truncated);
}

#[test]
fn output_at_one_below_and_one_above_the_limit() {
    require_root!();
    let image = busybox!();
    let limit: usize = 1 << 20;
    let bytes: Vec<u8> = (0..=255u8).rev().cycle().take(limit + 1).collect();
    let run = |n: usize| {
        Sandbox::builder(&image)
            .output_limit(limit as u64)
            .stdin(bytes[..n].to_vec())
            .run([PROBE, "stdin-echo"])
            .unwrap()
    };
    for n in [limit - 1, limit] {
        let out = run(n);
        assert_eq!(out.status, Status::Ok, "{n} bytes fit");
        assert_eq!(out.stdout, bytes[..n], "{n} bytes come back exactly");
        assert!(!out.stdout_truncated);
    }
    let out = run(limit + 1);
    assert_eq!(out.status, Status::OutputLimit);
    assert_eq!(out.stdout, bytes[..limit], "exactly the limit is kept");
    assert!(out.stdout_truncated && !out.stderr_truncated);
}
