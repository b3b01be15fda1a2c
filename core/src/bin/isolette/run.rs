//! `isolette run`: the flags, the sandbox they make, and a run in the foreground (with
//! `-it`, attached to this terminal: `attach.rs`; with `-d`, in the background:
//! `detached.rs`).

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use clap::Args;
use isolette::{MountSpec, Outcome, Output, SandboxBuilder, SeccompAction, SeccompPolicy, Status, Stdin};

#[derive(Args)]
pub(crate) struct RunArgs {
    /// An image name from the store (`python:3.12`), or an unpacked image directory
    /// (repeat for layers, lowest first).
    #[arg(long, required = true)]
    pub(crate) image: Vec<PathBuf>,
    /// Wall-time limit, e.g. `3s`, `500ms` (a bare number is seconds).
    #[arg(long, value_parser = duration)]
    pub(crate) wall_time: Option<Duration>,
    /// Memory limit of the whole process tree, e.g. `256M` (default 512M).
    #[arg(long, value_parser = size)]
    pub(crate) memory: Option<u64>,
    /// Cpu-time limit of the whole process tree, e.g. `1s`.
    #[arg(long, value_parser = duration)]
    pub(crate) cpu_time: Option<Duration>,
    /// Limit on processes + threads (default 128).
    #[arg(long)]
    pub(crate) pids: Option<u64>,
    /// Largest file the program may write, e.g. `16M`.
    #[arg(long, value_parser = size)]
    pub(crate) fsize: Option<u64>,
    /// Hard limit on open files (default 256).
    #[arg(long)]
    pub(crate) nofile: Option<u64>,
    /// Stack size limit, e.g. `64M`.
    #[arg(long, value_parser = size)]
    pub(crate) stack: Option<u64>,
    /// Cpu bandwidth in cores, e.g. `1` or `0.5`.
    #[arg(long)]
    pub(crate) cpus: Option<f64>,
    /// Cpus to run on, e.g. `0` or `0-1`.
    #[arg(long)]
    pub(crate) cpuset: Option<String>,
    /// Seccomp policy: `default`, `off`, `deny:NAME,NAME...` or `allow:NAME,NAME...`.
    #[arg(long, value_parser = seccomp_policy)]
    pub(crate) seccomp: Option<SeccompPolicy>,
    /// What a forbidden system call does: `kill` (status syscall_blocked) or `errno` (EPERM).
    #[arg(long, value_parser = ["kill", "errno"])]
    pub(crate) seccomp_action: Option<String>,
    /// Cap on captured stdout + stderr, e.g. `1M`.
    #[arg(long, value_parser = size)]
    pub(crate) output_limit: Option<u64>,
    /// Size of the writable layer, e.g. `64M`.
    #[arg(long, value_parser = size)]
    pub(crate) tmpfs_size: Option<u64>,
    /// Bind mount `SRC:DST[:ro|:rw]` (read-only unless `:rw`); a SRC without `/` is a
    /// named volume (`isolette volume create`).
    #[arg(long = "mount")]
    pub(crate) mounts: Vec<OsString>,
    /// Environment variable `KEY=VALUE` for the program (bytes, passed as they are).
    #[arg(long = "env")]
    pub(crate) envs: Vec<OsString>,
    /// Working directory inside the sandbox.
    #[arg(long)]
    pub(crate) workdir: Option<PathBuf>,
    /// File to feed to the program's stdin (default: this command's stdin, `< in.txt`,
    /// unless it is a terminal).
    #[arg(long)]
    pub(crate) stdin: Option<PathBuf>,
    /// Write the program's stdout to FILE, byte for byte (created or truncated).
    #[arg(long, value_name = "FILE")]
    pub(crate) stdout: Option<PathBuf>,
    /// Write the program's stderr to FILE, byte for byte (created or truncated).
    #[arg(long, value_name = "FILE")]
    pub(crate) stderr: Option<PathBuf>,
    /// Hostname inside the sandbox.
    #[arg(long)]
    pub(crate) hostname: Option<String>,
    /// The network: `none` (the default: loopback only), `outbound` (the internet,
    /// through slirp4netns), or the NAME of a network (`isolette network create`), whose
    /// members reach each other by their `--name` (or `--hostname`).
    #[arg(long, value_parser = network)]
    pub(crate) network: Option<isolette::Network>,
    /// Publish a sandbox port on the host: `[ADDR:]HOSTPORT:PORT[/tcp|/udp]` (ADDR
    /// defaults to 127.0.0.1; HOSTPORT 0 takes a free one). Without `--network
    /// outbound`, the sandbox still reaches nothing outside.
    #[arg(long = "publish", short = 'p', value_parser = publish)]
    pub(crate) publish: Vec<isolette::Publish>,
    /// Let an outbound sandbox reach the host's loopback services.
    #[arg(long)]
    pub(crate) allow_host_loopback: bool,
    /// An egress rule of an outbound sandbox: `allow:CIDR[:PORT[-PORT]]` or
    /// `deny:CIDR[:PORT[-PORT]]`. Repeatable; the rules apply in the order given and the
    /// first that matches decides; with any allow rule, what no rule matches is refused. The
    /// host's own addresses and link-local destinations are refused unless a rule opens them.
    #[arg(long = "egress", value_name = "allow|deny:CIDR[:PORTS]", value_parser = egress)]
    pub(crate) egress: Vec<isolette::EgressRule>,
    /// Gone: `--egress allow:CIDR[:PORTS]` keeps the rules in order.
    #[arg(long = "egress-allow", hide = true, value_parser = egress_gone)]
    pub(crate) egress_allow: Vec<String>,
    /// Gone: `--egress deny:CIDR[:PORTS]` keeps the rules in order.
    #[arg(long = "egress-deny", hide = true, value_parser = egress_gone)]
    pub(crate) egress_deny: Vec<String>,
    /// Run without a cgroup: no pids limit or cpu quota, memory and cpu time limited per
    /// process by rlimits, approximate figures.
    #[arg(long)]
    pub(crate) no_cgroup: bool,
    /// Replace the image's entrypoint (`--entrypoint ''` for none), as with `docker run`.
    #[arg(long)]
    pub(crate) entrypoint: Option<OsString>,
    /// Mount a fresh read-only /sys (off by default: it shows the host's hardware).
    #[arg(long)]
    pub(crate) sys: bool,
    /// Use a user namespace even as root.
    #[arg(long)]
    pub(crate) userns: bool,
    /// Give the program a terminal (its stdin, stdout and stderr; output lines end with
    /// CR LF), as `docker run -t`.
    #[arg(long, short = 't')]
    pub(crate) tty: bool,
    /// Keep stdin open: with `-t`, this command's terminal types into the program's
    /// (raw mode, window size passed on, restored at the end), as `docker run -it`.
    #[arg(long, short = 'i')]
    pub(crate) interactive: bool,
    /// Run in the background: print the sandbox's id and return; see `isolette ps`,
    /// `logs`, `wait`, `stop`, `kill`, `rm`.
    #[arg(long, short = 'd')]
    pub(crate) detach: bool,
    /// A name for a detached sandbox, usable wherever its id is.
    #[arg(long, requires = "detach")]
    pub(crate) name: Option<String>,
    /// Remove a detached sandbox's state when it ends (its logs and outcome with it).
    #[arg(long, requires = "detach")]
    pub(crate) rm: bool,
    /// Print one JSON object with the outcome instead of passing the output through
    /// (`stdout`/`stderr` as text when valid UTF-8, else `stdout_base64`/`stderr_base64`).
    #[arg(long)]
    pub(crate) json: bool,
    /// The command and its arguments, after `--`, passed verbatim (default: the image's
    /// entrypoint and cmd).
    #[arg(last = true)]
    pub(crate) cmd: Vec<OsString>,
}

