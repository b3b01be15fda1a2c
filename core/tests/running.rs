//! `SandboxBuilder::spawn`: a handle that waits, times out, cancels from any thread, and
//! leaves nothing behind however the run ends.

mod common;

use std::time::{Duration, Instant};

use common::{Footprint, PROBE, busybox, marked_processes, marker, require_root, stdout};
use isolette::{Error, Sandbox, Status};

#[test]
fn spawn_then_wait_gives_the_outcome() {
    require_root!();
    let image = busybox!();
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    let running = Sandbox::builder(&image).stdin("hi").spawn([PROBE, "stdin-echo"]).unwrap();
    assert!(running.pid() > 1 && !running.id().is_empty());
    let out = running.wait().unwrap();
    assert_eq!((out.status, stdout(&out)), (Status::Ok, "hi".into()));
    // A bad config is refused by spawn itself; what fails inside the sandbox (a command
    // missing from the image) comes back from wait.
    assert!(matches!(Sandbox::builder(&image).spawn([""]), Err(Error::Config(_))));
    let err = Sandbox::builder(&image).spawn(["no-such-command"]).unwrap().wait().unwrap_err();
    assert!(matches!(err, Error::CommandNotFound { .. }), "{err}");
}

#[test]
fn wait_timeout_and_try_wait() {
    require_root!();
    let image = busybox!();
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    let running = Sandbox::builder(&image).spawn([PROBE, "sleep", "0.4"]).unwrap();
    assert!(running.try_wait().unwrap().is_none());
    assert!(running.wait_timeout(Duration::from_millis(50)).unwrap().is_none());
    let out = running.wait_timeout(Duration::from_secs(5)).unwrap().expect("ended");
    assert_eq!(out.status, Status::Ok);
    assert!(running.try_wait().is_err(), "the outcome was taken");
}

#[test]
fn limits_hold_while_nobody_waits() {
    require_root!();
    let image = busybox!();
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    let running = Sandbox::builder(&image).wall_time(Duration::from_millis(200)).spawn([PROBE, "spin", "1"]).unwrap();
    // Nobody waits: try_wait only looks, now and then.
    let deadline = Instant::now() + Duration::from_secs(5);
    let out = loop {
        std::thread::sleep(Duration::from_millis(100));
        if let Some(out) = running.try_wait().unwrap() {
            break out;
        }
        assert!(Instant::now() < deadline, "the supervisor should have ended it at 200 ms");
    };
    assert_eq!(out.status, Status::WallTimeLimit);
    assert!(out.wall_time < Duration::from_secs(1), "{:?}", out.wall_time);
}

#[test]
fn cancel_from_another_thread_ends_the_run_at_once() {
    require_root!();
    let image = busybox!();
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    let mark = marker();
    let running = Sandbox::builder(&image).env(&mark.0, &mark.1).spawn([PROBE, "spin", "2"]).unwrap();
    let canceller = running.canceller();
    std::thread::sleep(Duration::from_millis(200));
    let at = Instant::now();
    let from = std::thread::spawn(move || {
        canceller.cancel();
        canceller.cancel(); // idempotent
    });
    let out = running.wait().unwrap();
    let took = at.elapsed();
    from.join().unwrap();
    assert_eq!(out.status, Status::Cancelled);
    assert!(took < Duration::from_millis(50), "cancelled in {took:?}");
    assert!(out.wall_time >= Duration::from_millis(150), "the figures so far: {:?}", out.wall_time);
    assert!(out.cpu_time > Duration::from_millis(50), "two spinners ran: {:?}", out.cpu_time);
    assert!(marked_processes(&mark).is_empty());
}

#[test]
fn kill_and_drop_leave_nothing() {
    require_root!();
    let image = busybox!();
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    let before = Footprint::warm(&image);
    let mark = marker();
    let b = Sandbox::builder(&image).env(&mark.0, &mark.1);
    let running = b.spawn([PROBE, "sleep", "10"]).unwrap();
    running.kill();
    assert_eq!(running.wait().unwrap().status, Status::Cancelled);
    // 1000 runs ended at varied moments (right after the start, during the program's own
    // start, running, after it ended) and in varied ways (drop, cancel, kill then wait).
    for i in 0..1000u64 {
        let running = b.spawn([PROBE, "sleep", if i % 7 == 0 { "0" } else { "10" }]).unwrap();
        std::thread::sleep(Duration::from_micros(i * 37 % 3000));
        match i % 3 {
            0 => drop(running),
            1 => {
                running.canceller().cancel();
                let out = running.wait().unwrap();
                assert!(matches!(out.status, Status::Cancelled | Status::Ok), "{i}: {:?}", out.status);
            }
            _ => {
                running.kill();
                drop(running);
            }
        }
        assert!(marked_processes(&mark).is_empty(), "run {i} left processes");
    }
    assert_eq!(Footprint::now(), before);
    common::assert_no_own_cgroups();
}

