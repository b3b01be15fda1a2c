//! `isolette`: the command-line front end of the isolette library.
//!
//! `isolette run` runs one command in a sandbox; `isolette check` says what this host
//! supports. Setup errors print the error and exit 125, as `docker run` does.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use isolette::{HostReport, Image, MountSpec, Outcome, Output, Sandbox, SeccompAction, SeccompPolicy, Status, Stdin};

#[derive(Parser)]
#[command(name = "isolette", version, about = "Run untrusted code in a fresh Linux sandbox and get an exact verdict")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command in a new sandbox made from an image.
    Run(Box<RunArgs>),
    /// Show what this host supports and what degrades.
    Check,
    /// Remove the cgroups that killed callers left behind.
    Gc,
}

#[derive(Args)]
struct RunArgs {
    /// Unpacked image directory (repeat for layers, lowest first).
    #[arg(long, required = true)]
    image: Vec<PathBuf>,
    /// Wall-time limit, e.g. `3s`, `500ms` (a bare number is seconds).
    #[arg(long, value_parser = duration)]
    wall_time: Option<Duration>,
    /// Memory limit of the whole process tree, e.g. `256M` (default 512M).
    #[arg(long, value_parser = size)]
    memory: Option<u64>,
    /// Cpu-time limit of the whole process tree, e.g. `1s`.
    #[arg(long, value_parser = duration)]
    cpu_time: Option<Duration>,
    /// Limit on processes + threads (default 128).
    #[arg(long)]
    pids: Option<u64>,
    /// Largest file the program may write, e.g. `16M`.
    #[arg(long, value_parser = size)]
    fsize: Option<u64>,
    /// Hard limit on open files (default 256).
    #[arg(long)]
    nofile: Option<u64>,
    /// Stack size limit, e.g. `64M`.
    #[arg(long, value_parser = size)]
    stack: Option<u64>,
    /// Cpu bandwidth in cores, e.g. `1` or `0.5`.
    #[arg(long)]
    cpus: Option<f64>,
    /// Cpus to run on, e.g. `0` or `0-1`.
    #[arg(long)]
    cpuset: Option<String>,
    /// Seccomp policy: `default`, `off`, `deny:NAME,NAME...` or `allow:NAME,NAME...`.
    #[arg(long, value_parser = seccomp_policy)]
    seccomp: Option<SeccompPolicy>,
    /// What a forbidden system call does: `kill` (status syscall_blocked) or `errno` (EPERM).
    #[arg(long, value_parser = ["kill", "errno"])]
    seccomp_action: Option<String>,
    /// Cap on captured stdout + stderr, e.g. `1M`.
    #[arg(long, value_parser = size)]
    output_limit: Option<u64>,
    /// Size of the writable layer, e.g. `64M`.
    #[arg(long, value_parser = size)]
    tmpfs_size: Option<u64>,
    /// Bind mount `SRC:DST[:ro|:rw]` (read-only unless `:rw`).
    #[arg(long = "mount", value_parser = mount)]
    mounts: Vec<MountSpec>,
    /// Environment variable `KEY=VALUE` for the program.
    #[arg(long = "env", value_parser = env)]
    envs: Vec<(String, String)>,
    /// Working directory inside the sandbox.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// File to feed to the program's stdin (default: this command's stdin, `< in.txt`,
    /// unless it is a terminal).
    #[arg(long)]
    stdin: Option<PathBuf>,
    /// Hostname inside the sandbox.
    #[arg(long)]
    hostname: Option<String>,
    /// Run without a cgroup: no pids limit or cpu quota, memory and cpu time limited per
    /// process by rlimits, approximate figures.
    #[arg(long)]
    no_cgroup: bool,
    /// Mount a fresh read-only /sys.
    #[arg(long)]
    sys: bool,
    /// Use a user namespace even as root.
    #[arg(long)]
    userns: bool,
    /// Print one JSON object with the outcome instead of passing the output through.
    #[arg(long)]
    json: bool,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

fn duration(s: &str) -> Result<Duration, String> {
    isolette::parse_duration(s).map_err(|e| e.to_string())
}

fn size(s: &str) -> Result<u64, String> {
    isolette::parse_size(s).map_err(|e| e.to_string())
}

fn mount(s: &str) -> Result<MountSpec, String> {
    MountSpec::parse(s).map_err(|e| e.to_string())
}

fn seccomp_policy(s: &str) -> Result<SeccompPolicy, String> {
    let names = |list: &str| list.split(',').filter(|n| !n.is_empty()).map(String::from).collect::<Vec<_>>();
    match s.split_once(':') {
        None if s == "default" => Ok(SeccompPolicy::default_deny()),
        None if s == "off" => Ok(SeccompPolicy::disabled()),
        Some(("deny", list)) => SeccompPolicy::deny(names(list)).map_err(|e| e.to_string()),
        Some(("allow", list)) => SeccompPolicy::allow(names(list)).map_err(|e| e.to_string()),
        _ => Err(format!("`{s}`: expected default, off, deny:NAMES or allow:NAMES")),
    }
}

fn env(s: &str) -> Result<(String, String), String> {
    isolette::parse_env(s).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Check => {
            print!("{}", HostReport::probe());
            ExitCode::SUCCESS
        }
        Command::Gc => match isolette::gc() {
            Ok(report) => {
                for dir in &report.removed {
                    println!("removed {}", dir.display());
                }
                for dir in &report.busy {
                    println!("busy, left {}", dir.display());
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("isolette: {e}");
                ExitCode::from(125)
            }
        },
        Command::Run(args) => match run(*args) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("isolette: {e}");
                ExitCode::from(125)
            }
        },
    }
}

