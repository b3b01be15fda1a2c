//! `isolette`: the command-line front end of the isolette library.
//!
//! `isolette run` runs one command in a sandbox; `isolette check` says what this host
//! supports. Every failure before the program runs (a bad flag included) prints the error
//! and exits 125, as `docker run` does; with `--json`, as one JSON object on stdout.
//! Arguments, environment entries and paths are bytes and pass through unchanged.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use base64::Engine;
use clap::{Args, Parser, Subcommand};
use isolette::{
    HostReport, Image, MountSpec, Outcome, Output, Progress, Sandbox, SeccompAction, SeccompPolicy, Status, Stdin,
    Store,
};

#[derive(Parser)]
#[command(name = "isolette", version, about = "Run untrusted code in a fresh Linux sandbox and get an exact verdict")]
struct Cli {
    /// Image store directory (default: $ISOLETTE_STORE, /var/lib/isolette for root).
    #[arg(long, global = true)]
    store: Option<PathBuf>,
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
    /// Manage the image store.
    #[command(subcommand)]
    Image(ImageCommand),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Import an OCI image layout, an oci-archive or a `docker save` archive.
    Import {
        /// The image file or directory.
        source: PathBuf,
        /// Name it NAME[:TAG] (default: the name the image carries).
        #[arg(long)]
        name: Option<String>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// List the images in the store.
    Ls,
    /// Remove an image (and the layers no other image uses).
    Rm {
        /// NAME[:TAG]
        name: String,
    },
    /// Remove the layers no image uses, and what interrupted imports left.
    Prune,
}

#[derive(Args)]
struct RunArgs {
    /// An image name from the store (`python:3.12`), or an unpacked image directory
    /// (repeat for layers, lowest first).
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
    #[arg(long = "mount")]
    mounts: Vec<OsString>,
    /// Environment variable `KEY=VALUE` for the program (bytes, passed as they are).
    #[arg(long = "env")]
    envs: Vec<OsString>,
    /// Working directory inside the sandbox.
    #[arg(long)]
    workdir: Option<PathBuf>,
    /// File to feed to the program's stdin (default: this command's stdin, `< in.txt`,
    /// unless it is a terminal).
    #[arg(long)]
    stdin: Option<PathBuf>,
    /// Write the program's stdout to FILE, byte for byte (created or truncated).
    #[arg(long, value_name = "FILE")]
    stdout: Option<PathBuf>,
    /// Write the program's stderr to FILE, byte for byte (created or truncated).
    #[arg(long, value_name = "FILE")]
    stderr: Option<PathBuf>,
    /// Hostname inside the sandbox.
    #[arg(long)]
    hostname: Option<String>,
    /// Run without a cgroup: no pids limit or cpu quota, memory and cpu time limited per
    /// process by rlimits, approximate figures.
    #[arg(long)]
    no_cgroup: bool,
    /// Replace the image's entrypoint (`--entrypoint ''` for none), as with `docker run`.
    #[arg(long)]
    entrypoint: Option<OsString>,
    /// Mount a fresh read-only /sys (off by default: it shows the host's hardware).
    #[arg(long)]
    sys: bool,
    /// Use a user namespace even as root.
    #[arg(long)]
    userns: bool,
    /// Print one JSON object with the outcome instead of passing the output through
    /// (`stdout`/`stderr` as text when valid UTF-8, else `stdout_base64`/`stderr_base64`).
    #[arg(long)]
    json: bool,
    /// The command and its arguments, after `--`, passed verbatim (default: the image's
    /// entrypoint and cmd).
    #[arg(last = true)]
    cmd: Vec<OsString>,
}

fn duration(s: &str) -> Result<Duration, String> {
    isolette::parse_duration(s).map_err(|e| e.to_string())
}

fn size(s: &str) -> Result<u64, String> {
    isolette::parse_size(s).map_err(|e| e.to_string())
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

/// Exit code of every failure before the program runs, as `docker run`.
const SETUP_FAILED: u8 = 125;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            if json_requested() {
                // clap's first line, without its `error: ` prefix and the usage hint.
                let text = e.to_string();
                let line = text.lines().next().unwrap_or_default();
                print_json(&failure_json("config", line.strip_prefix("error: ").unwrap_or(line), None, None, None));
            } else {
                let _ = e.print();
            }
            return ExitCode::from(SETUP_FAILED);
        }
    };
    let store = cli.store;
    match cli.command {
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
            Err(e) => fail(&e, false),
        },
        Command::Image(cmd) => match image(store, cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(&e, false),
        },
        Command::Run(args) => {
            let json = args.json;
            let result = run(store, *args);
            // A one-shot process: finish removing the run's cgroups now, not in the
            // background while the process exits.
            isolette::cleanup();
            match result {
                Ok(code) => ExitCode::from(code),
                Err(e) => fail(&e, json),
            }
        }
    }
}

/// Whether `--json` comes before any `--` (for errors found while parsing the flags).
fn json_requested() -> bool {
    std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json")
}

fn fail(e: &isolette::Error, json: bool) -> ExitCode {
    if json {
        let path = e.path().map(|p| p.to_string_lossy().into_owned());
        let step = e.step().map(|s| s.name().to_string());
        print_json(&failure_json(e.kind(), &e.to_string(), step, e.errno(), path));
    } else {
        eprintln!("isolette: {e}");
    }
    ExitCode::from(SETUP_FAILED)
}

