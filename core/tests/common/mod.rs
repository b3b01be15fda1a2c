//! Shared helpers of the integration tests: skips with a reason (panics under
//! `ISOLETTE_TEST_STRICT=1`, as CI runs), the test images, and leftover checks.
#![allow(dead_code, unused_macros)]

use std::path::PathBuf;

use isolette::{Image, Outcome, SandboxBuilder};

/// Skips the test with a printed reason, or fails it in strict mode.
pub fn skip(test: &str, reason: &str) {
    if std::env::var_os("ISOLETTE_TEST_STRICT").is_some_and(|v| v == "1") {
        panic!("{test}: {reason} (ISOLETTE_TEST_STRICT=1 turns this skip into a failure)");
    }
    eprintln!("SKIP {test}: {reason}");
}

/// Returns from the test unless running as root.
macro_rules! require_root {
    () => {
        if !nix::unistd::geteuid().is_root() {
            common::skip(module_path!(), "needs root (CI runs as root)");
            return;
        }
    };
}

/// Returns the busybox test image, or returns from the test when it is missing.
macro_rules! busybox {
    () => {
        match common::image("busybox") {
            Some(image) => image,
            None => {
                common::skip(module_path!(), "the busybox test image is missing; run scripts/build-test-images.sh");
                return;
            }
        }
    };
}

/// The CLI's path, or returns from the test when it was built without `--features cli`.
macro_rules! cli {
    () => {
        match common::cli_path() {
            Some(cli) => cli,
            None => {
                common::skip(module_path!(), "build with --features cli for the CLI");
                return;
            }
        }
    };
}

#[allow(unused_imports)] // not every test binary runs the CLI
pub(crate) use {busybox, cli, require_root};

/// The CLI the tests run: `ISOLETTE_TEST_CLI` when set (scripts/test.sh points it at the
/// static release CLI, the one that ships), else the one cargo built with `--features cli`.
pub fn cli_path() -> Option<&'static str> {
    static PATH: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let path = PATH.get_or_init(|| match std::env::var("ISOLETTE_TEST_CLI") {
        Ok(path) => Some(path),
        Err(_) => option_env!("CARGO_BIN_EXE_isolette").map(str::to_string),
    });
    path.as_deref()
}

/// Where the test images are built (`scripts/build-test-images.sh`).
pub fn images_dir() -> PathBuf {
    match std::env::var_os("ISOLETTE_CACHE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/images"),
    }
}

/// Opens a test image by name, if it has been built.
pub fn image(name: &str) -> Option<Image> {
    let dir = images_dir().join(name);
    dir.join("usr/local/bin/isolette-probe").exists().then(|| Image::open(dir).expect("test image opens"))
}

/// Path of the probe inside the test images.
pub const PROBE: &str = "/usr/local/bin/isolette-probe";

/// Runs the probe with `args` under `builder`.
pub fn probe(builder: &SandboxBuilder, args: &[&str]) -> Outcome {
    let argv: Vec<String> = std::iter::once(PROBE).chain(args.iter().copied()).map(String::from).collect();
    builder.run(argv).unwrap_or_else(|e| panic!("probe {args:?}: {e}"))
}

pub fn stdout(out: &Outcome) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What a process must not leave behind: children, fds, mounts.
#[derive(Debug, PartialEq, Eq)]
pub struct Footprint {
    pub children: usize,
    pub fds: usize,
    pub mounts: usize,
    /// isolette's own threads (supervisors, pools), but for the one it keeps for good once
    /// started (cgroup removal). Only these: the test harness starts and ends its own.
    pub threads: usize,
}

impl Footprint {
    /// What the process holds after one run of `image`: a process keeps one fd of its own
    /// for good from its first sandbox on (the init binary's memfd), which is no leak.
    pub fn warm(image: &Image) -> Footprint {
        isolette::Sandbox::run(image, ["/bin/true"]).expect("a warm-up run");
        Footprint::now()
    }

    /// What the process holds now, once isolette's spare cgroups (made ahead for a next run,
    /// and removed at exit) are gone too.
    pub fn now() -> Footprint {
        isolette::cleanup();
        let children = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .map(|t| std::fs::read_to_string(t.path().join("children")).unwrap_or_default().split_whitespace().count())
            .sum();
        let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
        // Only mounts a sandbox could leak: other programs on the host may mount and unmount
        // things of their own meanwhile (debootstrap does).
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains("overlay") || l.contains("isolette") || l.contains(".oldroot"))
            .count();
        let threads = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.starts_with("isolette-") && c.trim() != "isolette-cgroup")
            })
            .count();
        Footprint { children, fds, mounts, threads }
    }
}

/// A marker for the environment of a test's sandboxes, so [`marked_processes`] finds
/// exactly their processes (other tests or tools may run probes of their own).
pub fn marker() -> (String, String) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ("ISOLETTE_TEST_MARK".into(), format!("{}-{n}", std::process::id()))
}

/// Host processes whose environment holds `marker` (a `KEY=VALUE` from [`marker`]).
pub fn marked_processes(marker: &(String, String)) -> Vec<u32> {
    let needle = format!("{}={}", marker.0, marker.1).into_bytes();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|&b| b == 0).any(|kv| kv == needle))
        })
        .collect()
}