#[test]
fn the_sandbox_outlives_the_thread_that_spawned_it() {
    require_root!();
    let image = busybox!();
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    let b = Sandbox::builder(&image);
    let running = std::thread::spawn(move || b.spawn([PROBE, "sleep", "0.3"]).unwrap()).join().unwrap();
    let out = running.wait().unwrap();
    assert_eq!(out.status, Status::Ok, "not killed when the spawning thread ended");
}

#[test]
fn a_pool_serves_spawns_too() {
    require_root!();
    let image = busybox!();
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    let pool = Sandbox::builder(&image).pool(1).unwrap();
    assert!(pool.wait_ready(Duration::from_secs(10)));
    let out = pool.builder().spawn([PROBE, "exit", "4"]).unwrap().wait().unwrap();
    assert_eq!(out.exit_code, Some(4));
    assert_eq!(pool.served(), (1, 0));
    // The pool's thread made the sandbox, which dies with it: a run keeps the pool alive.
    assert!(pool.wait_ready(Duration::from_secs(10)));
    let running = pool.builder().spawn([PROBE, "sleep", "0.3"]).unwrap();
    drop(pool);
    assert_eq!(running.wait().unwrap().status, Status::Ok);
}

#[test]
fn piped_output_arrives_as_it_is_written() {
    require_root!();
    let image = busybox!();
    let _serial = common::serial();
    let mut running = Sandbox::builder(&image)
        .stdout(isolette::Output::Pipe)
        .spawn(["/bin/sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.1; done"])
        .unwrap();
    let stdout = running.take_stdout().expect("a piped stdout");
    assert!(running.take_stdout().is_none(), "taken once");
    let start = Instant::now();
    let mut arrivals = Vec::new();
    for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
        arrivals.push((line.unwrap(), start.elapsed()));
    }
    let lines: Vec<&str> = arrivals.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(lines, ["line 1", "line 2", "line 3", "line 4", "line 5"]);
    for pair in arrivals.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(gap > Duration::from_millis(50), "lines came together, not as written: {arrivals:?}");
    }
    let out = running.wait().unwrap();
    assert_eq!(out.status, Status::Ok);
    assert!(out.stdout.is_empty(), "streamed, not captured");
}

#[test]
fn piped_stdin_is_written_while_the_program_runs() {
    require_root!();
    let image = busybox!();
    let _serial = common::serial();
    let mut running = Sandbox::builder(&image)
        .stdin_from(isolette::Stdin::Pipe)
        .stdout(isolette::Output::Pipe)
        .spawn([PROBE, "stdin-echo"])
        .unwrap();
    let mut stdin = running.take_stdin().unwrap();
    let mut stdout = running.take_stdout().unwrap();
    use std::io::{Read, Write};
    stdin.write_all(b"ping\n").unwrap();
    let mut buf = [0u8; 5];
    stdout.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"ping\n", "echoed while running");
    drop(stdin); // end of file
    let out = running.wait().unwrap();
    assert_eq!(out.status, Status::Ok);
}

