//! `isolette compose`: a Compose project's services as detached sandboxes on the project's
//! network, with Compose v2's verbs and names. The project is core's
//! ([`isolette::compose::Project`]: found, interpolated, checked, ordered); this module
//! turns each service into the flags of `run -d` (`detached.rs` supervises it, restarts it
//! and runs its healthcheck), and keeps Compose's labels on each sandbox
//! (`com.docker.compose.project`, `.service`, `.config-hash`) so that a second `up`
//! recreates only what changed.

use std::ffi::OsString;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Subcommand};
use isolette::compose::{Condition, HealthTest, LoadOptions, Project, Service, ServiceSpec, SpecMount};
use isolette::{Error, Networks};
use serde_json::Value;

use crate::detached::{self, Sandbox, State};
use crate::flags::open_store;

use isolette::compose::{LABEL_CONFIG_HASH as HASH, LABEL_PROJECT as PROJECT, LABEL_SERVICE as SERVICE};

/// `isolette compose [-f FILE]... [-p NAME] VERB`.
#[derive(Args)]
pub(crate) struct ComposeArgs {
    /// A Compose file (repeat to merge; default: compose.yaml and the other names Compose
    /// looks for, here or above).
    #[arg(long = "file", short = 'f')]
    files: Vec<PathBuf>,
    /// The project's name (default: COMPOSE_PROJECT_NAME, the file's `name`, the
    /// directory's name).
    #[arg(long = "project-name", short = 'p')]
    project: Option<String>,
    /// JSON: `ps` and `config` print it, and a failure is one JSON object (exit 125).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Build, (re)create and start the services, in dependency order.
    Up {
        /// Start them and return (else follow their logs; Ctrl-C stops them).
        #[arg(long, short = 'd')]
        detach: bool,
        /// Build the images of services with `build` first.
        #[arg(long)]
        build: bool,
        /// Return once every service runs, and is healthy where it has a healthcheck
        /// (implies -d).
        #[arg(long)]
        wait: bool,
        /// Only these services (and what they depend on).
        services: Vec<String>,
    },
    /// Stop and remove the services and the project's networks (named volumes stay).
    Down {
        /// Remove the named volumes too (never external ones).
        #[arg(long, short = 'v')]
        volumes: bool,
        /// Remove sandboxes of services no longer in the file too.
        #[arg(long)]
        remove_orphans: bool,
        /// Seconds to wait after SIGTERM before the kill (default: the service's
        /// `stop_grace_period`, else 10).
        #[arg(long, short = 't')]
        timeout: Option<u64>,
    },
    /// List the project's sandboxes (running ones; all with -a).
    Ps {
        /// Stopped ones too.
        #[arg(long, short = 'a')]
        all: bool,
        /// Only these services.
        services: Vec<String>,
    },
    /// Print the services' output, each line after `SERVICE-1  | `.
    Logs {
        /// Go on printing what comes, until the services end.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only the last N lines of each.
        #[arg(long)]
        tail: Option<usize>,
        /// Only these services.
        services: Vec<String>,
    },
    /// Stop the services (they stay, for `start`).
    Stop {
        /// Seconds to wait after SIGTERM before the kill (default: the service's
        /// `stop_grace_period`, else 10).
        #[arg(long, short = 't')]
        timeout: Option<u64>,
        /// Only these services.
        services: Vec<String>,
    },
    /// Start stopped services again.
    Start {
        /// Only these services.
        services: Vec<String>,
    },
    /// Stop and start the services again.
    Restart {
        /// Seconds to wait after SIGTERM before the kill (default: the service's
        /// `stop_grace_period`, else 10).
        #[arg(long, short = 't')]
        timeout: Option<u64>,
        /// Only these services.
        services: Vec<String>,
    },
    /// Print the project as read: variables substituted, defaults filled in.
    Config {
        /// Only the services' names, in dependency order.
        #[arg(long)]
        services: bool,
    },
}