/// Cgroup directories below `isolette/` that this test process made (their names start
/// with its pid), across every hierarchy.
pub fn own_cgroups() -> Vec<PathBuf> {
    cgroups_of(std::process::id())
}

/// Cgroup directories below `isolette/`, in every hierarchy, made by process `pid`.
pub fn cgroups_of(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("{pid}-");
    let mut parents = vec![PathBuf::from("/sys/fs/cgroup/isolette")];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        parents.extend(entries.flatten().map(|e| e.path().join("isolette")));
    }
    parents
        .iter()
        .filter_map(|p| std::fs::read_dir(p).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect()
}

/// Waits up to a second for this process's cgroups to be gone (removal is deferred while
/// the kernel still holds one), then asserts that none is left.
pub fn assert_no_own_cgroups() {
    isolette::cleanup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while !own_cgroups().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(own_cgroups(), Vec::<PathBuf>::new(), "cgroups left behind");
}

/// Serializes the tests of one binary that count what the process holds.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A test host: a network namespace of the test's own, joined to the host by a veth pair
/// (`198.51.100.8n+1` on the host's side, `198.51.100.8n+2` in it, and the link-local
/// `169.254.100+n.X` in it too, X from this process's id: the host's route to it is
/// host-wide, and another test process may have a host `n` of its own), so that outbound
/// sandboxes have "the internet" to reach without a byte leaving the machine or aiming at
/// any address of the host's. Each test takes its own `n` (0 to 31). Torn down when
/// dropped (the namespace dies with its keeper, the veth pair with it).
pub struct TestHost {
    keeper: std::process::Child,
    host_dev: String,
    /// Its address.
    pub addr: std::net::Ipv4Addr,
    /// A link-local address of its own (cloud metadata services live at such addresses).
    pub link_local: std::net::Ipv4Addr,
    servers: Vec<std::process::Child>,
}

impl TestHost {
    /// Makes test host `n`.
    pub fn start(n: u8) -> TestHost {
        use std::process::{Command, Stdio};
        assert!(n < 32, "test hosts are numbered 0 to 31");
        let keeper = Command::new("unshare").args(["--net", "sleep", "3600"]).stdin(Stdio::null()).spawn().unwrap();
        let pid = keeper.id().to_string();
        let ours = std::fs::read_link("/proc/self/ns/net").unwrap();
        while std::fs::read_link(format!("/proc/{pid}/ns/net")).map_or(true, |ns| ns == ours) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let host_dev = format!("isoth{}x{n}", std::process::id() % 100_000);
        let peer = format!("isotp{}x{n}", std::process::id() % 100_000);
        let base = 8 * n;
        let host = TestHost {
            keeper,
            host_dev,
            addr: std::net::Ipv4Addr::new(198, 51, 100, base + 2),
            link_local: std::net::Ipv4Addr::new(169, 254, 100 + n, 2 + (std::process::id() % 250) as u8),
            servers: Vec::new(),
        };
        let run = |cmd: &mut Command| {
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let inside = |args: &[&str]| {
            run(Command::new("nsenter").args(["-t", &pid, "--net", "--", "ip"]).args(args));
        };
        let dev = host.host_dev.as_str();
        run(Command::new("ip").args(["link", "add", dev, "type", "veth", "peer", "name", &peer, "netns", &pid]));
        run(Command::new("ip").args(["addr", "add", &format!("198.51.100.{}/29", base + 1), "dev", dev]));
        run(Command::new("ip").args(["link", "set", dev, "up"]));
        run(Command::new("ip").args(["route", "add", &format!("{}/32", host.link_local), "dev", dev]));
        inside(&["addr", "add", &format!("{}/29", host.addr), "dev", &peer]);
        inside(&["addr", "add", &format!("{}/32", host.link_local), "dev", &peer]);
        inside(&["link", "set", &peer, "up"]);
        inside(&["link", "set", "lo", "up"]);
        inside(&["route", "add", "default", "dev", &peer]);
        host
    }

    /// A TCP listener inside the test host at `addr:port` (0 for any port).
    pub fn listen(&self, addr: std::net::Ipv4Addr, port: u16) -> std::net::TcpListener {
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", self.keeper.id())).unwrap();
        // A thread of its own enters the namespace; the socket stays in it.
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                std::net::TcpListener::bind((addr, port)).unwrap()
            })
            .join()
            .unwrap()
        })
    }

    /// Runs `core/tests/net/transfer.py serve-tcp|serve-udp` inside at `port` until the
    /// host is dropped; returns once it serves.
    pub fn serve_transfers(&mut self, udp: bool, port: u16) {
        use std::io::BufRead;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/net/transfer.py");
        let mut server = std::process::Command::new("nsenter")
            .args(["-t", &self.keeper.id().to_string(), "--net", "--", "python3", script])
            .args([if udp { "serve-udp" } else { "serve-tcp" }, &self.addr.to_string(), &port.to_string()])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufReader::new(server.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready, "ready\n");
        self.servers.push(server);
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        for s in self.servers.iter_mut().chain([&mut self.keeper]) {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = std::process::Command::new("ip").args(["link", "del", &self.host_dev]).output();
    }
}