#[test]
fn piped_output_keeps_the_limit_and_waits_for_a_slow_reader() {
    require_root!();
    let image = busybox!();
    let _serial = common::serial();
    use std::io::Read;
    // Past the limit: the program is stopped and the reader gets exactly the limit.
    let mut running = Sandbox::builder(&image)
        .output_limit(64 << 10)
        .stdout(isolette::Output::Pipe)
        .spawn([PROBE, "write-bytes", "1M"])
        .unwrap();
    let mut stdout = running.take_stdout().unwrap();
    let mut got = Vec::new();
    stdout.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), 64 << 10);
    let out = running.wait().unwrap();
    assert_eq!((out.status, out.stdout_truncated), (Status::OutputLimit, true));
    // A reader that reads nothing until the run is over loses nothing, and the program was
    // never held up by it.
    let mut running =
        Sandbox::builder(&image).stdout(isolette::Output::Pipe).spawn([PROBE, "write-bytes", "512K"]).unwrap();
    let mut stdout = running.take_stdout().unwrap();
    let out = running.wait().unwrap();
    assert_eq!(out.status, Status::Ok);
    let mut got = Vec::new();
    stdout.read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), 512 << 10, "all of it, after the run");
    // With run(), nobody reads a pipe: its output is dropped, the limit still counts.
    let out = Sandbox::builder(&image).stdout(isolette::Output::Pipe).run([PROBE, "write-bytes", "10K"]).unwrap();
    assert_eq!((out.status, out.stdout.len()), (Status::Ok, 0));
}

#[test]
fn a_signal_reaches_the_program_through_the_init() {
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    require_root!();
    let image = busybox!();
    let script = "trap 'echo got-term; exit 3' TERM; echo ready; while :; do sleep 0.05; done";
    let mut running = Sandbox::builder(&image).stdout(isolette::Output::Pipe).spawn(["/bin/sh", "-c", script]).unwrap();
    let mut shown = std::io::BufReader::new(running.take_stdout().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut shown, &mut line).unwrap();
    assert_eq!(line, "ready\n");
    assert!(matches!(running.signal(libc::SIGSEGV), Err(Error::Config(_))), "not passed on");
    running.signal(libc::SIGTERM).unwrap();
    line.clear();
    std::io::BufRead::read_line(&mut shown, &mut line).unwrap();
    assert_eq!(line, "got-term\n");
    let out = running.wait_timeout(Duration::from_secs(5)).unwrap().expect("ended");
    assert_eq!((out.status, out.exit_code), (Status::RuntimeError, Some(3)));
    // A program without a handler dies of it, as it would outside; a signal sent at once,
    // before the program has started, waits for it.
    let running = Sandbox::builder(&image).spawn(["/bin/sleep", "10"]).unwrap();
    running.signal(libc::SIGTERM).unwrap();
    let out = running.wait().unwrap();
    assert_eq!((out.status, out.signal), (Status::Signaled, Some(libc::SIGTERM)));
}

#[test]
fn ready_fd_says_when_the_outcome_is_in() {
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    require_root!();
    let image = busybox!();
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let running = Sandbox::builder(&image).spawn(["/bin/sleep", "0.3"]).unwrap();
    let readable = |timeout: u16| {
        let mut fds = [PollFd::new(running.ready_fd(), PollFlags::POLLIN)];
        poll(&mut fds, PollTimeout::from(timeout)).unwrap() == 1
    };
    assert!(!readable(0), "not before the run ends");
    let started = Instant::now();
    assert!(readable(5000));
    assert!(started.elapsed() >= Duration::from_millis(200), "{:?}", started.elapsed());
    let out = running.wait().unwrap();
    assert_eq!(out.status, Status::Ok);
}

#[test]
fn a_canceller_given_to_the_builder_stops_run_on_the_callers_thread() {
    // Serial: one test counts what the whole process holds.
    let _serial = common::serial();
    require_root!();
    let image = busybox!();
    let stop = isolette::Canceller::new().unwrap();
    let remote = stop.clone();
    let canceller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        remote.cancel();
    });
    let started = Instant::now();
    let out = Sandbox::builder(&image).canceller(&stop).run(["/bin/sleep", "10"]).unwrap();
    assert_eq!(out.status, Status::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    canceller.join().unwrap();
    // It stays cancelled: a run started with it afterwards ends at once, spawned or not.
    let out = Sandbox::builder(&image).canceller(&stop).spawn(["/bin/sleep", "10"]).unwrap().wait().unwrap();
    assert_eq!(out.status, Status::Cancelled);
    // A byte written to its fd is a cancel (what a signal handler can do).
    let stop = isolette::Canceller::new().unwrap();
    nix::unistd::write(&stop, &[1]).unwrap();
    let out = Sandbox::builder(&image).canceller(&stop).run(["/bin/sleep", "10"]).unwrap();
    assert_eq!(out.status, Status::Cancelled);
}