/// Set by SIGINT, SIGTERM or SIGHUP while a verb runs.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub(crate) fn compose(store: Option<PathBuf>, args: ComposeArgs) -> isolette::Result<u8> {
    let mut options = LoadOptions::new();
    for f in &args.files {
        options = options.file(f);
    }
    if let Some(p) = &args.project {
        options = options.project_name(p);
    }
    let project = Project::load(&options)?;
    for warning in &project.warnings {
        eprintln!("isolette compose: warning: {warning}");
    }
    // A signal ends `up` (which stops what it started) and `logs -f`; the verbs that stop
    // and remove finish what they began.
    let canceller = match args.verb {
        Verb::Config { .. } | Verb::Ps { .. } => None,
        _ => Some(on_signals()?),
    };
    match args.verb {
        Verb::Config { services } => {
            let json = args.json;
            if services {
                project.order()?.iter().for_each(|s| println!("{s}"));
            } else if json {
                println!("{}", serde_json::to_string_pretty(&project).unwrap_or_default());
            } else {
                print!("{}", project.to_yaml());
            }
            Ok(0)
        }
        Verb::Up { detach, build, wait, services } => {
            let canceller = match canceller {
                Some(c) => c,
                None => on_signals()?,
            };
            up(&Ctx { store, project }, &services, build, wait, detach || wait, &canceller)
        }
        Verb::Down { volumes, remove_orphans, timeout } => {
            down(&Ctx { store, project }, volumes, remove_orphans, timeout)
        }
        Verb::Ps { all, services } => ps(&project, all, args.json, &services),
        Verb::Logs { follow, tail, services } => logs(&project, &members(&project, &services)?, follow, tail),
        Verb::Stop { timeout, services } => {
            for s in members(&project, &services)?.iter().rev() {
                if let Some(sb) = sandbox_of(&project, s) {
                    detached::stop_one(&sb, timeout.unwrap_or_else(|| stop_secs(&project.services[s])))?;
                    eprintln!(" Sandbox {}  Stopped", project.sandbox_name(s));
                }
            }
            Ok(0)
        }
        Verb::Start { services } => {
            for s in members(&project, &services)? {
                start_stopped(&project, &s)?;
            }
            Ok(0)
        }
        Verb::Restart { timeout, services } => {
            for s in members(&project, &services)? {
                if let Some(sb) = sandbox_of(&project, &s) {
                    detached::stop_one(&sb, timeout.unwrap_or_else(|| stop_secs(&project.services[&s])))?;
                }
                start_stopped(&project, &s)?;
            }
            Ok(0)
        }
    }
}

/// What a verb that changes things works with.
struct Ctx {
    store: Option<PathBuf>,
    project: Project,
}

/// Signals set [`INTERRUPTED`] and cancel a build under way (`report::cancel_on_signals`).
fn on_signals() -> isolette::Result<isolette::Canceller> {
    crate::report::cancel_on_signals(|| INTERRUPTED.store(true, Ordering::SeqCst))
}

fn interrupted() -> isolette::Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(Error::config("interrupted: what this `up` started is stopped again"))
    } else {
        Ok(())
    }
}

/// The services named (every one when none is), checked against the project, in start
/// order.
fn members(project: &Project, names: &[String]) -> isolette::Result<Vec<String>> {
    Ok(project.wanted(names)?.into_iter().filter(|s| names.is_empty() || names.contains(s)).collect())
}

/// The project's sandboxes, by their labels.
fn project_sandboxes(project: &str) -> Vec<Sandbox> {
    detached::list(&detached::state_root())
        .into_iter()
        .filter(|s| s.config["labels"][PROJECT].as_str() == Some(project))
        .collect()
}

/// The sandbox of `service` in `project`, if there is one.
fn sandbox_of(project: &Project, service: &str) -> Option<Sandbox> {
    let name = project.sandbox_name(service);
    detached::list(&detached::state_root()).into_iter().find(|s| s.name.as_deref() == Some(name.as_str()))
}

fn start_stopped(project: &Project, service: &str) -> isolette::Result<()> {
    let name = project.sandbox_name(service);
    match sandbox_of(project, service) {
        Some(sb) if matches!(sb.state, State::Running | State::Created) => Ok(()),
        Some(sb) => {
            detached::start_one(&sb, false)?;
            eprintln!(" Sandbox {name}  Started");
            Ok(())
        }
        None => Err(Error::config(format!("service `{service}` has no sandbox; `isolette compose up` makes it"))),
    }
}

