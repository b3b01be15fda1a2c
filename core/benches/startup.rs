//! Start-up latency and throughput of a sandbox running `/bin/true`, side by side with the
//! floors (fork+exec, `unshare`) and bubblewrap when it is installed, in one run.
//!
//! `cargo bench --features cli --bench startup` (as root; needs the busybox test image from
//! `scripts/build-test-images.sh`). `ISOLETTE_BENCH_RUNS` sets the runs per row (default 300).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use isolette::{Image, Sandbox, SeccompPolicy, Status};

fn runs() -> usize {
    std::env::var("ISOLETTE_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
}

/// Median and 90th percentile of `n` timed calls of `f`, after a few warm-up calls.
fn measure(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..5 {
        f();
    }
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    (times[n / 2], times[n * 9 / 10])
}

fn command(argv: &[&str]) -> impl FnMut() {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    move || {
        let status = Command::new(&argv[0]).args(&argv[1..]).stdout(Stdio::null()).status().expect("spawn");
        assert!(status.success(), "{argv:?}: {status}");
    }
}

fn row(name: &str, (median, p90): (Duration, Duration)) {
    println!("{name:<58} {:>9.3} ms {:>9.3} ms", median.as_secs_f64() * 1e3, p90.as_secs_f64() * 1e3);
}

/// Runs per second with `threads` callers in parallel, over `total` runs.
fn throughput(image: &Image, threads: usize, total: usize) -> f64 {
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..total / threads {
                    let out = Sandbox::run(image, ["/bin/true"]).expect("run");
                    assert_eq!(out.status, Status::Ok);
                }
            });
        }
    });
    total as f64 / t.elapsed().as_secs_f64()
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` asks for a list; this is not a test.
    }
    let rootfs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/images/busybox");
    if !nix::unistd::geteuid().is_root() || !rootfs.join("bin/true").exists() {
        eprintln!("startup bench: needs root and the busybox image (scripts/build-test-images.sh)");
        return;
    }
    let rootfs = rootfs.canonicalize().unwrap();
    let root = rootfs.to_str().unwrap();
    let image = Image::open(&rootfs).unwrap();
    let n = runs();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name\t: ").map(String::from))
        .unwrap_or_default();
    println!("isolette start-up benchmark: {n} runs per row, /bin/true from the busybox image");
    println!("machine: {} cores, {cpu}, kernel {}", num_cpus(), isolette::HostReport::probe().kernel);
    println!("{:<58} {:>12} {:>12}", "", "median", "p90");

    let true_static = rootfs.join("bin/busybox");
    let true_static = true_static.to_str().unwrap();
    row("fork+exec static true (floor)", measure(n, command(&[true_static, "true"])));
    row(
        "unshare -U -r -p -f -m -n -i -u -C true (namespaces floor)",
        measure(n, command(&["unshare", "-U", "-r", "-p", "-f", "-m", "-n", "-i", "-u", "-C", true_static, "true"])),
    );
    row(
        "isolette: Sandbox::run in-process",
        measure(n, || {
            let out = Sandbox::run(&image, ["/bin/true"]).expect("run");
            assert_eq!(out.status, Status::Ok);
        }),
    );
    row(
        "isolette: in-process, no cgroup (rusage accounting)",
        measure(n, || {
            let out = Sandbox::builder(&image).cgroup(false).run(["/bin/true"]).expect("run");
            assert_eq!(out.status, Status::Ok);
        }),
    );
    row(
        "isolette: in-process, memory + pids + cpu-time limits",
        measure(n, || {
            let out = Sandbox::builder(&image)
                .memory(256 << 20)
                .pids(32)
                .cpu_time(Duration::from_secs(1))
                .run(["/bin/true"])
                .expect("run");
            assert_eq!(out.status, Status::Ok);
        }),
    );
    row(
        "isolette: Sandbox::run in-process, user namespace",
        measure(n, || {
            let out = Sandbox::builder(&image).user_namespace(true).run(["/bin/true"]).expect("run");
            assert_eq!(out.status, Status::Ok);
        }),
    );
    let cli = env!("CARGO_BIN_EXE_isolette");
    row("isolette: CLI process (isolette run)", measure(n, command(&[cli, "run", "--image", root, "--", "/bin/true"])));
    row(
        "isolette: CLI process, --no-cgroup (as bwrap: no limits)",
        measure(n, command(&[cli, "run", "--no-cgroup", "--image", root, "--", "/bin/true"])),
    );
    match Command::new("bwrap").arg("--version").output() {
        Ok(_) => row(
            "bwrap --unshare-all --die-with-parent (same rootfs)",
            measure(
                n,
                command(&[
                    "bwrap",
                    "--unshare-all",
                    "--die-with-parent",
                    "--ro-bind",
                    root,
                    "/",
                    "--proc",
                    "/proc",
                    "--dev",
                    "/dev",
                    "/bin/true",
                ]),
            ),
        ),
        Err(_) => println!("bwrap: not installed (apt-get install bubblewrap for this row)"),
    }
    seccomp_overhead(&image);
    for threads in [1, 2] {
        println!("isolette throughput, {threads} caller thread(s): {:>8.0} runs/s", throughput(&image, threads, n * 2));
    }
}

/// A syscall-heavy payload (10 million getppid calls) under the default seccomp policy and
/// with no filter: the filter's cost on every call.
fn seccomp_overhead(image: &Image) {
    let probe = "/usr/local/bin/isolette-probe";
    let time = |policy: SeccompPolicy| {
        let b = Sandbox::builder(image).seccomp(policy).wall_time(Duration::from_secs(60));
        let mut runs: Vec<Duration> = (0..5)
            .map(|_| {
                let out = b.run([probe, "syscall-loop", "10000000"]).expect("run");
                assert_eq!(out.status, Status::Ok);
                out.wall_time
            })
            .collect();
        runs.sort();
        runs[2]
    };
    let off = time(SeccompPolicy::disabled());
    let on = time(SeccompPolicy::default_deny());
    println!(
        "10M getppid calls: no filter {:.3} s, default policy {:.3} s: {:.3}x",
        off.as_secs_f64(),
        on.as_secs_f64(),
        on.as_secs_f64() / off.as_secs_f64()
    );
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}
