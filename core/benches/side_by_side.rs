//! isolette side by side with the anchors, in one run: start-up latency of `/bin/true`
//! without limits (W1) and with memory + pids limits (W2), throughput with two runs at a
//! time, per-run cost against the caller's own memory, and the floors the kernel sets.
//!
//! Run it through `bench/side-by-side.sh`, which builds and finds the anchors and plots
//! the result; by hand: `cargo bench --features cli --bench side_by_side` as root, with the
//! busybox test image built. Anchors come from the environment, each row skipped with a
//! message when its tool is missing: `BWRAP`, `CRUN` + `CRUN_BUNDLE_W1` + `CRUN_BUNDLE_W2`,
//! `NSJAIL`, `ISOLATE` + `ISOLATE_BOX`. `ISOLETTE_BENCH_RUNS` sets the runs per row
//! (default 300), `ISOLETTE_BENCH_JSON` a file for the figures. `ISOLETTE_CLI_BASELINE`,
//! another build of the CLI (an earlier commit's), adds its rows next to this one's: the
//! before and after of a change, in the same run.
//!
//! Rows are measured in interleaved rounds (every row a few runs, then again), so a slow
//! minute of this noisy machine weighs on every row alike and the ratios hold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use isolette::{Image, Sandbox, SandboxBuilder, Status};