/// What one `up` made, so that a failure or an interrupt takes it back.
#[derive(Default)]
struct Made {
    networks: Vec<String>,
    sandboxes: Vec<String>,
}

fn up(
    ctx: &Ctx,
    services: &[String],
    build: bool,
    wait: bool,
    detach: bool,
    canceller: &isolette::Canceller,
) -> isolette::Result<u8> {
    let project = &ctx.project;
    // The services asked for, and everything they depend on.
    let order = project.wanted(services)?;
    let orphans: Vec<String> = project_sandboxes(&project.name)
        .iter()
        .filter_map(|s| s.config["labels"][SERVICE].as_str().map(String::from))
        .filter(|s| !project.services.contains_key(s))
        .collect();
    if !orphans.is_empty() {
        eprintln!(
            "isolette compose: warning: sandboxes of services not in the file: {}; `down --remove-orphans` removes \
             them",
            orphans.join(", ")
        );
    }
    let mut made = Made::default();
    let result = bring_up(ctx, &order, build, wait, canceller, &mut made);
    match result {
        Ok(()) if detach => Ok(0),
        Ok(()) => {
            // Attached: the logs until every service ends or a signal comes.
            let code = logs(project, &order, true, None)?;
            if INTERRUPTED.load(Ordering::SeqCst) {
                eprintln!("isolette compose: stopping");
                for s in order.iter().rev() {
                    if let Some(sb) = sandbox_of(project, s) {
                        let _ = detached::stop_one(&sb, 10);
                    }
                }
                return Ok(130);
            }
            Ok(code)
        }
        Err(e) => {
            roll_back(&made);
            Err(e)
        }
    }
}

/// Stops what this `up` started and removes the networks it made.
fn roll_back(made: &Made) {
    for name in made.sandboxes.iter().rev() {
        if let Some(sb) = detached::list(&detached::state_root()).into_iter().find(|s| s.name.as_deref() == Some(name))
        {
            let _ = detached::stop_one(&sb, 10);
            eprintln!(" Sandbox {name}  Stopped");
        }
    }
    if let Ok(networks) = Networks::open_default() {
        for n in &made.networks {
            if networks.remove(n).is_ok() {
                eprintln!(" Network {n}  Removed");
            }
        }
    }
}

fn bring_up(
    ctx: &Ctx,
    order: &[String],
    build: bool,
    wait: bool,
    canceller: &isolette::Canceller,
    made: &mut Made,
) -> isolette::Result<()> {
    let project = &ctx.project;
    let store = open_store(ctx.store.clone())?;
    let mut say = |line: &str| eprintln!("{line}");
    let images = project.images(&store, order, build, Some(canceller), &mut say)?;
    interrupted()?;
    project.make_networks(&Networks::open_default()?, order, &mut made.networks, &mut say)?;
    project.make_volumes(&store, &mut say)?;
    // The services, each once what it depends on is where it must be.
    for name in order {
        let service = &project.services[name];
        for (dep, condition) in &service.depends_on {
            wait_for(project, dep, *condition, images[dep].healthcheck.is_some())?;
        }
        interrupted()?;
        let spec = project.spec(name, &images[name])?;
        let hash = project.config_hash(name, &images[name].id);
        let sandbox_name = project.sandbox_name(name);
        match sandbox_of(project, name) {
            Some(sb) if sb.config["labels"][PROJECT].as_str() != Some(project.name.as_str()) => {
                return Err(Error::config(format!(
                    "the name {sandbox_name} is taken by sandbox {}, which is not of project {}; `isolette rm` it",
                    sb.id, project.name
                )));
            }
            Some(sb) if sb.config["labels"][HASH].as_str() == Some(hash.as_str()) => {
                if !matches!(sb.state, State::Running | State::Created) {
                    detached::start_one(&sb, false)?;
                    made.sandboxes.push(sandbox_name.clone());
                    eprintln!(" Sandbox {sandbox_name}  Started");
                } else {
                    eprintln!(" Sandbox {sandbox_name}  Running");
                }
            }
            existing => {
                if let Some(sb) = existing {
                    eprintln!(" Sandbox {sandbox_name}  Recreate");
                    detached::stop_one(&sb, stop_secs(service))?;
                    detached::remove_one(&sb)?;
                }
                create(ctx, name, &spec)?;
                made.sandboxes.push(sandbox_name.clone());
                eprintln!(" Sandbox {sandbox_name}  Started");
            }
        }
    }
    if wait {
        for name in order {
            let has_check = images[name].healthcheck.is_some();
            let condition = if has_check { Condition::ServiceHealthy } else { Condition::ServiceStarted };
            wait_for(project, name, condition, has_check)?;
            eprintln!(
                " Sandbox {}  {}",
                project.sandbox_name(name),
                if condition == Condition::ServiceHealthy { "Healthy" } else { "Running" }
            );
        }
    }
    Ok(())
}

