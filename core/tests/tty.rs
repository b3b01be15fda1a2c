//! `tty(true)`: a terminal of the sandbox's own devpts as the program's stdin, stdout and
//! stderr; typing, Ctrl-C, resizing, a real REPL, and the limits that still hold.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{Footprint, PROBE, busybox, require_root, stdout};
use isolette::{Error, Output, Sandbox, Status, Stdin};

/// Reads `stream` until what came contains `want` (or panics after 10 s), and drops what
/// `seen` holds up to the end of it: the next call looks at what came after.
fn read_until(stream: &mut impl Read, seen: &mut Vec<u8>, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    loop {
        if let Some(at) = seen.windows(want.len()).position(|w| w == want.as_bytes()) {
            seen.drain(..at + want.len());
            return;
        }
        assert!(Instant::now() < deadline, "no {want:?} in {:?}", String::from_utf8_lossy(seen));
        match stream.read(&mut buf) {
            Ok(0) => panic!("end of file before {want:?} in {:?}", String::from_utf8_lossy(seen)),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn the_program_has_a_terminal_of_its_own() {
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    require_root!();
    let image = busybox!();
    let script = "tty; stty size; echo /dev/pts/*; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-terminals";
    let out = Sandbox::builder(&image).tty_size(30, 100).run(["/bin/sh", "-c", script]).unwrap();
    assert_eq!(out.status, Status::Ok, "{}", stdout(&out));
    // The terminal turns every "\n" into "\r\n"; the devpts holds this terminal only.
    assert_eq!(stdout(&out), "/dev/pts/0\r\n30 100\r\n/dev/pts/0 /dev/pts/ptmx\r\nall-terminals\r\n");
    assert!(out.stderr.is_empty());
    // Without one, there is no devpts (and the host's is not there either), and stdio is
    // not a terminal.
    let out =
        Sandbox::builder(&image).run(["/bin/sh", "-c", "echo /dev/pts/* /dev/ptm*; [ -t 0 ] || echo no"]).unwrap();
    assert_eq!(stdout(&out), "/dev/pts/* /dev/ptm*\nno\n");
}

#[test]
fn typed_bytes_arrive_and_are_echoed() {
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    require_root!();
    let image = busybox!();
    let out = Sandbox::builder(&image)
        .tty(true)
        .stdin("hello\n")
        .run(["/bin/sh", "-c", "read line; echo \"got:$line\""])
        .unwrap();
    assert_eq!(out.status, Status::Ok);
    assert_eq!(stdout(&out), "hello\r\ngot:hello\r\n");
    // Byte 4 at the start of a line is end of file.
    let out = Sandbox::builder(&image).tty(true).stdin("a\nb\n\x04").run(["/bin/cat"]).unwrap();
    assert_eq!((out.status, stdout(&out)), (Status::Ok, "a\r\nb\r\na\r\nb\r\n".into()));
}

#[test]
fn ctrl_c_interrupts_the_program() {
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    require_root!();
    let image = busybox!();
    let mut running = Sandbox::builder(&image)
        .tty(true)
        .stdin_from(Stdin::Pipe)
        .stdout(Output::Pipe)
        .spawn(["/bin/sh", "-c", "echo ready; sleep 100"])
        .unwrap();
    let mut shown = running.take_stdout().unwrap();
    let mut seen = Vec::new();
    read_until(&mut shown, &mut seen, "ready");
    running.take_stdin().unwrap().write_all(b"\x03").unwrap();
    let out = running.wait().unwrap();
    // The terminal is the program's controlling one: Ctrl-C is SIGINT to its process group.
    assert_eq!((out.status, out.signal), (Status::Signaled, Some(libc::SIGINT)));
    assert!(out.wall_time < Duration::from_secs(5));
}

#[test]
fn resize_reaches_the_program() {
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    require_root!();
    let image = busybox!();
    let mut running = Sandbox::builder(&image)
        .tty(true)
        .stdin_from(Stdin::Pipe)
        .spawn(["/bin/sh", "-c", "read line; stty size"])
        .unwrap();
    running.resize(50, 132).unwrap();
    assert!(matches!(running.resize(0, 80), Err(Error::Config(_))));
    running.take_stdin().unwrap().write_all(b"\n").unwrap();
    let out = running.wait().unwrap();
    assert_eq!((out.status, stdout(&out)), (Status::Ok, "\r\n50 132\r\n".into()));
}

#[test]
fn a_python_repl_answers() {
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    require_root!();
    let Some(image) = common::image("debian-python") else {
        common::skip(module_path!(), "the debian-python image is missing; run scripts/build-test-images.sh --python");
        return;
    };
    let mut running = Sandbox::builder(&image)
        .tty(true)
        .stdin_from(Stdin::Pipe)
        .stdout(Output::Pipe)
        .env("TERM", "xterm")
        .spawn(["python3"])
        .unwrap();
    let (mut keys, mut shown) = (running.take_stdin().unwrap(), running.take_stdout().unwrap());
    let mut seen = Vec::new();
    read_until(&mut shown, &mut seen, ">>> ");
    keys.write_all(b"6*7\n").unwrap();
    read_until(&mut shown, &mut seen, "42\r\n");
    keys.write_all(b"import os; print('tty', os.isatty(0), os.isatty(1), os.ttyname(0))\n").unwrap();
    read_until(&mut shown, &mut seen, "tty True True /dev/pts/0");
    // End of file at the next prompt, once the REPL reads again (typed earlier, between
    // two reads, the terminal's mode changes under it).
    read_until(&mut shown, &mut seen, ">>> ");
    keys.write_all(b"\x04").unwrap();
    let out = running.wait().unwrap();
    assert_eq!((out.status, out.exit_code), (Status::Ok, Some(0)));
}

#[test]
fn limits_still_hold() {
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    require_root!();
    let image = busybox!();
    // The output cap counts what the terminal shows.
    let out = Sandbox::builder(&image).tty(true).output_limit(10_000).run(["/usr/bin/yes"]).unwrap();
    assert_eq!(out.status, Status::OutputLimit);
    assert!(out.stdout.len() <= 10_000 && out.stdout_truncated);
    // Terminal injection is still refused, on the program's own terminal too.
    let out = Sandbox::builder(&image).tty(true).run([PROBE, "tiocsti"]).unwrap();
    assert_eq!(out.status, Status::SyscallBlocked, "{}", stdout(&out));
    // The wall time ends a program that waits for a key forever.
    let out = Sandbox::builder(&image).tty(true).wall_time(Duration::from_millis(300)).run(["/bin/cat"]).unwrap();
    assert_eq!(out.status, Status::WallTimeLimit);
}

#[test]
fn settings_a_terminal_cannot_serve_are_refused() {
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    let Some(image) = common::image("busybox") else { return };
    let tty = Sandbox::builder(&image).tty(true);
    for (builder, what) in [
        (tty.clone().stdout(Output::Null), "stdout null"),
        (tty.clone().stderr(Output::Pipe), "stderr pipe"),
        (tty.clone().stdin_from(Stdin::Inherit), "stdin inherit"),
        (Sandbox::builder(&image).tty_size(0, 80), "no rows"),
    ] {
        assert!(matches!(builder.check(["/bin/true"]), Err(Error::Config(_))), "{what}");
    }
    // A run without a terminal has none to resize.
    if nix::unistd::geteuid().is_root() {
        let running = Sandbox::builder(&image).spawn(["/bin/true"]).unwrap();
        assert!(matches!(running.resize(24, 80), Err(Error::Config(_))));
    }
}

#[test]
fn nothing_is_left_after_terminal_runs() {
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    require_root!();
    let image = busybox!();
    let before = Footprint::warm(&image);
    for i in 0..20 {
        let builder = Sandbox::builder(&image).tty(true);
        match i % 3 {
            0 => drop(builder.run(["/bin/echo", "hi"]).unwrap()),
            1 => drop(builder.stdin_from(Stdin::Pipe).stdout(Output::Pipe).spawn(["/bin/cat"]).unwrap()),
            _ => {
                let running = builder.spawn(["/bin/sleep", "10"]).unwrap();
                running.kill();
                assert_eq!(running.wait().unwrap().status, Status::Cancelled);
            }
        }
    }
    assert_eq!(Footprint::now(), before);
}

#[test]
fn a_warm_sandbox_gets_a_terminal_too() {
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    require_root!();
    let image = busybox!();
    let pool = Sandbox::builder(&image).pool(1).unwrap();
    assert!(pool.wait_ready(Duration::from_secs(10)));
    let out = pool.builder().tty(true).run(["/bin/sh", "-c", "tty; [ -t 0 ] && echo terminal"]).unwrap();
    assert_eq!((out.status, stdout(&out)), (Status::Ok, "/dev/pts/0\r\nterminal\r\n".into()));
    assert_eq!(pool.served(), (1, 0), "served warm");
}