/// One measured thing: what it is, its workload, and how to run it once.
struct Row {
    name: String,
    workload: &'static str,
    run: Box<dyn FnMut()>,
    times: Vec<Duration>,
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` asks for a list; this is not a test.
    }
    if std::env::var_os(GAUGE).is_some() {
        println!("{}", floor_fork(200).as_nanos());
        return;
    }
    let rootfs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/images/busybox");
    if !nix::unistd::geteuid().is_root() || !rootfs.join("bin/true").exists() {
        eprintln!("side-by-side bench: needs root and the busybox image (scripts/build-test-images.sh)");
        return;
    }
    let rootfs = rootfs.canonicalize().unwrap();
    let machine = machine();
    hide_unified_cgroup_for_crun();
    let image = Image::open(&rootfs).unwrap();
    let runs: usize = env_or("ISOLETTE_BENCH_RUNS", 300);
    let mut json = BTreeMap::new();

    println!("isolette side by side: /bin/true from the busybox image, {runs} runs per row, interleaved");
    println!("machine: {machine}");
    json.insert("machine".to_string(), serde_json::json!(machine));
    let quiet_before = quietness();

    let mut rows = latency_rows(&rootfs, &image);
    measure_interleaved(&mut rows, runs);
    println!("\n{:<62} {:>9} {:>9}", "latency of one sandbox running /bin/true", "median", "p90");
    let mut latency = Vec::new();
    for workload in ["W1", "W2"] {
        println!("{workload}: {}", if workload == "W1" { "no limits" } else { "memory 256M + pids 64" });
        for row in rows.iter_mut().filter(|r| r.workload == workload) {
            row.times.sort();
            let (median, p90) = (row.times[row.times.len() / 2], row.times[row.times.len() * 9 / 10]);
            println!("  {:<60} {:>7.3}ms {:>7.3}ms", row.name, ms(median), ms(p90));
            latency.push(serde_json::json!({
                "name": row.name, "workload": workload, "median_ms": ms(median), "p90_ms": ms(p90)
            }));
        }
    }
    json.insert("latency".into(), serde_json::json!(latency));

    println!("\nthroughput, two runs at a time (W2 where the tool has limits)");
    let mut throughput = Vec::new();
    for (name, make) in throughput_rows(&rootfs, &image) {
        let per_sec = two_at_a_time(make, runs.max(100));
        println!("  {name:<60} {per_sec:>7.0} runs/s");
        throughput.push(serde_json::json!({ "name": name, "runs_per_s": per_sec }));
    }
    json.insert("throughput".into(), serde_json::json!(throughput));

    println!("\nrequest to program start, in-process W2, p50: to its execve (Outcome::setup_time), to its main");
    let w = warm_pool(&image, runs.min(200));
    println!("  cold path: to execve {:.3} ms, to main {:.3} ms", w.cold_exec, w.cold_main);
    println!(
        "  warm pool (4 ready): to execve {:.3} ms ({:.2}x), to main {:.3} ms ({:.2}x); whole run {:.3} ms ({:.2}x \
         cold's {:.3} ms)",
        w.warm_exec,
        w.warm_exec / w.cold_exec,
        w.warm_main,
        w.warm_main / w.cold_main,
        w.warm_total,
        w.warm_total / w.cold_total,
        w.cold_total
    );
    let (busy_cold, busy_warm) = busy_pool(&image, runs.min(200));
    println!(
        "  both cores busy (two cpu-bound processes beside), back to back: whole run cold {busy_cold:.3} ms, warm \
         pool {busy_warm:.3} ms ({:.2}x)",
        busy_warm / busy_cold
    );
    json.insert(
        "warm_pool".into(),
        serde_json::json!({
            "cold_exec_ms": w.cold_exec, "cold_main_ms": w.cold_main, "cold_total_ms": w.cold_total,
            "warm_exec_ms": w.warm_exec, "warm_main_ms": w.warm_main, "warm_total_ms": w.warm_total,
            "busy_cold_total_ms": busy_cold, "busy_warm_total_ms": busy_warm,
        }),
    );

    println!("\nin-process W2 against the memory the calling process holds (touched)");
    let mut caller = Vec::new();
    let base = caller_memory(&image, &mut caller, runs.min(150));
    json.insert("caller_memory".into(), serde_json::json!({ "rows": caller, "ratio_2g_to_20m": base }));

    println!("\nsyscall-heavy program: 10 million getppid calls, median of 5");
    let (off, on) = seccomp_overhead(&image);
    println!("  no filter {off:.3} s, default policy {on:.3} s: {:.3}x", on / off);
    json.insert("seccomp_getppid".into(), serde_json::json!({ "off_s": off, "default_s": on }));

    println!("\nfloors: what the kernel charges for each part (median of 200)");
    let floors = floors(&rootfs);
    json.insert("floors".into(), serde_json::json!(floors));

    let quiet_after = quietness();
    // The gauge's change over the run, whichever way: other work on the machine moves it.
    let drift = (ms(quiet_after) / ms(quiet_before)).max(ms(quiet_before) / ms(quiet_after));
    let publishable = drift <= QUIET_ENOUGH;
    println!(
        "\nquietness: fork+exit+wait {:.3} ms before, {:.3} ms after ({drift:.2}x); load average {}",
        ms(quiet_before),
        ms(quiet_after),
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );
    if !publishable {
        println!("NOT PUBLISHABLE: the machine was not quiet (drift {drift:.2}x > {QUIET_ENOUGH}x); run it again");
    }
    json.insert(
        "quietness".into(),
        serde_json::json!({
            "fork_ms_before": ms(quiet_before),
            "fork_ms_after": ms(quiet_after),
            "drift": drift,
            "publishable": publishable,
        }),
    );
    if let Ok(path) = std::env::var("ISOLETTE_BENCH_JSON") {
        std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        println!("figures written to {path}");
    }
}

/// crun 1.8 refuses a hybrid host whose unified hierarchy lists any controller ("cgroups
/// in hybrid mode not supported"); these machines list hugetlb there. Every row runs in a
/// private mount namespace of this process, made first thing while it has one thread,
/// where `/sys/fs/cgroup/unified` is unmounted: the host's mounts and cgroups are untouched.
fn hide_unified_cgroup_for_crun() {
    if std::env::var_os("CRUN").is_none() || !Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        return;
    }
    // SAFETY: single-threaded here; plain flags and NUL-terminated strings.
    let ok = unsafe {
        libc::unshare(libc::CLONE_NEWNS) == 0
            && libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) == 0
            && libc::umount2(c"/sys/fs/cgroup/unified".as_ptr(), libc::MNT_DETACH) == 0
    };
    println!(
        "note: every row runs in a private mount namespace without /sys/fs/cgroup/unified, for crun ({})",
        if ok { "done" } else { "failed: crun rows may fail" }
    );
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name\t: ").map(String::from))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let report = isolette::HostReport::probe();
    format!("{cores} cores, {cpu}, kernel {}, cgroup {:?}", report.kernel, report.cgroup)
}

/// The CLI to time: `ISOLETTE_CLI` (the static build users get), else cargo's.
fn cli() -> String {
    std::env::var("ISOLETTE_CLI").unwrap_or_else(|_| env!("CARGO_BIN_EXE_isolette").to_string())
}

/// Runs a command to completion, quietly; it must succeed.
fn command(argv: Vec<String>) -> Box<dyn FnMut()> {
    Box::new(move || {
        let status = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("spawn");
        assert!(status.success(), "{argv:?}: {status}");
    })
}

fn in_process(b: SandboxBuilder) -> Box<dyn FnMut()> {
    Box::new(move || {
        let out = b.run(["/bin/true"]).expect("run");
        assert_eq!(out.status, Status::Ok);
    })
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// A tool from the environment variable `var`, if it names something runnable.
fn tool(var: &str) -> Option<String> {
    let path = std::env::var(var).ok()?;
    Command::new(&path).arg("--version").output().ok().map(|_| path)
}

fn latency_rows(rootfs: &Path, image: &Image) -> Vec<Row> {
    let root = rootfs.to_str().unwrap();
    let cli = &cli();
    let mut rows = Vec::new();
    let mut add = |name: &str, workload, run| {
        rows.push(Row { name: name.to_string(), workload, run, times: Vec::new() });
    };
    add(
        "isolette CLI (--no-cgroup)",
        "W1",
        command(strings(&[cli, "run", "--no-cgroup", "--image", root, "--", "/bin/true"])),
    );
    add("isolette in-process, no cgroup", "W1", in_process(Sandbox::builder(image).cgroup(false)));
    add(
        "isolette CLI --memory 256M --pids 64",
        "W2",
        command(strings(&[cli, "run", "--memory", "256M", "--pids", "64", "--image", root, "--", "/bin/true"])),
    );
    add("isolette in-process, memory + pids", "W2", in_process(Sandbox::builder(image).memory(256 << 20).pids(64)));
    if let Some(base) = tool("ISOLETTE_CLI_BASELINE") {
        add(
            "isolette CLI (--no-cgroup), baseline build",
            "W1",
            command(strings(&[&base, "run", "--no-cgroup", "--image", root, "--", "/bin/true"])),
        );
        add(
            "isolette CLI --memory 256M --pids 64, baseline build",
            "W2",
            command(strings(&[&base, "run", "--memory", "256M", "--pids", "64", "--image", root, "--", "/bin/true"])),
        );
    }
    match tool("BWRAP") {
        Some(bwrap) => add("bubblewrap --unshare-all", "W1", command(bwrap_argv(&bwrap, root))),
        None => println!("skipped: bubblewrap (set BWRAP; apt-get install bubblewrap)"),
    }
    match (tool("CRUN"), std::env::var("CRUN_BUNDLE_W1"), std::env::var("CRUN_BUNDLE_W2")) {
        (Some(crun), Ok(w1), Ok(w2)) => {
            for (workload, bundle) in [("W1", w1), ("W2", w2)] {
                let crun = crun.clone();
                let mut n = 0u64;
                add(
                    &format!("crun run (cgroupfs{})", if workload == "W2" { ", limits" } else { "" }),
                    workload,
                    Box::new(move || {
                        n += 1;
                        let id = format!("isolette-bench-{}-{n}", std::process::id());
                        command(strings(&[&crun, "--cgroup-manager=cgroupfs", "run", "--bundle", &bundle, &id]))();
                    }),
                );
            }
        }
        _ => println!("skipped: crun (set CRUN, CRUN_BUNDLE_W1 and CRUN_BUNDLE_W2; bench/side-by-side.sh does)"),
    }
    match tool("NSJAIL") {
        Some(nsjail) => {
            add("nsjail -Mo", "W1", command(nsjail_argv(&nsjail, root, false)));
            add("nsjail -Mo, cgroup limits", "W2", command(nsjail_argv(&nsjail, root, true)));
        }
        None => println!("skipped: nsjail (set NSJAIL to a binary built from google/nsjail)"),
    }
    match isolate() {
        Some((isolate, [b1, b2, _])) => {
            // isolate runs the host's /bin/true in its box, not the busybox image's.
            add("isolate 1.10 --run (host /bin/true)", "W1", command(isolate_argv(&isolate, &b1, false)));
            add(
                "isolate 1.10 --cg --run, cg-mem + processes (RLIMIT_NPROC)",
                "W2",
                command(isolate_argv(&isolate, &b2, true)),
            );
        }
        None => println!("skipped: isolate (set ISOLATE and ISOLATE_BOX1..3; bench/side-by-side.sh does)"),
    }
    rows
}

/// bubblewrap with every namespace, the image read-only as root, `/proc` and `/dev`.
fn bwrap_argv(bwrap: &str, root: &str) -> Vec<String> {
    strings(&[
        bwrap,
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
    ])
}

/// nsjail once, chrooted in the image, with its own default namespaces (user with root
/// mapped, pid, mount, net, ipc, uts, cgroup) and /proc; `limits`: the W2 cgroup limits.
fn nsjail_argv(nsjail: &str, root: &str, limits: bool) -> Vec<String> {
    let mut argv = strings(&[nsjail, "-Mo", "-Q", "--chroot", root]);
    if limits {
        argv.extend(strings(&["--cgroup_mem_max", "268435456", "--cgroup_pids_max", "64"]));
    }
    argv.extend(strings(&["--", "/bin/true"]));
    argv
}

/// isolate and its three boxes made with `--init` (W1 without cgroups; two W2 ones, one per
/// worker of the throughput row).
fn isolate() -> Option<(String, [String; 3])> {
    let isolate = tool("ISOLATE")?;
    let bx = |n: u8| std::env::var(format!("ISOLATE_BOX{n}")).ok();
    Some((isolate, [bx(1)?, bx(2)?, bx(3)?]))
}

fn isolate_argv(isolate: &str, bx: &str, cg: bool) -> Vec<String> {
    let id = format!("--box-id={bx}");
    let mut argv = strings(&[isolate]);
    if cg {
        argv.extend(strings(&["--cg", &id, "--cg-mem=262144", "--processes=64"]));
    } else {
        argv.push(id);
    }
    argv.extend(strings(&["--run", "--", "/bin/true"]));
    argv
}

/// Every row `runs` times, in rounds of 10 runs per row.
fn measure_interleaved(rows: &mut [Row], runs: usize) {
    for row in rows.iter_mut() {
        for _ in 0..5 {
            (row.run)(); // warm up: caches, the first run's cgroup gc, page cache
        }
    }
    let mut done = 0;
    while done < runs {
        let batch = (runs - done).min(10);
        for row in rows.iter_mut() {
            for _ in 0..batch {
                let t = Instant::now();
                (row.run)();
                row.times.push(t.elapsed());
            }
        }
        done += batch;
    }
}

type Maker = Box<dyn Fn() -> Box<dyn FnMut()> + Sync>;

fn throughput_rows(rootfs: &Path, image: &Image) -> Vec<(String, Maker)> {
    let root = rootfs.to_str().unwrap().to_string();
    let cli = cli();
    let mut rows: Vec<(String, Maker)> = Vec::new();
    let r = root.clone();
    rows.push((
        "isolette CLI, W2".into(),
        Box::new(move || {
            command(strings(&[&cli, "run", "--memory", "256M", "--pids", "64", "--image", &r, "--", "/bin/true"]))
        }),
    ));
    let image = image.clone();
    rows.push((
        "isolette in-process (2 threads), W2".into(),
        Box::new(move || in_process(Sandbox::builder(&image).memory(256 << 20).pids(64))),
    ));
    if let Some(bwrap) = tool("BWRAP") {
        let r = root.clone();
        rows.push(("bubblewrap, W1 (no limits)".into(), Box::new(move || command(bwrap_argv(&bwrap, &r)))));
    }
    if let Some((isolate, [_, b2, b3])) = isolate() {
        let worker = std::sync::atomic::AtomicUsize::new(0);
        rows.push((
            "isolate 1.10 --cg, W2 (one box per worker)".into(),
            Box::new(move || {
                let bx =
                    if worker.fetch_add(1, std::sync::atomic::Ordering::Relaxed).is_multiple_of(2) { &b2 } else { &b3 };
                command(isolate_argv(&isolate, bx, true))
            }),
        ));
    }
    if let (Some(nsjail), r) = (tool("NSJAIL"), root.clone()) {
        rows.push(("nsjail, W2".into(), Box::new(move || command(nsjail_argv(&nsjail, &r, true)))));
    }
    rows
}

/// Runs per second with two workers, each running its own copy of the row.
fn two_at_a_time(make: Maker, total: usize) -> f64 {
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..2 {
            let make = &make;
            s.spawn(move || {
                let mut run = make();
                for _ in 0..total / 2 {
                    run();
                }
            });
        }
    });
    total as f64 / t.elapsed().as_secs_f64()
}

/// Seconds for 10 million `getppid` calls with no filter and with the default policy: the
/// filter's cost on every call.
fn seccomp_overhead(image: &Image) -> (f64, f64) {
    let time = |policy: isolette::SeccompPolicy| {
        let b = Sandbox::builder(image).seccomp(policy).wall_time(Duration::from_secs(60));
        let mut runs: Vec<Duration> = (0..5)
            .map(|_| {
                let out = b.run(["/usr/local/bin/isolette-probe", "syscall-loop", "10000000"]).expect("run");
                assert_eq!(out.status, Status::Ok);
                out.wall_time
            })
            .collect();
        runs.sort();
        runs[2].as_secs_f64()
    };
    (time(isolette::SeccompPolicy::disabled()), time(isolette::SeccompPolicy::default_deny()))
}

/// p50s, in ms, from the request to the program's `execve` and to its `main`.
struct WarmFigures {
    cold_exec: f64,
    cold_main: f64,
    cold_total: f64,
    warm_exec: f64,
    warm_main: f64,
    warm_total: f64,
}

/// From the request to the program's `execve` (`Outcome::setup_time`) and to its `main`
/// (the probe's own `CLOCK_MONOTONIC` reading), cold and from a warm pool. The pool refills
/// between requests (not timed), as it would between a judge's submissions.
fn warm_pool(image: &Image, runs: usize) -> WarmFigures {
    let start = |b: &SandboxBuilder| {
        let t0 = now_ns();
        let out = b.run(["/usr/local/bin/isolette-probe", "mono"]).expect("run");
        let total = now_ns() - t0;
        let main: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("probe mono");
        (out.setup_time.as_nanos() as u64, main.saturating_sub(t0), total)
    };
    let cold_b = Sandbox::builder(image).memory(256 << 20).pids(64);
    let pool = Sandbox::builder(image).memory(256 << 20).pids(64).pool(4).expect("pool");
    let warm_b = pool.builder();
    let mut cold = (Vec::new(), Vec::new(), Vec::new());
    let mut warm = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let (exec, main, total) = start(&cold_b);
        cold.0.push(exec);
        cold.1.push(main);
        cold.2.push(total);
        pool.wait_ready(Duration::from_secs(10));
        let (exec, main, total) = start(&warm_b);
        warm.0.push(exec);
        warm.1.push(main);
        warm.2.push(total);
    }
    assert!(pool.served().0 >= runs as u64 * 9 / 10, "the pool served: {:?}", pool.served());
    let p50 = |v: &mut Vec<u64>| {
        v.sort();
        v[v.len() / 2] as f64 / 1e6
    };
    WarmFigures {
        cold_exec: p50(&mut cold.0),
        cold_main: p50(&mut cold.1),
        cold_total: p50(&mut cold.2),
        warm_exec: p50(&mut warm.0),
        warm_main: p50(&mut warm.1),
        warm_total: p50(&mut warm.2),
    }
}

/// The median whole run, cold and from a warm pool of 4, with two cpu-bound processes
/// running beside (the machine's two cores busy) and requests back to back: the pool
/// refills only as fast as the load lets it.
fn busy_pool(image: &Image, runs: usize) -> (f64, f64) {
    let cold_b = Sandbox::builder(image).memory(256 << 20).pids(64);
    let pool = Sandbox::builder(image).memory(256 << 20).pids(64).pool(4).expect("pool");
    let warm_b = pool.builder();
    pool.wait_ready(Duration::from_secs(10));
    let mut hogs: Vec<std::process::Child> = (0..2)
        .map(|_| {
            std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .expect("start a cpu-bound process")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let whole = |b: &SandboxBuilder| {
        let t0 = now_ns();
        b.run(["/bin/true"]).expect("run");
        now_ns() - t0
    };
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    for _ in 0..runs {
        cold.push(whole(&cold_b));
    }
    for _ in 0..runs {
        warm.push(whole(&warm_b));
    }
    for hog in &mut hogs {
        let _ = hog.kill();
        let _ = hog.wait();
    }
    cold.sort();
    warm.sort();
    (cold[runs / 2] as f64 / 1e6, warm[runs / 2] as f64 / 1e6)
}

fn now_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// p50 of in-process W2 runs while this process holds 20 MiB, 200 MiB, 1 GiB, 2 GiB of
/// touched memory; returns the 2 GiB / 20 MiB ratio.
fn caller_memory(image: &Image, out: &mut Vec<serde_json::Value>, runs: usize) -> f64 {
    let b = Sandbox::builder(image).memory(256 << 20).pids(64);
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut first = 0.0;
    let mut last = 0.0;
    for mib in [20usize, 200, 1024, 2048] {
        let have = held.iter().map(Vec::len).sum::<usize>() >> 20;
        let mut more = vec![0u8; (mib - have) << 20];
        for i in (0..more.len()).step_by(4096) {
            more[i] = 1;
        }
        held.push(more);
        let p50 = ms(median(runs, in_process(b.clone())));
        if first == 0.0 {
            first = p50;
        }
        last = p50;
        println!("  caller holds {mib:>5} MiB: p50 {p50:.3} ms ({:.2}x the 20 MiB row)", p50 / first);
        out.push(serde_json::json!({ "caller_mib": mib, "p50_ms": p50 }));
    }
    last / first
}

/// Median of `n` timed calls.
fn median(n: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

/// The most the quietness gauge may drift over a run whose figures are published.
const QUIET_ENOUGH: f64 = 1.3;

/// fork + _exit + wait: the cheapest process the kernel makes; also the quietness gauge.
fn floor_fork(n: usize) -> Duration {
    median(n, || fork_and(|| {}))
}

/// Set in the environment of this program started again to measure only the gauge.
const GAUGE: &str = "ISOLETTE_BENCH_GAUGE";

/// The quietness gauge, [`floor_fork`], measured by this program started afresh: a
/// process that has run the rows forks slower (more mappings, thread arenas), which would
/// read as a machine that got busier.
fn quietness() -> Duration {
    let exe = std::env::current_exe().expect("this program's path");
    let out = std::process::Command::new(exe).env(GAUGE, "1").output().expect("start the gauge");
    let ns: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().expect("the gauge's figure");
    Duration::from_nanos(ns)
}

/// Forks a child that runs `f` (async-signal-safe only) and exits 0; waits for it.
fn fork_and(f: impl Fn()) {
    // SAFETY: the child runs only `f` (raw syscalls) and _exit; the parent waits for it.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            f();
            libc::_exit(0);
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        assert_eq!(status, 0, "floor child failed");
    }
}

/// What each part of a sandbox costs on this kernel: a process, each namespace, exec, the
/// /proc mount, a v1 cgroup. Each part is a fork whose child does it and exits, measured
/// interleaved with the bare fork; the part's cost is the difference of the medians.
fn floors(rootfs: &Path) -> Vec<serde_json::Value> {
    let busybox = rootfs.join("bin/busybox");
    let bb = busybox.to_str().unwrap().to_string();
    let mut parts: Vec<(String, Box<dyn FnMut()>)> = vec![
        ("fork + exit + wait".into(), Box::new(|| fork_and(|| {}))),
        ("fork + exec static busybox true + wait".into(), command(strings(&[&bb, "true"]))),
    ];
    for (name, flag) in [
        ("user", libc::CLONE_NEWUSER),
        ("pid", libc::CLONE_NEWPID),
        ("mount", libc::CLONE_NEWNS),
        ("net", libc::CLONE_NEWNET),
        ("ipc", libc::CLONE_NEWIPC),
        ("uts", libc::CLONE_NEWUTS),
        ("cgroup", libc::CLONE_NEWCGROUP),
    ] {
        // SAFETY: unshare takes plain flags.
        parts.push((
            format!("+ {name} namespace"),
            Box::new(move || fork_and(|| unsafe { assert_eq!(libc::unshare(flag), 0) })),
        ));
    }
    parts.push(("+ pid + mount namespace, first process".into(), Box::new(|| fork_and(|| pid_and_mount_ns(false)))));
    parts.push((
        "+ pid + mount namespace, first process mounting /proc".into(),
        Box::new(|| fork_and(|| pid_and_mount_ns(true))),
    ));
    let cg = Path::new("/sys/fs/cgroup/memory/isolette");
    if cg.is_dir() {
        let dir = cg.join(format!("bench-{}", std::process::id()));
        parts.push((
            "v1 memory cgroup mkdir + limit + rmdir (no process)".into(),
            Box::new(move || {
                std::fs::create_dir(&dir).unwrap();
                std::fs::write(dir.join("memory.limit_in_bytes"), "268435456").unwrap();
                std::fs::remove_dir(&dir).unwrap();
            }),
        ));
    }
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); parts.len()];
    for _ in 0..30 {
        for (i, (_, f)) in parts.iter_mut().enumerate() {
            for _ in 0..10 {
                let t = Instant::now();
                f();
                times[i].push(t.elapsed());
            }
        }
    }
    let medians: Vec<Duration> = times
        .iter_mut()
        .map(|t| {
            t.sort();
            t[t.len() / 2]
        })
        .collect();
    let mut out = Vec::new();
    for (i, (name, _)) in parts.iter().enumerate() {
        let base = match name.as_str() {
            n if n.starts_with("+ pid + mount namespace, first process mounting") => medians[i - 1],
            n if n.starts_with('+') => medians[0],
            _ => Duration::ZERO,
        };
        let cost = medians[i].saturating_sub(base);
        println!("  {name:<60} {:>7.3}ms", ms(cost));
        out.push(serde_json::json!({ "name": name, "median_ms": ms(cost) }));
    }
    out
}

/// In a forked child: new pid and mount namespaces, then the first process of the pid
/// namespace, which mounts a /proc when asked.
fn pid_and_mount_ns(mount_proc: bool) {
    // SAFETY: plain flags and NUL-terminated strings; both processes exit right after.
    unsafe {
        assert_eq!(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWPID), 0);
        libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        let pid = libc::fork();
        if pid == 0 {
            let ok = !mount_proc
                || libc::mount(c"proc".as_ptr(), c"/proc".as_ptr(), c"proc".as_ptr(), 0, std::ptr::null()) == 0;
            libc::_exit(if ok { 0 } else { 1 });
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        assert_eq!(status, 0);
    }
}
