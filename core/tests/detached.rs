//! The CLI's Docker-style commands: `run -d`, `ps`, `logs`, `wait`, `stop`, `kill`, `rm`,
//! `gc` of dead sandboxes, `run -it` on a real pseudo-terminal, and named volumes.

mod common;

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{busybox, cli, require_root};
use serde_json::Value;
/// The CLI with its own state directory and store, so tests never see each other's.
struct Cli {
    exe: &'static str,
    state: tempfile::TempDir,
    store: tempfile::TempDir,
    image: String,
}

impl Cli {
    fn new(exe: &'static str, image: &isolette::Image) -> Cli {
        Cli {
            exe,
            state: tempfile::tempdir().unwrap(),
            store: tempfile::tempdir().unwrap(),
            image: image.layers()[0].to_str().unwrap().to_string(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(self.exe);
        cmd.env("ISOLETTE_STATE", self.state.path()).env("ISOLETTE_STORE", self.store.path()).args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs and expects success; stdout as text.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// `run -d` with these flags and command; the id.
    fn detach(&self, flags: &[&str], cmd: &[&str]) -> String {
        let mut args = vec!["run", "-d", "--image", &self.image];
        args.extend(flags);
        args.push("--");
        args.extend(cmd);
        self.ok(&args).trim().to_string()
    }

    fn ps(&self) -> Vec<Value> {
        serde_json::from_str::<Value>(&self.ok(&["ps", "-a", "--json"])).unwrap().as_array().unwrap().clone()
    }

    fn status(&self, id: &str) -> String {
        let all = self.ps();
        let row = all.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("{id} not in {all:?}"));
        row["status"].as_str().unwrap().to_string()
    }

    fn status_of_name(&self, name: &str) -> String {
        let all = self.ps();
        let row = all.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("{name} not in {all:?}"));
        row["status"].as_str().unwrap().to_string()
    }

    fn started(&self, id: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.state.path().join(id).join("started")).unwrap()).unwrap()
    }
}

/// Whether a process is gone (a zombie nobody reaps counts as gone: it runs nothing).
fn gone(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |s| s.contains(") Z "))
}