fn stop_secs(service: &Service) -> u64 {
    service.stop_grace_period.map_or(10, |d| d.as_secs().max(1))
}

/// Waits until service `name` has reached `condition`; a dependency that cannot reach it
/// any more is an error, in Compose's words.
fn wait_for(project: &Project, name: &str, condition: Condition, has_check: bool) -> isolette::Result<()> {
    let sandbox_name = project.sandbox_name(name);
    loop {
        interrupted()?;
        let sb = sandbox_of(project, name)
            .ok_or_else(|| Error::config(format!("dependency failed to start: {sandbox_name} is gone")))?;
        match (&sb.state, condition) {
            (State::Running, Condition::ServiceStarted) => return Ok(()),
            (_, Condition::ServiceHealthy) if !has_check => {
                return Err(Error::config(format!(
                    "dependency failed to start: {sandbox_name} has no healthcheck, and a dependent waits for it to \
                     be healthy"
                )));
            }
            (State::Running, Condition::ServiceHealthy) => match sb.health().as_deref() {
                Some("healthy") => return Ok(()),
                Some("unhealthy") => {
                    return Err(Error::config(format!("dependency failed to start: {sandbox_name} is unhealthy")));
                }
                // Starting, or its first word not written yet.
                _ => {}
            },
            (State::Exited(out), Condition::ServiceCompletedSuccessfully) => {
                return match out["exit_code"].as_i64() {
                    Some(0) => Ok(()),
                    code => Err(Error::config(format!(
                        "service {name} didn't complete successfully: {}",
                        code.map_or_else(|| sb.status(), |c| format!("exit {c}"))
                    ))),
                };
            }
            (State::Exited(_) | State::Dead, _) => {
                return Err(Error::config(format!("dependency failed to start: {sandbox_name} {}", sb.status())));
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts service `name`'s sandbox with `isolette run -d`: core's [`ServiceSpec`] as flags.
fn create(ctx: &Ctx, name: &str, spec: &ServiceSpec) -> isolette::Result<()> {
    let mut args: Vec<OsString> = Vec::new();
    if let Some(store) = &ctx.store {
        args.push("--store".into());
        args.push(store.into());
    }
    let mut arg = |a: &str| args.push(a.into());
    for a in ["run", "-d", "--name", &spec.name, "--hostname", &spec.hostname] {
        arg(a);
    }
    for (k, v) in &spec.labels {
        arg(&format!("--label={k}={v}"));
    }
    // A service runs until stopped: no wall-clock or output limit a judge would set.
    for a in ["--wall-time", "none", "--output-limit", "1T"] {
        arg(a);
    }
    arg("--pids");
    arg(&spec.pids.to_string());
    arg("--nofile");
    arg(&spec.nofile.to_string());
    if let Some(m) = spec.memory {
        arg("--memory");
        arg(&m.to_string());
    }
    if let Some(c) = spec.cpus {
        arg("--cpus");
        arg(&c.to_string());
    }
    arg("--network");
    arg(&spec.network);
    for p in &spec.ports {
        arg("-p");
        let addr = match p.host_addr {
            std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        arg(&format!("{addr}:{}:{}/{}", p.host_port, p.sandbox_port, p.protocol));
    }
    for m in &spec.mounts {
        let (source, target, writable) = match m {
            SpecMount::Volume { name, target, writable } => (name.clone(), target, *writable),
            SpecMount::Bind { source, target, writable } => (source.to_string_lossy().into_owned(), target, *writable),
            other => return Err(Error::config(format!("service `{name}`: a mount of {other:?} is not carried out"))),
        };
        arg("--mount");
        arg(&format!("{source}:{target}{}", if writable { ":rw" } else { "" }));
    }
    for (k, v) in &spec.env {
        arg(&format!("--env={k}={v}"));
    }
    if let Some(w) = &spec.workdir {
        arg(&format!("--workdir={w}"));
    }
    if let Some((uid, gid)) = spec.user {
        arg(&format!("--user={uid}:{gid}"));
    }
    arg("--restart");
    arg(&spec.restart.to_string());
    if let Some(h) = &spec.healthcheck {
        match &h.test {
            HealthTest::Shell(line) => arg(&format!("--health-cmd={line}")),
            HealthTest::Cmd(words) => {
                for w in words {
                    arg(&format!("--health-cmd-word={w}"));
                }
            }
            _ => {}
        }
        for (flag, d) in [
            ("--health-interval", h.interval),
            ("--health-timeout", h.timeout),
            ("--health-start-period", h.start_period),
        ] {
            arg(flag);
            arg(&format!("{}ms", d.as_millis()));
        }
        arg("--health-retries");
        arg(&h.retries.to_string());
    }
    if spec.replaces_entrypoint {
        arg("--entrypoint=");
    }
    arg("--image");
    arg(&spec.image.reference);
    arg("--json");
    if !spec.argv.is_empty() {
        arg("--");
        for a in &spec.argv {
            arg(a);
        }
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("find", "this program", e))?;
    let out = Command::new(exe).args(&args).output().map_err(|e| Error::io("start", "isolette run -d", e))?;
    if out.status.success() {
        return Ok(());
    }
    let said: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let message = said["error"]["message"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
    Err(Error::config(format!("service `{name}` did not start: {message}")))
}

fn down(ctx: &Ctx, volumes: bool, remove_orphans: bool, timeout: Option<u64>) -> isolette::Result<u8> {
    let project = &ctx.project;
    let mut all = project_sandboxes(&project.name);
    // Dependents first: the reverse of the start order; orphans first of all.
    let order = project.order()?;
    all.sort_by_key(|s| {
        let service = s.config["labels"][SERVICE].as_str().unwrap_or("");
        std::cmp::Reverse(order.iter().position(|o| o == service).unwrap_or(usize::MAX))
    });
    let mut kept = Vec::new();
    for sb in all {
        let service = sb.config["labels"][SERVICE].as_str().unwrap_or("").to_string();
        if !project.services.contains_key(&service) && !remove_orphans {
            kept.push(sb.name.clone().unwrap_or(sb.id.clone()));
            continue;
        }
        let secs = timeout.unwrap_or_else(|| project.services.get(&service).map_or(10, stop_secs));
        detached::stop_one(&sb, secs)?;
        detached::remove_one(&sb)?;
        eprintln!(" Sandbox {}  Removed", sb.name.as_deref().unwrap_or(&sb.id));
    }
    if !kept.is_empty() {
        eprintln!(
            "isolette compose: warning: orphan sandboxes kept: {}; `down --remove-orphans` removes them",
            kept.join(", ")
        );
    }
    let mut say = |line: &str| eprintln!("{line}");
    project.remove_networks(&Networks::open_default()?, &mut say)?;
    if volumes {
        project.remove_volumes(&open_store(ctx.store.clone())?, &mut say)?;
    }
    Ok(0)
}

fn ps(project: &Project, all: bool, as_json: bool, services: &[String]) -> isolette::Result<u8> {
    let wanted = members(project, services)?;
    let rows: Vec<Sandbox> = project_sandboxes(&project.name)
        .into_iter()
        .filter(|s| all || matches!(s.state, State::Running | State::Created))
        .filter(|s| {
            let service = s.config["labels"][SERVICE].as_str().unwrap_or("");
            services.is_empty() || wanted.iter().any(|w| w == service)
        })
        .collect();
    if as_json {
        let out: Vec<Value> = rows
            .iter()
            .map(|s| {
                let mut row = s.to_json();
                row["service"] = s.config["labels"][SERVICE].clone();
                row["project"] = project.name.clone().into();
                row
            })
            .collect();
        println!("{}", Value::Array(out));
        return Ok(0);
    }
    println!("{:<28}  {:<24}  {:<12}  {:<20}  PORTS", "NAME", "IMAGE", "SERVICE", "STATUS");
    for s in &rows {
        let ports = if s.state == State::Running { s.ports().join(", ") } else { String::new() };
        println!(
            "{:<28}  {:<24}  {:<12}  {:<20}  {ports}",
            s.name.as_deref().unwrap_or(&s.id),
            s.config["image"].as_str().unwrap_or(""),
            s.config["labels"][SERVICE].as_str().unwrap_or(""),
            s.status()
        );
    }
    Ok(0)
}

/// The services' logs, each line after its prefix (`web-1  | `), as Compose prints them;
/// with `follow`, until every one has ended (or a signal comes).
fn logs(project: &Project, services: &[String], follow: bool, tail: Option<usize>) -> isolette::Result<u8> {
    struct Source {
        prefix: String,
        dir: PathBuf,
        /// Per log (stdout, stderr): where reading goes on, and a line not yet ended.
        at: [(u64, Vec<u8>); 2],
    }
    let shown: Vec<(String, Sandbox)> =
        services.iter().filter_map(|s| sandbox_of(project, s).map(|sb| (s.clone(), sb))).collect();
    let width = shown.iter().map(|(s, _)| s.len() + 2).max().unwrap_or(0);
    let mut sources: Vec<Source> = shown
        .iter()
        .map(|(s, sb)| Source {
            prefix: format!("{:<width$}  | ", format!("{s}-1")),
            dir: sb.dir.clone(),
            at: [(0, Vec::new()), (0, Vec::new())],
        })
        .collect();
    // With --tail, each log starts N lines from its end.
    if let Some(n) = tail {
        for src in &mut sources {
            for (i, name) in ["stdout.log", "stderr.log"].iter().enumerate() {
                let bytes = std::fs::read(src.dir.join(name)).unwrap_or_default();
                src.at[i].0 = tail_start(&bytes, n) as u64;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    loop {
        let mut any_running = false;
        let mut any = false;
        for src in &mut sources {
            let running = Sandbox::read(&src.dir).is_some_and(|sb| matches!(sb.state, State::Running | State::Created));
            any_running |= running;
            for (i, name) in ["stdout.log", "stderr.log"].iter().enumerate() {
                let Ok(mut file) = std::fs::File::open(src.dir.join(name)) else { continue };
                let (at, pending) = &mut src.at[i];
                let _ = file.seek(std::io::SeekFrom::Start(*at));
                let mut bytes = Vec::new();
                let _ = file.read_to_end(&mut bytes);
                *at += bytes.len() as u64;
                any |= !bytes.is_empty();
                pending.extend_from_slice(&bytes);
                // Whole lines now; the rest once it ends, or once nothing more can come.
                let end = if running && follow {
                    pending.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1)
                } else {
                    pending.len()
                };
                for line in pending[..end].split_inclusive(|b| *b == b'\n') {
                    let _ = out.write_all(src.prefix.as_bytes()).and_then(|()| out.write_all(line));
                    if !line.ends_with(b"\n") {
                        let _ = out.write_all(b"\n");
                    }
                }
                pending.drain(..end);
            }
        }
        let _ = out.flush();
        if !follow || !any_running || INTERRUPTED.load(Ordering::SeqCst) {
            return Ok(0);
        }
        if !any {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Where the last `n` lines of `bytes` start (a last line without its newline counts).
fn tail_start(bytes: &[u8], n: usize) -> usize {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if n == 0 {
        return bytes.len();
    }
    let mut start = body.len();
    for _ in 0..n {
        match body[..start].iter().rposition(|b| *b == b'\n') {
            Some(p) => start = p,
            None => return 0,
        }
    }
    start + 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn tail_counts_lines_from_the_end() {
        fn t(s: &str, n: usize) -> &str {
            &s[super::tail_start(s.as_bytes(), n)..]
        }
        assert_eq!(t("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(t("a\nb\nc", 2), "b\nc");
        assert_eq!(t("a\nb\n", 5), "a\nb\n");
        assert_eq!(t("a\n", 0), "");
        assert_eq!(t("", 3), "");
    }
}
