//! The flags of `isolette run` and the sandbox they describe: one place for a run in the
//! foreground, attached to this terminal (`-it`, `attach.rs`) and detached (`-d`,
//! `detached.rs`), as crun's `run_create.c` is for its `run` and `create`. Every word is
//! parsed by core.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use isolette::{Image, MountSpec, SandboxBuilder, SeccompAction, SeccompPolicy, Store};

#[derive(Args, Clone)]
pub(crate) struct RunArgs {
    /// An image name from the store (`python:3.12`), or an unpacked image directory
    /// (repeat for layers, lowest first).
    #[arg(long, required = true)]
    pub(crate) image: Vec<PathBuf>,
    /// Wall-time limit, e.g. `3s`, `500ms` (a bare number is seconds), at most 24h; `none`
    /// for a detached sandbox that runs until stopped (a service).
    #[arg(long, value_parser = wall_time)]
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
    #[arg(long, value_parser = word::<SeccompPolicy>)]
    pub(crate) seccomp: Option<SeccompPolicy>,
    /// What a forbidden system call does: `kill` (status syscall_blocked) or `errno` (EPERM).
    #[arg(long, value_parser = word::<SeccompAction>)]
    pub(crate) seccomp_action: Option<SeccompAction>,
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
    #[arg(long, value_parser = word::<isolette::Network>)]
    pub(crate) network: Option<isolette::Network>,
    /// Publish a sandbox port on the host: `[ADDR:]HOSTPORT:PORT[/tcp|/udp]` (ADDR
    /// defaults to 127.0.0.1; HOSTPORT 0 takes a free one). Without `--network
    /// outbound`, the sandbox still reaches nothing outside.
    #[arg(long = "publish", short = 'p', value_parser = word::<isolette::Publish>)]
    pub(crate) publish: Vec<isolette::Publish>,
    /// Let an outbound sandbox reach the host's loopback services.
    #[arg(long)]
    pub(crate) allow_host_loopback: bool,
    /// An egress rule of an outbound sandbox: `allow:CIDR[:PORT[-PORT]]` or
    /// `deny:CIDR[:PORT[-PORT]]`. Repeatable; the rules apply in the order given and the
    /// first that matches decides; with any allow rule, what no rule matches is refused. The
    /// host's own addresses and link-local destinations are refused unless a rule opens them.
    #[arg(long = "egress", value_name = "allow|deny:CIDR[:PORTS]", value_parser = word::<isolette::EgressRule>)]
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
    /// When the supervisor of a detached sandbox starts its program again: no, always,
    /// on-failure[:N] (a status other than 0, at most N times), unless-stopped; never
    /// after `isolette stop`.
    #[arg(long, requires = "detach", value_parser = word::<isolette::compose::Restart>)]
    pub(crate) restart: Option<isolette::compose::Restart>,
    /// A label of a detached sandbox, KEY=VALUE (`ps --json` shows them).
    #[arg(long = "label", requires = "detach", value_name = "KEY=VALUE")]
    pub(crate) labels: Vec<String>,
    /// A healthcheck of a detached sandbox: a command line for /bin/sh -c, run in a sandbox
    /// of its own that shares the sandbox's network (it asks `localhost`).
    #[arg(long, requires = "detach")]
    pub(crate) health_cmd: Option<String>,
    /// A healthcheck without a shell: its program and arguments, one word per flag.
    #[arg(long = "health-cmd-word", requires = "detach", conflicts_with = "health_cmd", value_name = "WORD")]
    pub(crate) health_cmd_words: Vec<String>,
    /// Time between healthchecks (30s).
    #[arg(long, requires = "detach", value_parser = duration)]
    pub(crate) health_interval: Option<Duration>,
    /// Time one healthcheck may take (30s).
    #[arg(long, requires = "detach", value_parser = duration)]
    pub(crate) health_timeout: Option<Duration>,
    /// Failures in a row that make the sandbox unhealthy (3).
    #[arg(long, requires = "detach")]
    pub(crate) health_retries: Option<u32>,
    /// Failures in this time after each start do not count (0s).
    #[arg(long, requires = "detach", value_parser = duration)]
    pub(crate) health_start_period: Option<Duration>,
    /// The program's user inside: UID[:GID] (never 0).
    #[arg(long, value_parser = user_ids)]
    pub(crate) user: Option<(u32, u32)>,
    /// Print one JSON object with the outcome instead of passing the output through
    /// (`stdout`/`stderr` as text when valid UTF-8, else `stdout_base64`/`stderr_base64`).
    #[arg(long)]
    pub(crate) json: bool,
    /// The command and its arguments, after `--`, passed verbatim (default: the image's
    /// entrypoint and cmd).
    #[arg(last = true)]
    pub(crate) cmd: Vec<OsString>,
}