/// `{"status":"setup_error","error":{...}}`: one object a script can read, for every
/// failure before the program ran.
fn failure_json(
    kind: &str,
    message: &str,
    step: Option<String>,
    errno: Option<i32>,
    path: Option<String>,
) -> serde_json::Value {
    serde_json::json!({
        "status": "setup_error",
        "error": { "kind": kind, "message": message.trim_end(), "step": step, "errno": errno, "path": path },
    })
}

fn print_json(value: &serde_json::Value) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{value}");
    let _ = stdout.flush();
}

fn open_store(dir: Option<PathBuf>) -> isolette::Result<Store> {
    Store::open(dir.unwrap_or_else(Store::default_dir))
}

/// Several `--image`s are layers; one is a directory when it exists or does not read as
/// an image name (`./dir`, `/srv/img`), and a name in the store otherwise.
fn open_image(store: Option<PathBuf>, image: &[PathBuf]) -> isolette::Result<Image> {
    match image {
        [one] if !one.exists() && one.to_str().is_some_and(looks_like_image_name) => {
            open_store(store)?.image(&one.to_string_lossy())
        }
        layers => Image::from_layers(layers),
    }
}

/// `python`, `python:3.12`, `library/gcc:14`; not `./x`, `/x`, `x/` or `..`.
fn looks_like_image_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['.', '/'])
        && !s.ends_with('/')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/:-".contains(&b))
}

fn image(store: Option<PathBuf>, cmd: ImageCommand) -> isolette::Result<()> {
    let store = open_store(store)?;
    match cmd {
        ImageCommand::Import { source, name, quiet } => {
            let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
                let bar = indicatif::ProgressBar::new(0);
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                        .expect("static template")
                        .progress_chars("=> "),
                );
                bar
            });
            let mut progress = |p: Progress| {
                if let Some(bar) = &bar {
                    bar.set_length(p.total_bytes);
                    bar.set_position(p.bytes);
                    bar.set_message(format!("layer {}/{}", p.layer + 1, p.layers));
                }
            };
            let record = store.import(&source, name.as_deref(), &mut progress)?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if quiet {
                return Ok(()); // No summary either: the exit code says it all.
            }
            println!(
                "{} {} ({} layers, {})",
                record.name,
                short_id(&record.id),
                record.layers.len(),
                human(record.size)
            );
        }
        ImageCommand::Ls => {
            println!("{:<40} {:<14} {:>10} {:>6}  CREATED", "NAME", "ID", "SIZE", "LAYERS");
            for r in store.list()? {
                let created = r.created.as_deref().unwrap_or("-");
                println!(
                    "{:<40} {:<14} {:>10} {:>6}  {created}",
                    r.name,
                    short_id(&r.id),
                    human(r.size),
                    r.layers.len()
                );
            }
        }
        ImageCommand::Rm { name } => {
            let removed = store.remove(&name)?;
            println!("removed {name} and {} unused layer(s)", removed.len());
        }
        ImageCommand::Prune => {
            let removed = store.prune()?;
            println!("removed {} unused layer(s)", removed.len());
        }
    }
    Ok(())
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1}GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}MB", b as f64 / (1u64 << 20) as f64),
        b => format!("{:.1}kB", b as f64 / 1024.0),
    }
}

fn run(store: Option<PathBuf>, args: RunArgs) -> isolette::Result<u8> {
    let image = open_image(store, &args.image)?;
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
    for m in &args.mounts {
        b = b.mount(MountSpec::parse(m)?);
    }
    for e in &args.envs {
        let (k, v) = isolette::parse_env(e)?;
        b = b.env(k, v);
    }
    if let Some(w) = args.workdir {
        b = b.workdir(w);
    }
    match args.stdin {
        Some(f) => b = b.stdin_from(Stdin::File(f)),
        // A closed stdin (`<&-`) is no input, as a terminal is.
        None if stdin_is_open() && !std::io::stdin().is_terminal() => b = b.stdin_from(Stdin::Inherit),
        None => {}
    }
    if let Some(h) = args.hostname {
        b = b.hostname(h);
    }
    if let Some(e) = args.entrypoint {
        b = b.entrypoint(if e.is_empty() { vec![] } else { vec![e] });
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
    let target = |file: Option<PathBuf>| match file {
        Some(f) => Output::File(f),
        None if args.json => Output::Capture,
        None => Output::Inherit,
    };
    b = b.stdout(target(args.stdout.clone())).stderr(target(args.stderr.clone()));
    let out = b.run(&args.cmd)?;
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

fn stdin_is_open() -> bool {
    nix::fcntl::fcntl(std::io::stdin(), nix::fcntl::FcntlArg::F_GETFD).is_ok()
}

fn json(out: &Outcome) -> serde_json::Value {
    let mut v = serde_json::json!({
        "status": out.status.as_str(),
        "exit_code": out.exit_code,
        "signal": out.signal,
        "cpu_time": out.cpu_time.as_secs_f64(),
        "user_time": out.user_time.as_secs_f64(),
        "system_time": out.system_time.as_secs_f64(),
        "wall_time": out.wall_time.as_secs_f64(),
        "setup_time": out.setup_time.as_secs_f64(),
        "memory_peak": out.memory_peak,
        "approximate": out.approximate,
        "stdout_truncated": out.stdout_truncated,
        "stderr_truncated": out.stderr_truncated,
    });
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        // Text only when it is text: any other bytes go as base64, never lossily.
        match std::str::from_utf8(bytes) {
            Ok(text) => v[name] = text.into(),
            Err(_) => v[format!("{name}_base64")] = base64::engine::general_purpose::STANDARD.encode(bytes).into(),
        }
    }
    v
}