fn duration(s: &str) -> Result<Duration, String> {
    isolette::parse_duration(s).map_err(|e| e.to_string())
}

pub(crate) fn size(s: &str) -> Result<u64, String> {
    isolette::parse_size(s).map_err(|e| e.to_string())
}

fn network(s: &str) -> Result<isolette::Network, String> {
    isolette::Network::parse(s).map_err(|e| e.to_string())
}

fn egress(s: &str) -> Result<isolette::EgressRule, String> {
    s.parse().map_err(|e: isolette::Error| e.to_string())
}

fn egress_gone(_: &str) -> Result<String, String> {
    Err("--egress-allow and --egress-deny are gone: give each rule as --egress allow:CIDR[:PORTS] or --egress \
         deny:CIDR[:PORTS]; the rules apply in the order given, and the first that matches decides"
        .into())
}

fn publish(s: &str) -> Result<isolette::Publish, String> {
    isolette::Publish::parse(s).map_err(|e| e.to_string())
}

fn seccomp_policy(s: &str) -> Result<SeccompPolicy, String> {
    SeccompPolicy::parse(s).map_err(|e| e.to_string())
}

/// Runs in the foreground, in the background (`-d`) or attached to this terminal (`-it`);
/// the exit code to leave with.
pub(crate) fn run(store: Option<PathBuf>, args: RunArgs) -> isolette::Result<u8> {
    if args.detach {
        return crate::detached::start(store, &args);
    }
    if args.interactive && !args.tty && args.stdin.is_some() {
        return Err(crate::config_error("-i and --stdin both say where stdin comes from; give one"));
    }
    let b = builder(store, &args)?;
    if args.tty && !args.json {
        if args.stdout.is_some() || args.stderr.is_some() || args.stdin.is_some() {
            return Err(crate::config_error(
                "with -t, the terminal is the program's stdin and output; drop --stdin, --stdout and --stderr",
            ));
        }
        return crate::attach::run(b, &args.cmd, args.interactive);
    }
    foreground(b, &args)
}