fn wall_time(s: &str) -> Result<Duration, String> {
    isolette::parse_wall_time(s).map_err(|e| e.to_string())
}

/// `UID[:GID]` (the gid is the uid when not given).
fn user_ids(s: &str) -> Result<(u32, u32), String> {
    isolette::parse_user(s).map_err(|e| e.to_string())
}

impl RunArgs {
    /// The healthcheck the flags ask for, with Docker's defaults.
    pub(crate) fn healthcheck(&self) -> Option<isolette::compose::Healthcheck> {
        use isolette::compose::{HealthTest, Healthcheck};
        let test = match (&self.health_cmd, self.health_cmd_words.is_empty()) {
            (Some(line), _) => HealthTest::Shell(line.clone()),
            (None, false) => HealthTest::Cmd(self.health_cmd_words.clone()),
            (None, true) => return None,
        };
        let mut check = Healthcheck::new(test);
        check.interval = self.health_interval.unwrap_or(check.interval);
        check.timeout = self.health_timeout.unwrap_or(check.timeout);
        check.retries = self.health_retries.unwrap_or(check.retries);
        check.start_period = self.health_start_period.unwrap_or(check.start_period);
        Some(check)
    }
}

/// A duration as core parses it (`3s`, `500ms`, a bare number of seconds).
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    isolette::parse_duration(s).map_err(|e| e.to_string())
}

/// A size as core parses it (`256M`, `1GiB`, bytes).
pub(crate) fn size(s: &str) -> Result<u64, String> {
    isolette::parse_size(s).map_err(|e| e.to_string())
}

/// A word core parses (`FromStr`): a network, a published port, an egress rule, a seccomp
/// policy or action.
fn word<T: std::str::FromStr<Err = isolette::Error>>(s: &str) -> Result<T, String> {
    s.parse().map_err(|e: isolette::Error| e.to_string())
}

fn egress_gone(_: &str) -> Result<String, String> {
    Err("--egress-allow and --egress-deny are gone: give each rule as --egress allow:CIDR[:PORTS] or --egress \
         deny:CIDR[:PORTS]; the rules apply in the order given, and the first that matches decides"
        .into())
}

/// The sandbox the flags describe, with stdio left as the builder has it.
pub(crate) fn builder(store: Option<PathBuf>, args: &RunArgs) -> isolette::Result<SandboxBuilder> {
    let image = open_image(store.clone(), &args.image)?;
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
    if let Some(action) = args.seccomp_action {
        policy = policy.with_action(action);
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
            Some(name) => b = b.volume(&open_store(store.clone())?.volume(name)?, &spec.target, spec.writable),
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
    if let Some((uid, gid)) = args.user {
        b = b.user(uid, gid);
    }
    if args.tty {
        b = b.tty(true);
        if let Some((rows, cols)) = crate::attach::window_size() {
            b = b.tty_size(rows, cols);
        }
    }
    Ok(b)
}

/// The store `--store` names, or the default one.
pub(crate) fn open_store(dir: Option<PathBuf>) -> isolette::Result<Store> {
    Store::open(dir.unwrap_or_else(Store::default_dir))
}

/// Several `--image`s are layers; one is a directory when it exists or does not read as
/// an image name (`./dir`, `/srv/img`), and a name in the store otherwise.
pub(crate) fn open_image(store: Option<PathBuf>, image: &[PathBuf]) -> isolette::Result<Image> {
    match image {
        [one] if !one.exists() && one.to_str().is_some_and(looks_like_image_name) => {
            open_store(store)?.image(&one.to_string_lossy())
        }
        layers => Image::from_layers(layers),
    }
}

/// `python`, `python:3.12`, `owner/app:1`, `localhost:5000/app@sha256:...`; not `./x`,
/// `/x`, `x/` or `..`.
fn looks_like_image_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(['.', '/'])
        && !s.ends_with('/')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/:@-".contains(&b))
}