#[test]
fn a_detached_run_from_start_to_rm() {
    require_root!();
    let image = busybox!();
    let cli = Cli::new(cli!(), &image);
    let script = "echo out; echo err >&2; read line < /dev/zero & sleep 0.3; echo more; exec sleep 30";
    let id = cli.detach(&["--name", "web", "--wall-time", "60"], &["/bin/sh", "-c", script]);
    assert_eq!(id.len(), 12, "{id}");
    assert_eq!(cli.status(&id), "running");
    let table = cli.ok(&["ps"]);
    assert!(table.contains(&id) && table.contains("web") && table.contains("running"), "{table}");
    // A name is unique while its sandbox exists.
    let taken = cli.run(&["run", "-d", "--name", "web", "--image", &cli.image, "--", "/bin/true"]);
    assert_eq!(taken.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("taken"), "{taken:?}");
    // Follow the logs until "more" arrives, by name and by a prefix of the id.
    let mut follow = cli.command(&["logs", "-f", "web"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 64];
    let mut stdout = follow.stdout.take().unwrap();
    while !String::from_utf8_lossy(&seen).contains("more") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "logs -f ended early: {:?}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert_eq!(String::from_utf8_lossy(&seen), "out\nmore\n");
    let logs = cli.run(&["logs", &id[..5]]);
    assert_eq!((logs.stdout.as_slice(), logs.stderr.as_slice()), (&b"out\nmore\n"[..], &b"err\n"[..]));
    // A running one is not removed without -f.
    assert_eq!(cli.run(&["rm", "web"]).status.code(), Some(1));
    // kill ends it; `logs -f` and `wait` end with it.
    let started = Instant::now();
    cli.ok(&["kill", "web"]);
    let outcome: Value = serde_json::from_str(&cli.ok(&["wait", "web"])).unwrap();
    assert_eq!(outcome["status"], "cancelled");
    assert!(follow.wait().unwrap().success());
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(cli.status(&id), "cancelled");
    assert!(!cli.ok(&["ps"]).contains(&id), "ps without -a shows running ones only");
    cli.ok(&["rm", "web"]);
    assert!(cli.ps().is_empty());
    assert!(!cli.state.path().join(&id).exists());
}

#[test]
fn a_stopped_sandbox_starts_again_with_its_flags_from_anywhere() {
    require_root!();
    let image = busybox!();
    let cli = Cli::new(cli!(), &image);
    // Made from the image's parent directory, the image named relatively (and an empty
    // argument, which must survive the trip through the state directory).
    let layer = Path::new(&cli.image);
    let made = cli
        .command(&["run", "-d", "--name", "again", "--wall-time", "60", "--image"])
        .arg(layer.file_name().unwrap())
        .args(["--", "/bin/sh", "-c", "echo \"run [$1]\"; exec sleep 30", "sh", ""])
        .current_dir(layer.parent().unwrap())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    cli.ok(&["stop", "-t", "1", "again"]);
    assert_ne!(cli.status_of_name("again"), "running");
    // Started again from elsewhere: the same flags mean the same, and its log goes on.
    let out = cli.command(&["start", "again"]).current_dir("/").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(cli.status_of_name("again"), "running");
    let deadline = Instant::now() + Duration::from_secs(5);
    while cli.ok(&["logs", "again"]) != "run []\nrun []\n" {
        assert!(Instant::now() < deadline, "{:?}", cli.ok(&["logs", "again"]));
        std::thread::sleep(Duration::from_millis(20));
    }
    cli.ok(&["rm", "-f", "again"]);
    // The new flags' bad words: exit 125, naming the flag and the word.
    for (flag, word) in [("--restart", "sometimes"), ("--user", "bob"), ("--health-interval", "soon")] {
        let out = cli.run(&["run", "-d", flag, word, "--health-cmd", "true", "--image", &cli.image, "--", "true"]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.code() == Some(125) && said.contains(flag) && said.contains(word), "{flag}: {said}");
    }
    assert!(cli.ps().is_empty());
}

#[test]
fn stop_is_sigterm_then_a_kill() {
    require_root!();
    let image = busybox!();
    let cli = Cli::new(cli!(), &image);
    let graceful = "trap 'echo bye; exit 3' TERM; echo up; while :; do sleep 0.05; done";
    let stubborn = "trap '' TERM; echo up; while :; do sleep 0.05; done";
    let a = cli.detach(&["--wall-time", "60"], &["/bin/sh", "-c", graceful]);
    let b = cli.detach(&["--wall-time", "60"], &["/bin/sh", "-c", stubborn]);
    let started = Instant::now();
    cli.ok(&["stop", "-t", "1", &a, &b]);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let out_a: Value = serde_json::from_str(&cli.ok(&["wait", &a])).unwrap();
    assert_eq!((out_a["status"].as_str(), out_a["exit_code"].as_i64()), (Some("runtime_error"), Some(3)));
    assert_eq!(cli.ok(&["logs", &a]), "up\nbye\n");
    assert_eq!(cli.status(&a), "exited (3)");
    let out_b: Value = serde_json::from_str(&cli.ok(&["wait", &b])).unwrap();
    assert_eq!(out_b["status"], "cancelled", "killed after the second: {out_b}");
    // kill -s passes a signal on.
    let c = cli.detach(&["--wall-time", "60"], &["/bin/sh", "-c", graceful]);
    cli.ok(&["kill", "-s", "TERM", &c]);
    let out_c: Value = serde_json::from_str(&cli.ok(&["wait", &c])).unwrap();
    assert_eq!(out_c["exit_code"], 3);
    cli.ok(&["rm", &a, &b, &c]);
}

#[test]
fn limits_hold_in_the_background_and_a_killed_supervisor_takes_its_sandbox() {
    require_root!();
    let image = busybox!();
    let cli = Cli::new(cli!(), &image);
    let id = cli.detach(&["--output-limit", "1000"], &["/usr/bin/yes"]);
    let out: Value = serde_json::from_str(&cli.ok(&["wait", &id])).unwrap();
    assert_eq!(out["status"], "output_limit");
    assert_eq!(std::fs::metadata(cli.state.path().join(&id).join("stdout.log")).unwrap().len(), 1000);
    let id = cli.detach(&["--wall-time", "200ms"], &["/bin/sleep", "10"]);
    let out: Value = serde_json::from_str(&cli.ok(&["wait", &id])).unwrap();
    assert_eq!(out["status"], "wall_time_limit");
    // --rm leaves nothing once it ends.
    let id = cli.detach(&["--rm"], &["/bin/true"]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while cli.state.path().join(&id).exists() {
        assert!(Instant::now() < deadline, "--rm left {id}");
        std::thread::sleep(Duration::from_millis(20));
    }

    let id = cli.detach(&["--wall-time", "60"], &["/bin/sleep", "30"]);
    let started = cli.started(&id);
    let (supervisor, init) = (started["supervisor"].as_u64().unwrap(), started["pid"].as_u64().unwrap());
    assert!(!gone(init));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(supervisor as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !gone(init) {
        assert!(Instant::now() < deadline, "the sandbox outlived its supervisor");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(cli.status(&id), "dead");
    assert!(cli.run(&["wait", &id]).status.code() == Some(1), "wait on a dead one is an error");
    let gc = cli.ok(&["gc"]);
    assert!(gc.contains(&format!("removed dead sandbox {id}")), "{gc}");
    assert!(cli.ps().iter().all(|r| r["id"] != id.as_str() && r["status"] != "dead"), "ended ones stay until rm");
}

#[test]
fn a_detached_terminal_logs_what_it_shows() {
    require_root!();
    let image = busybox!();
    let cli = Cli::new(cli!(), &image);
    let id = cli.detach(&["-t"], &["/bin/sh", "-c", "tty; stty size"]);
    cli.ok(&["wait", &id]);
    assert_eq!(cli.ok(&["logs", &id]), "/dev/pts/0\r\n24 80\r\n");
    // What -d cannot serve is refused before anything starts.
    for flags in [&["-i"][..], &["--stdout", "/tmp/x"], &["--name", "bad name"], &["--name", "-x"]] {
        let mut args = vec!["run", "-d", "--image", &cli.image];
        args.extend(flags);
        args.extend(["--", "/bin/true"]);
        assert_eq!(cli.run(&args).status.code(), Some(125), "{flags:?}");
    }
    assert!(cli.ps().iter().all(|r| r["id"] == id));
}

/// Reads the pty's master until `want` shows (10 s at most); all it read.
fn read_until(master: &mut std::fs::File, seen: &mut Vec<u8>, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(seen).contains(want) {
        assert!(Instant::now() < deadline, "no {want:?} in {:?}", String::from_utf8_lossy(seen));
        match master.read(&mut buf) {
            Ok(0) | Err(_) => panic!("the terminal closed before {want:?}: {:?}", String::from_utf8_lossy(seen)),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn run_it_attaches_this_terminal() {
    require_root!();
    let image = busybox!();
    let cli = Cli::new(cli!(), &image);
    let pty = nix::pty::openpty(Some(&nix::pty::Winsize { ws_row: 33, ws_col: 99, ws_xpixel: 0, ws_ypixel: 0 }), None)
        .unwrap();
    let before = nix::sys::termios::tcgetattr(pty.slave.as_fd()).unwrap();
    let slave = |fd: &OwnedFd| std::process::Stdio::from(fd.try_clone().unwrap());
    let mut child = cli
        .command(&["run", "-it", "--image", &cli.image, "--", "/bin/sh"])
        .stdin(slave(&pty.slave))
        .stdout(slave(&pty.slave))
        .stderr(slave(&pty.slave))
        .spawn()
        .unwrap();
    let mut master = std::fs::File::from(pty.master);
    let mut seen = Vec::new();
    read_until(&mut master, &mut seen, "$ ");
    // Raw mode here: the sandbox's terminal does the echo and the line editing.
    let raw = nix::sys::termios::tcgetattr(pty.slave.as_fd()).unwrap();
    assert!(!raw.local_flags.contains(nix::sys::termios::LocalFlags::ICANON));
    master.write_all(b"stty size; echo sum-$((6*7))\r").unwrap();
    read_until(&mut master, &mut seen, "sum-42");
    assert!(String::from_utf8_lossy(&seen).contains("33 99"), "{:?}", String::from_utf8_lossy(&seen));
    master.write_all(b"exit 3\r").unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    let after = nix::sys::termios::tcgetattr(pty.slave.as_fd()).unwrap();
    assert_eq!(format!("{before:?}"), format!("{after:?}"), "the terminal is restored");
}

#[test]
fn a_named_volume_keeps_files_between_runs() {
    require_root!();
    let image = busybox!();
    let cli = Cli::new(cli!(), &image);
    cli.ok(&["volume", "create", "data"]);
    assert_eq!(cli.run(&["volume", "create", "data"]).status.code(), Some(1), "exists already");
    let run = |mount: &str, script: &str| {
        let out = cli.run(&["run", "--json", "--mount", mount, "--image", &cli.image, "--", "/bin/sh", "-c", script]);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(run("data:/data:rw", "echo kept > /data/f")["status"], "ok");
    let out = run("data:/srv", "cat /srv/f; echo x > /srv/g");
    assert_eq!((out["stdout"].as_str(), out["status"].as_str()), (Some("kept\n"), Some("runtime_error")), "read-only");
    let inspect: Value = serde_json::from_str(&cli.ok(&["volume", "inspect", "data"])).unwrap();
    assert_eq!(inspect["used"], 5);
    assert!(cli.ok(&["volume", "ls"]).contains("data"));
    // A volume a run uses is not removed.
    let id = cli.detach(&["--mount", "data:/data", "--wall-time", "60"], &["/bin/sleep", "30"]);
    let refused = cli.run(&["volume", "rm", "data"]);
    assert!(String::from_utf8_lossy(&refused.stderr).contains("in use"), "{refused:?}");
    cli.ok(&["rm", "-f", &id]);
    cli.ok(&["volume", "rm", "data"]);
    assert!(!cli.ok(&["volume", "ls"]).contains("data"));
    let missing = cli.run(&["run", "--mount", "data:/data", "--image", &cli.image, "--", "/bin/true"]);
    assert_eq!(missing.status.code(), Some(125));
}

#[test]
fn a_size_cap_holds() {
    require_root!();
    let image = busybox!();
    let cli = Cli::new(cli!(), &image);
    if !Path::new("/sbin/mkfs.ext4").exists() && !Path::new("/usr/sbin/mkfs.ext4").exists() {
        common::skip(module_path!(), "mkfs.ext4 is missing (e2fsprogs)");
        return;
    }
    cli.ok(&["volume", "create", "--size", "8M", "small"]);
    let out = cli.run(&[
        "run",
        "--json",
        "--mount",
        "small:/data:rw",
        "--image",
        &cli.image,
        "--",
        "/bin/sh",
        "-c",
        "dd if=/dev/zero of=/data/big bs=1M count=20 2>&1; echo written",
    ]);
    let out: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out["stdout"].as_str().unwrap().contains("No space left"), "{out}");
    let inspect: Value = serde_json::from_str(&cli.ok(&["volume", "inspect", "small"])).unwrap();
    assert!(inspect["used"].as_u64().unwrap() <= 8 << 20, "{inspect}");
    let fs = cli.store.path().canonicalize().unwrap().join("volumes/small/fs");
    assert!(std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(fs.to_str().unwrap()));
    cli.ok(&["volume", "rm", "small"]);
    assert!(!std::fs::read_to_string("/proc/self/mountinfo").unwrap().contains(fs.to_str().unwrap()), "unmounted");
}