/// The sandbox the flags describe, with stdio left as the builder has it.
pub(crate) fn builder(store: Option<PathBuf>, args: &RunArgs) -> isolette::Result<SandboxBuilder> {
    let image = crate::open_image(store.clone(), &args.image)?;
    let mut b = isolette::Sandbox::builder(&image);
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
    if let Some(set) = &args.cpuset {
        b = b.cpuset(set.clone());
    }
    let mut policy = args.seccomp.clone().unwrap_or_default();
    if let Some(action) = &args.seccomp_action {
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
        let spec = MountSpec::parse(m)?;
        // A bare name is a volume of the store.
        match spec.source.to_str().filter(|s| !s.contains('/')) {
            Some(name) => b = b.volume(&crate::open_store(store.clone())?.volume(name)?, &spec.target, spec.writable),
            None => b = b.mount(spec),
        }
    }
    for e in &args.envs {
        let (k, v) = isolette::parse_env(e)?;
        b = b.env(k, v);
    }
    if let Some(w) = &args.workdir {
        b = b.workdir(w);
    }
    // A named sandbox is known by its name (on a named network, to the others too).
    if let Some(h) = args.hostname.as_ref().or(args.name.as_ref()) {
        b = b.hostname(h.clone());
    }
    if let Some(n) = &args.network {
        b = b.network(n.clone());
    }
    for p in &args.publish {
        b = b.publish(*p);
    }
    if args.allow_host_loopback {
        b = b.host_loopback(true);
    }
    for rule in &args.egress {
        b = b.egress(*rule);
    }
    if let Some(e) = &args.entrypoint {
        b = b.entrypoint(if e.is_empty() { vec![] } else { vec![e.clone()] });
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
    if args.tty {
        b = b.tty(true);
        if let Some((rows, cols)) = crate::attach::window_size() {
            b = b.tty_size(rows, cols);
        }
    }
    Ok(b)
}

fn foreground(mut b: SandboxBuilder, args: &RunArgs) -> isolette::Result<u8> {
    if args.tty {
        // What the terminal shows comes back as stdout; with `-i`, what this command
        // reads is typed into it.
        if let Some(f) = &args.stdin {
            b = b.stdin(std::fs::read(f).map_err(|e| crate::io_error("read", f, e))?);
        } else if args.interactive && stdin_is_open() {
            let mut typed = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut typed)
                .map_err(|e| crate::io_error("read", "stdin", e))?;
            b = b.stdin(typed);
        }
        if args.stdout.is_some() || args.stderr.is_some() {
            return Err(crate::config_error("with -t, the terminal is the only output; drop --stdout and --stderr"));
        }
    } else {
        match &args.stdin {
            Some(f) => b = b.stdin_from(Stdin::File(f.clone())),
            // A closed stdin (`<&-`) is no input, as a terminal is (unless `-i`).
            None if stdin_is_open() && (args.interactive || !std::io::stdin().is_terminal()) => {
                b = b.stdin_from(Stdin::Inherit)
            }
            None => {}
        }
        let target = |file: Option<PathBuf>| match file {
            Some(f) => Output::File(f),
            None if args.json => Output::Capture,
            None => Output::Inherit,
        };
        b = b.stdout(target(args.stdout.clone())).stderr(target(args.stderr.clone()));
    }
    let out = b.run(&args.cmd)?;
    if args.json {
        println!("{}", json(&out));
        return Ok(0);
    }
    let _ = std::io::stdout().flush();
    Ok(exit_code(&out))
}

/// The exit code that stands for an outcome: the program's, 128 + a signal's number, and a
/// line on stderr for a limit.
pub(crate) fn exit_code(out: &Outcome) -> u8 {
    if !matches!(out.status, Status::Ok | Status::RuntimeError | Status::Signaled) {
        eprintln!("isolette: {} after {:.3}s", out.status, out.wall_time.as_secs_f64());
    }
    match (out.exit_code, out.signal) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.saturating_add(sig as u8),
        (None, None) => 0,
    }
}

fn stdin_is_open() -> bool {
    nix::fcntl::fcntl(std::io::stdin(), nix::fcntl::FcntlArg::F_GETFD).is_ok()
}

/// The outcome as `--json` prints it.
pub(crate) fn json(out: &Outcome) -> serde_json::Value {
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