fn run(args: RunArgs) -> isolette::Result<u8> {
    let image = Image::from_layers(&args.image)?;
    let mut b = Sandbox::builder(&image);
    if let Some(d) = args.wall_time {
        b = b.wall_time(d);
    }
    if let Some(n) = args.memory {
        b = b.memory(n);
    }
    if let Some(d) = args.cpu_time {
        b = b.cpu_time(d);
    }
    if let Some(n) = args.pids {
        b = b.pids(n);
    }
    if let Some(n) = args.fsize {
        b = b.fsize(n);
    }
    if let Some(n) = args.nofile {
        b = b.nofile(n);
    }
    if let Some(n) = args.stack {
        b = b.stack(n);
    }
    if let Some(n) = args.cpus {
        b = b.cpus(n);
    }
    if let Some(set) = args.cpuset {
        b = b.cpuset(set);
    }
    let mut policy = args.seccomp.unwrap_or_default();
    if let Some(action) = args.seccomp_action {
        policy = policy.with_action(if action == "errno" { SeccompAction::Errno } else { SeccompAction::Kill });
    }
    b = b.seccomp(policy);
    if let Some(n) = args.output_limit {
        b = b.output_limit(n);
    }
    if let Some(n) = args.tmpfs_size {
        b = b.tmpfs_size(n);
    }
    for m in args.mounts {
        b = b.mount(m);
    }
    for (k, v) in args.envs {
        b = b.env(k, v);
    }
    if let Some(w) = args.workdir {
        b = b.workdir(w);
    }
    match args.stdin {
        Some(f) => b = b.stdin_from(Stdin::File(f)),
        None if !std::io::stdin().is_terminal() => b = b.stdin_from(Stdin::Inherit),
        None => {}
    }
    if let Some(h) = args.hostname {
        b = b.hostname(h);
    }
    if args.sys {
        b = b.sys(true);
    }
    if args.no_cgroup {
        b = b.cgroup(false);
    }
    if args.userns {
        b = b.user_namespace(true);
    }
    if !args.json {
        b = b.stdout(Output::Inherit).stderr(Output::Inherit);
    }
    let out = b.run(args.cmd)?;
    if args.json {
        println!("{}", json(&out));
        return Ok(0);
    }
    let _ = std::io::stdout().flush();
    if !matches!(out.status, Status::Ok | Status::RuntimeError | Status::Signaled) {
        eprintln!("isolette: {} after {:.3}s", out.status, out.wall_time.as_secs_f64());
    }
    Ok(match (out.exit_code, out.signal) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.saturating_add(sig as u8),
        (None, None) => 0,
    })
}

fn json(out: &Outcome) -> serde_json::Value {
    serde_json::json!({
        "status": out.status.as_str(),
        "exit_code": out.exit_code,
        "signal": out.signal,
        "cpu_time": out.cpu_time.as_secs_f64(),
        "user_time": out.user_time.as_secs_f64(),
        "system_time": out.system_time.as_secs_f64(),
        "wall_time": out.wall_time.as_secs_f64(),
        "memory_peak": out.memory_peak,
        "approximate": out.approximate,
        "stdout": String::from_utf8_lossy(&out.stdout),
        "stderr": String::from_utf8_lossy(&out.stderr),
    })
}
