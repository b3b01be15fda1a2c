//! Detached sandboxes: `isolette run -d` and `ps`, `logs`, `wait`, `stop`, `kill`, `rm`,
//! in Docker's words.
//!
//! `run -d` checks the request, then starts this same program again (same arguments, with
//! `ISOLETTE_SUPERVISE` naming the state directory) as a small supervisor in a session of
//! its own, and returns once that one says the sandbox runs. The supervisor starts the
//! program again as `--restart` says (never after `stop`), and runs `--health-cmd` every
//! interval in a sandbox of its own that shares the sandbox's network. The supervisor
//! holds the sandbox: a sandbox dies with the thread that made it, so a SIGKILLed
//! supervisor takes its sandbox with it, and `ps` then shows it `dead`. Everything lives in
//! the state directory ([`state_root`]`/<id>/`):
//! - `config.json`: id, name, image, command, creation time, terminal, labels, restart
//!   policy (by `run -d`);
//! - `args`, `cwd`: the arguments of `run -d`, each ended by a NUL, and the directory it
//!   ran in, which `isolette start` gives a new supervisor to start a stopped sandbox
//!   again (relative paths mean what they meant);
//! - `lock`: `flock`ed by the supervisor for its whole life, so held means running;
//! - `started`: written by the supervisor each time it starts the program (pid, ports,
//!   restarts so far);
//! - `health.json`: the healthcheck's last word (`starting`, `healthy`, `unhealthy`), the
//!   failures in a row and the last check's output, while a healthcheck runs;
//! - `control`: the supervisor's Unix socket, one line per connection: `signal N`,
//!   `stop SECONDS` (SIGTERM, then a kill when it has not ended by then) or `kill`;
//! - `stdout.log`, `stderr.log`: the program's output as it comes, capped by the output
//!   limit as in a foreground run;
//! - `outcome.json`: the outcome, as `run --json` prints it (the output is in the logs).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use isolette::names::{self, now};
use isolette::{Error, Output, Stdin};
use nix::fcntl::{Flock, FlockArg};
use serde_json::{Value, json};

use crate::flags::{RunArgs, builder};
use crate::report::{self, SETUP_FAILED};

/// The environment variable that makes this program a detached sandbox's supervisor.
pub(crate) const SUPERVISE_ENV: &str = "ISOLETTE_SUPERVISE";

/// Where detached sandboxes keep their state: `$ISOLETTE_STATE`, else
/// `/run/isolette/sandboxes` for root, else `$XDG_RUNTIME_DIR/isolette/sandboxes`, else
/// `~/.local/state/isolette/sandboxes`.
pub(crate) fn state_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("ISOLETTE_STATE") {
        return dir.into();
    }
    if nix::unistd::geteuid().is_root() {
        return "/run/isolette/sandboxes".into();
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => PathBuf::from(dir).join("isolette/sandboxes"),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".local/state/isolette/sandboxes"),
    }
}

fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |e| Error::io(op, path, e)
}

/// `run -d`: checks the request, makes the state directory, starts the supervisor and
/// prints the new sandbox's id once it runs.
pub(crate) fn start(store: Option<PathBuf>, args: &RunArgs) -> isolette::Result<u8> {
    if args.interactive {
        return Err(Error::config("-i types this command's input, which -d leaves at once: drop -i or -d"));
    }
    if args.stdout.is_some() || args.stderr.is_some() {
        return Err(Error::config(
            "a detached sandbox's output goes to its logs (`isolette logs`): drop --stdout/--stderr",
        ));
    }
    // A bad request fails here, with nothing made.
    builder(store, args)?.check(&args.cmd)?;
    let root = state_root();
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&root).map_err(io("mkdir", &root))?;
    let id = new_id()?;
    let dir = root.join(&id);
    {
        // Names are unique: checked and taken under one lock.
        let _lock = names::lock(&root)?;
        if let Some(name) = &args.name {
            names::check("sandbox", name)?;
            if let Some(other) = list(&root).into_iter().find(|s| s.name.as_deref() == Some(name.as_str())) {
                return Err(Error::config(format!(
                    "the name `{name}` is taken by sandbox {}; `isolette rm {name}` it first",
                    other.id
                )));
            }
        }
        std::fs::DirBuilder::new().mode(0o700).create(&dir).map_err(io("mkdir", &dir))?;
        let mut labels = serde_json::Map::new();
        for label in &args.labels {
            let (k, v) = label.split_once('=').unwrap_or((label, ""));
            if k.is_empty() {
                return Err(Error::config(format!("label `{label}`: expected KEY=VALUE")));
            }
            labels.insert(k.to_string(), v.into());
        }
        let config = json!({
            "id": id,
            "name": args.name,
            "image": args.image.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>().join(" "),
            "command": args.cmd.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>(),
            "created": now(),
            "tty": args.tty,
            "labels": labels,
            "restart": args.restart.unwrap_or_default().to_string(),
        });
        write_atomic(&dir, "config.json", config.to_string().as_bytes())?;
        // The arguments as given, byte for byte, for `isolette start`.
        let argv: Vec<u8> = std::env::args_os()
            .skip(1)
            .flat_map(|a| std::os::unix::ffi::OsStringExt::into_vec(a).into_iter().chain([0]))
            .collect();
        write_atomic(&dir, "args", &argv)?;
        let cwd = std::env::current_dir().map_err(io("find", "the current directory"))?;
        write_atomic(&dir, "cwd", cwd.as_os_str().as_bytes())?;
    }
    match launch(&dir)? {
        None => {
            if args.json {
                println!("{}", json!({ "id": id }));
            } else {
                println!("{id}");
            }
            Ok(0)
        }
        Some(failure) => {
            let _ = std::fs::remove_dir_all(&dir);
            report_failure(&failure, args.json);
            Ok(SETUP_FAILED)
        }
    }
}

/// Starts the supervisor of the sandbox in `dir` with the arguments kept there; `None` once
/// it says the sandbox runs, else its failure (JSON).
fn launch(dir: &Path) -> isolette::Result<Option<Value>> {
    use std::os::unix::ffi::OsStringExt;
    let argv = std::fs::read(dir.join("args")).map_err(io("read", dir.join("args")))?;
    // Each argument ends with a NUL (none holds one): empty ones are kept.
    let mut argv: Vec<std::ffi::OsString> =
        argv.split(|b| *b == 0).map(|a| std::ffi::OsString::from_vec(a.to_vec())).collect();
    argv.pop();
    let cwd = std::fs::read(dir.join("cwd")).map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)));
    let exe = std::env::current_exe().map_err(io("find", "this program"))?;
    let mut supervisor = Command::new(exe);
    if let Ok(cwd) = cwd {
        supervisor.current_dir(cwd);
    }
    let mut supervisor = supervisor
        .args(argv)
        .env(SUPERVISE_ENV, dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(io("start", "the supervisor"))?;
    let mut reply = String::new();
    let _ = supervisor.stdout.take().expect("piped").read_to_string(&mut reply);
    if reply.trim() == "started" {
        return Ok(None);
    }
    let _ = supervisor.wait();
    // The supervisor's failure, as one JSON object (`report::setup_error`).
    Ok(Some(serde_json::from_str(reply.trim()).unwrap_or_else(|_| {
        let ended = std::io::Error::other("the supervisor ended before the sandbox started");
        report::setup_error(&Error::io("supervise", dir, ended))
    })))
}

fn report_failure(failure: &Value, as_json: bool) {
    if as_json {
        report::print_json(failure);
    } else {
        eprintln!("isolette: {}", failure["error"]["message"].as_str().unwrap_or("the supervisor failed"));
    }
}

/// `isolette start ID...`: starts stopped (ended or dead) sandboxes again with the
/// arguments they were made with; their logs go on.
pub(crate) fn start_again(queries: &[String], as_json: bool) -> isolette::Result<u8> {
    for query in queries {
        start_one(&find(query)?, as_json)?;
        println!("{query}");
    }
    Ok(0)
}

/// Starts `sandbox` again unless it runs.
pub(crate) fn start_one(sandbox: &Sandbox, as_json: bool) -> isolette::Result<()> {
    if matches!(sandbox.state, State::Running | State::Created) {
        return Ok(());
    }
    // The lock: two `start`s do not both launch.
    let _lock = names::lock(&state_root())?;
    for stale in ["outcome.json", "started", "health.json", "control"] {
        let _ = std::fs::remove_file(sandbox.dir.join(stale));
    }
    if let Some(failure) = launch(&sandbox.dir)? {
        let message = failure["error"]["message"].as_str().unwrap_or("the supervisor failed").to_string();
        let _ = write_atomic(&sandbox.dir, "outcome.json", failure.to_string().as_bytes());
        report_failure(&failure, as_json);
        let name = sandbox.name.as_deref().unwrap_or(&sandbox.id);
        return Err(Error::config(format!("sandbox {name} did not start: {message}")));
    }
    Ok(())
}

/// The supervisor of one detached sandbox (`ISOLETTE_SUPERVISE` set): never returns to a
/// caller that waits, so it answers on stdout (`started`, or a failure as JSON) and then
/// lets stdout go. It starts the program again as its restart policy says (not after a
/// `stop`), and runs its healthcheck while it runs.
pub(crate) fn supervise(dir: &Path, store: Option<PathBuf>, args: &RunArgs) -> u8 {
    let _ = nix::unistd::setsid();
    let answer = |text: &str| {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{text}").and_then(|()| stdout.flush());
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            let _ = nix::unistd::dup2_stdout(null);
        }
    };
    let spawn = || -> isolette::Result<isolette::Running> {
        let mut b = builder(store.clone(), args)?.stdout(Output::Pipe);
        if !args.tty {
            b = b.stderr(Output::Pipe);
        }
        if let Some(f) = &args.stdin {
            b = match args.tty {
                true => b.stdin(std::fs::read(f).map_err(io("read", f))?),
                false => b.stdin_from(Stdin::File(f.clone())),
            };
        }
        b.spawn(&args.cmd)
    };
    let started = (|| {
        let lock = names::lock(dir)?;
        let control = dir.join("control");
        let _ = std::fs::remove_file(&control); // a killed supervisor's
        let running = spawn()?;
        let listener = UnixListener::bind(&control).map_err(io("bind", &control))?;
        listener.set_nonblocking(true).map_err(io("fcntl", &control))?;
        Ok::<_, Error>((lock, running, listener))
    })();
    let (_lock, mut running, listener) = match started {
        Ok(parts) => parts,
        Err(e) => {
            answer(&report::setup_error(&e).to_string());
            return SETUP_FAILED;
        }
    };
    let policy = args.restart.unwrap_or_default();
    let check = args.healthcheck().map(|c| (c, health_args(args)));
    let mut restarts = 0u32;
    let mut stopped = false;
    let outcome = loop {
        let copiers =
            [copy_log(running.take_stdout(), dir, "stdout.log"), copy_log(running.take_stderr(), dir, "stderr.log")];
        let _ = write_atomic(
            dir,
            "started",
            json!({
                "pid": running.pid(),
                "supervisor": std::process::id(),
                "ports": running.ports().iter().map(ToString::to_string).collect::<Vec<_>>(),
                "restarts": restarts,
                "at": now(),
            })
            .to_string()
            .as_bytes(),
        );
        if restarts == 0 {
            answer("started");
        }
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let health = check.as_ref().and_then(|(c, check_args)| {
            let network = running.network().ok()?;
            let (c, check_args, done, dir, store) =
                (c.clone(), check_args.clone(), done.clone(), dir.to_path_buf(), store.clone());
            Some(std::thread::spawn(move || health_loop(&dir, store, &check_args, &c, network, &done)))
        });
        let mut kill_at: Option<Instant> = None;
        let outcome = loop {
            match running.wait_timeout(Duration::from_millis(50)) {
                Ok(Some(out)) => break Ok(out),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            if kill_at.is_some_and(|at| Instant::now() >= at) {
                running.kill();
                kill_at = None;
            }
            while let Ok((conn, _)) = listener.accept() {
                serve(conn, Some(&running), &mut kill_at, &mut stopped);
            }
        };
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = health {
            let _ = h.join();
        }
        for copier in copiers {
            let _ = copier.join();
        }
        if stopped || !policy.restarts_after(&outcome, restarts) {
            break outcome;
        }
        // Docker's back-off; `stop` ends it.
        let until = Instant::now() + isolette::compose::Restart::backoff(restarts);
        while Instant::now() < until && !stopped {
            std::thread::sleep(Duration::from_millis(20));
            let mut no_kill = None;
            while let Ok((conn, _)) = listener.accept() {
                serve(conn, None, &mut no_kill, &mut stopped);
            }
        }
        if stopped {
            break outcome;
        }
        restarts += 1;
        // The ended sandbox goes first: its published ports are free for the next.
        running = match replace(running, &spawn) {
            Ok(again) => again,
            Err(e) => break Err(e),
        };
    };
    let value = match &outcome {
        Ok(out) => {
            let mut v = out.to_json();
            if let Some(map) = v.as_object_mut() {
                map.retain(|k, _| !k.starts_with("stdout") && !k.starts_with("stderr") || k.ends_with("truncated"));
                map.insert("restarts".into(), restarts.into());
                map.insert("stopped".into(), stopped.into());
            }
            v
        }
        Err(e) => report::setup_error(e),
    };
    let _ = write_atomic(dir, "outcome.json", value.to_string().as_bytes());
    let _ = std::fs::remove_file(dir.join("control"));
    if args.rm {
        let _ = std::fs::remove_dir_all(dir);
    }
    isolette::cleanup();
    0
}

/// Drops `old` (an ended sandbox, and what it held: its ports, its network lease), then
/// starts the next with `spawn`.
fn replace(
    old: isolette::Running,
    spawn: &dyn Fn() -> isolette::Result<isolette::Running>,
) -> isolette::Result<isolette::Running> {
    drop(old);
    spawn()
}

/// Copies a program's output into its log, appended (a restarted program's goes on after
/// the last one's), from a thread of its own.
fn copy_log(stream: Option<UnixStream>, dir: &Path, name: &str) -> std::thread::JoinHandle<()> {
    let file = File::options().create(true).append(true).open(dir.join(name));
    std::thread::spawn(move || {
        if let (Some(mut stream), Ok(mut file)) = (stream, file) {
            let _ = std::io::copy(&mut stream, &mut file);
        }
    })
}

/// The flags of a healthcheck's sandbox: the sandbox's own, with its network shared
/// instead of joined, nothing published, no terminal, no name.
fn health_args(args: &RunArgs) -> RunArgs {
    let mut a = args.clone();
    a.network = None;
    a.publish.clear();
    a.egress.clear();
    a.allow_host_loopback = false;
    a.name = None;
    a.hostname = None;
    a.tty = false;
    a.stdin = None;
    a.entrypoint = Some(std::ffi::OsString::new());
    a
}

/// Runs the healthcheck every interval until `done`, each time in a sandbox of its own
/// sharing `network`; writes `health.json` (`starting`, `healthy`, `unhealthy`, the
/// failures in a row, the last check's output) after each.
fn health_loop(
    dir: &Path,
    store: Option<PathBuf>,
    args: &RunArgs,
    check: &isolette::compose::Healthcheck,
    network: isolette::SharedNetwork,
    done: &std::sync::atomic::AtomicBool,
) {
    let state = isolette::compose::HealthState::new(check);
    let write = |state: &isolette::compose::HealthState, output: &str| {
        let health = json!({
            "status": state.status().as_str(),
            "failing_streak": state.failing_streak(),
            "output": output,
            "at": now(),
        });
        let _ = write_atomic(dir, "health.json", health.to_string().as_bytes());
    };
    write(&state, "");
    // Made once: each check is a run of the same sandbox.
    let base = builder(store, args)
        .map(|b| b.network(isolette::Network::Shared(network)).wall_time(check.timeout).output_limit(4096));
    isolette::compose::run_checks(check, &base, done, &mut |state, output| write(state, &output));
}

/// One request on the control socket; `running` is `None` between a program's end and its
/// restart. `stop` marks the sandbox stopped: it is not started again.
fn serve(conn: UnixStream, running: Option<&isolette::Running>, kill_at: &mut Option<Instant>, stopped: &mut bool) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
    let mut line = String::new();
    let _ = BufReader::new(&conn).read_line(&mut line);
    let words: Vec<&str> = line.split_whitespace().collect();
    let result = match (words.as_slice(), running) {
        (["kill"], Some(running)) => {
            *stopped = true;
            running.kill();
            Ok(())
        }
        (["signal", n], Some(running)) => {
            n.parse().map_err(|_| Error::config("bad signal")).and_then(|n| running.signal(n))
        }
        (["stop", secs], Some(running)) => match secs.parse::<u64>() {
            Ok(secs) => {
                *stopped = true;
                let at = Instant::now() + Duration::from_secs(secs);
                *kill_at = Some(kill_at.map_or(at, |old| old.min(at)));
                running.signal(libc::SIGTERM)
            }
            Err(_) => Err(Error::config("bad stop timeout")),
        },
        (["kill" | "stop", ..], None) => {
            *stopped = true;
            Ok(())
        }
        (["signal", _], None) => Err(Error::config("the program is restarting: nothing runs to signal")),
        _ => Err(Error::config(format!("unknown request `{}`", line.trim()))),
    };
    let reply = match result {
        Ok(()) => "ok\n".to_string(),
        Err(e) => format!("error: {e}\n"),
    };
    let _ = (&conn).write_all(reply.as_bytes());
}

/// A 12-digit hex id, random.
fn new_id() -> isolette::Result<String> {
    let mut bytes = [0u8; 6];
    File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).map_err(io("read", "/dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes `dir/name` whole or not at all (a temporary file, then a rename).
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> isolette::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(io("write", &tmp))?;
    std::fs::rename(&tmp, dir.join(name)).map_err(io("rename", &tmp))
}

/// Where a detached sandbox is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum State {
    /// Just made: its supervisor is starting.
    Created,
    Running,
    /// Ended, with this outcome.
    Exited(Value),
    /// Its supervisor died (was killed) before the run ended; the sandbox went with it.
    Dead,
}

/// One detached sandbox, as its state directory tells.
pub(crate) struct Sandbox {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) dir: PathBuf,
    pub(crate) config: Value,
    pub(crate) state: State,
}

impl Sandbox {
    pub(crate) fn read(dir: &Path) -> Option<Sandbox> {
        let config: Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).ok()?).ok()?;
        let state = state(dir, config["created"].as_u64().unwrap_or(0));
        Some(Sandbox {
            id: config["id"].as_str()?.to_string(),
            name: config["name"].as_str().map(String::from),
            dir: dir.to_path_buf(),
            config,
            state,
        })
    }

    /// The published ports (`127.0.0.1:8080->8000/tcp`), as the supervisor wrote them.
    pub(crate) fn ports(&self) -> Vec<String> {
        self.started()["ports"].as_array().into_iter().flatten().filter_map(Value::as_str).map(String::from).collect()
    }

    /// The row `ps --json` prints (and `compose ps --json`, with the service).
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "image": self.config["image"],
            "command": self.config["command"],
            "status": self.status(),
            "ports": self.ports(),
            "created": self.config["created"],
            "labels": self.config["labels"],
            "health": self.health(),
            "restarts": self.started()["restarts"],
            "outcome": match &self.state { State::Exited(out) => out.clone(), _ => Value::Null },
        })
    }

    /// What the supervisor wrote when it last started the program.
    pub(crate) fn started(&self) -> Value {
        std::fs::read(self.dir.join("started")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    /// The healthcheck's last word (`starting`, `healthy`, `unhealthy`), while it runs.
    pub(crate) fn health(&self) -> Option<String> {
        if self.state != State::Running {
            return None;
        }
        let health: Value = serde_json::from_slice(&std::fs::read(self.dir.join("health.json")).ok()?).ok()?;
        health["status"].as_str().map(String::from)
    }

    /// Docker's status words: `running`, `running (healthy)`, `exited (CODE)`, the verdict
    /// of a limit, `dead`.
    pub(crate) fn status(&self) -> String {
        match &self.state {
            State::Created => "created".into(),
            State::Running => match self.health() {
                Some(h) => format!("running ({h})"),
                None => "running".into(),
            },
            State::Dead => "dead".into(),
            State::Exited(out) => match (out["status"].as_str().unwrap_or("setup_error"), &out["exit_code"]) {
                ("ok" | "runtime_error", Value::Number(code)) => format!("exited ({code})"),
                ("signaled", _) => format!("signaled ({})", out["signal"]),
                (status, _) => status.to_string(),
            },
        }
    }
}

fn state(dir: &Path, created: u64) -> State {
    if let Ok(bytes) = std::fs::read(dir.join("outcome.json")) {
        return State::Exited(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
    }
    let held = File::open(dir.join("lock")).ok().is_some_and(|f| Flock::lock(f, FlockArg::LockSharedNonblock).is_err());
    if held {
        return State::Running;
    }
    // Read again: it may have ended between the two looks.
    if let Ok(bytes) = std::fs::read(dir.join("outcome.json")) {
        return State::Exited(serde_json::from_slice(&bytes).unwrap_or(Value::Null));
    }
    if !dir.join("started").exists() && now().saturating_sub(created) < 10 {
        return State::Created;
    }
    State::Dead
}

/// Every detached sandbox, oldest first.
pub(crate) fn list(root: &Path) -> Vec<Sandbox> {
    let mut all: Vec<Sandbox> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| Sandbox::read(&e.path()))
        .collect();
    all.sort_by_key(|s| (s.config["created"].as_u64(), s.id.clone()));
    all
}

/// The sandbox an id, a unique prefix of one, or a name stands for.
fn find(query: &str) -> isolette::Result<Sandbox> {
    let all = list(&state_root());
    if let Some(i) = all.iter().position(|s| s.id == query || s.name.as_deref() == Some(query)) {
        return Ok(all.into_iter().nth(i).expect("found"));
    }
    let mut matching: Vec<Sandbox> = all.into_iter().filter(|s| !query.is_empty() && s.id.starts_with(query)).collect();
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => Err(Error::config(format!("no sandbox `{query}`; `isolette ps -a` lists them"))),
        _ => Err(Error::config(format!("`{query}` is the start of several ids; give more of it"))),
    }
}

/// Sends one request to a running sandbox's supervisor.
pub(crate) fn request(sandbox: &Sandbox, line: &str) -> isolette::Result<()> {
    let path = sandbox.dir.join("control");
    let mut conn = UnixStream::connect(&path).map_err(io("connect", &path))?;
    conn.write_all(format!("{line}\n").as_bytes()).map_err(io("write", &path))?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply).map_err(io("read", &path))?;
    match reply.trim().strip_prefix("error: ") {
        Some(message) => Err(Error::config(message.to_string())),
        None => Ok(()),
    }
}

/// Waits until the sandbox's supervisor is gone; its state then.
pub(crate) fn wait_gone(sandbox: &Sandbox) -> State {
    let deadline = Instant::now() + Duration::from_secs(10);
    while state(&sandbox.dir, sandbox.config["created"].as_u64().unwrap_or(0)) == State::Created
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Ok(file) = File::open(sandbox.dir.join("lock")) {
        let _ = Flock::lock(file, FlockArg::LockShared);
    }
    state(&sandbox.dir, 0)
}

/// `isolette ps [-a] [--json]`.
pub(crate) fn ps(all: bool, as_json: bool) -> isolette::Result<u8> {
    let shown: Vec<Sandbox> =
        list(&state_root()).into_iter().filter(|s| all || matches!(s.state, State::Running | State::Created)).collect();
    if as_json {
        println!("{}", Value::Array(shown.iter().map(Sandbox::to_json).collect()));
        return Ok(0);
    }
    println!(
        "{:<12}  {:<16}  {:<20}  {:<30}  {:<18}  {:<12}  PORTS",
        "ID", "NAME", "IMAGE", "COMMAND", "STATUS", "CREATED"
    );
    for s in &shown {
        let command: Vec<&str> =
            s.config["command"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let ago = now().saturating_sub(s.config["created"].as_u64().unwrap_or(0));
        let ports = if matches!(s.state, State::Running) { s.ports().join(", ") } else { String::new() };
        println!(
            "{:<12}  {:<16}  {:<20}  {:<30}  {:<18}  {:<12}  {ports}",
            s.id,
            clip(s.name.as_deref().unwrap_or(""), 16),
            clip(s.config["image"].as_str().unwrap_or(""), 20),
            clip(&command.join(" "), 30),
            s.status(),
            format!("{} ago", report::ago(ago)),
        );
    }
    Ok(0)
}

fn clip(s: &str, width: usize) -> String {
    match s.char_indices().nth(width) {
        Some((at, _)) => format!("{}…", &s[..s.char_indices().nth(width - 1).map_or(at, |(i, _)| i)]),
        None => s.to_string(),
    }
}

/// `isolette logs [-f] ID`: stdout's log to stdout and stderr's to stderr; with `-f`, what
/// comes after too, until the sandbox ends.
pub(crate) fn logs(query: &str, follow: bool) -> isolette::Result<u8> {
    let sandbox = find(query)?;
    let mut files = [("stdout.log", 0u64), ("stderr.log", 0u64)];
    loop {
        // Whether it still runs, looked at before reading, so nothing written at the end
        // is missed.
        let running = matches!(state(&sandbox.dir, 0), State::Running | State::Created);
        let mut any = false;
        for (i, (name, at)) in files.iter_mut().enumerate() {
            let Ok(mut file) = File::open(sandbox.dir.join(*name)) else { continue };
            let _ = std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(*at));
            let mut bytes = Vec::new();
            let _ = file.read_to_end(&mut bytes);
            *at += bytes.len() as u64;
            any |= !bytes.is_empty();
            let _ = match i {
                0 => std::io::stdout().write_all(&bytes).and_then(|()| std::io::stdout().flush()),
                _ => std::io::stderr().write_all(&bytes),
            };
        }
        if !follow || (!running && !any) {
            return Ok(0);
        }
        if !any {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `isolette wait ID`: waits for the end and prints the outcome (JSON).
pub(crate) fn wait(query: &str) -> isolette::Result<u8> {
    let sandbox = find(query)?;
    match wait_gone(&sandbox) {
        State::Exited(out) => {
            println!("{out}");
            Ok(0)
        }
        _ => Err(Error::config(format!(
            "sandbox {} is dead: its supervisor was killed before the run ended",
            sandbox.id
        ))),
    }
}

/// `isolette stop [-t SECS] ID...`: SIGTERM to the program, then a kill after `secs`.
pub(crate) fn stop(queries: &[String], secs: u64) -> isolette::Result<u8> {
    for query in queries {
        let sandbox = find(query)?;
        if sandbox.state == State::Running {
            request(&sandbox, &format!("stop {secs}"))?;
            wait_gone(&sandbox);
        }
        println!("{query}");
    }
    Ok(0)
}

/// `isolette kill [-s SIGNAL] ID...`: a kill (the run ends `cancelled`), or the signal.
pub(crate) fn kill(queries: &[String], signal: &str) -> isolette::Result<u8> {
    let number = isolette::parse_signal(signal)?;
    for query in queries {
        let sandbox = find(query)?;
        if sandbox.state != State::Running {
            return Err(Error::config(format!("sandbox {query} is not running")));
        }
        match number {
            libc::SIGKILL => request(&sandbox, "kill")?,
            n => request(&sandbox, &format!("signal {n}"))?,
        }
        println!("{query}");
    }
    Ok(0)
}

/// Stops `sandbox` as `isolette stop` does (SIGTERM, a kill after `secs`) and waits for
/// its supervisor to be gone. Its state is looked at afresh: it may have ended since.
pub(crate) fn stop_one(sandbox: &Sandbox, secs: u64) -> isolette::Result<()> {
    ask_and_wait(sandbox, &format!("stop {secs}"))
}

/// Sends `line` to the supervisor of `sandbox` if it still runs, and waits for it to be
/// gone; a supervisor that ended between the look and the request is as good.
fn ask_and_wait(sandbox: &Sandbox, line: &str) -> isolette::Result<()> {
    let now = Sandbox::read(&sandbox.dir).map_or(State::Dead, |s| s.state);
    if now == State::Running
        && let Err(e) = request(sandbox, line)
        && matches!(state(&sandbox.dir, 0), State::Running)
    {
        return Err(e);
    }
    if matches!(now, State::Running | State::Created) {
        wait_gone(sandbox);
    }
    Ok(())
}

/// Removes `sandbox`, killing it first if it runs.
pub(crate) fn remove_one(sandbox: &Sandbox) -> isolette::Result<()> {
    ask_and_wait(sandbox, "kill")?;
    std::fs::remove_dir_all(&sandbox.dir).map_err(io("remove", &sandbox.dir))
}

/// `isolette rm [-f] ID...`: removes ended sandboxes' state; a running one only with
/// `-f`, which kills it first.
pub(crate) fn rm(queries: &[String], force: bool) -> isolette::Result<u8> {
    for query in queries {
        let sandbox = find(query)?;
        if matches!(sandbox.state, State::Running | State::Created) {
            if !force {
                return Err(Error::config(format!(
                    "sandbox {query} is running; `isolette stop {query}` first, or `rm -f` to kill it"
                )));
            }
            if sandbox.state == State::Running {
                request(&sandbox, "kill")?;
            }
            wait_gone(&sandbox);
        }
        std::fs::remove_dir_all(&sandbox.dir).map_err(io("remove", &sandbox.dir))?;
        println!("{query}");
    }
    Ok(0)
}

/// For `isolette gc`: removes the state of dead sandboxes (their supervisor was killed);
/// their ids.
pub(crate) fn gc() -> Vec<String> {
    let root = state_root();
    let mut removed = Vec::new();
    for sandbox in list(&root) {
        if sandbox.state == State::Dead && std::fs::remove_dir_all(&sandbox.dir).is_ok() {
            removed.push(sandbox.id);
        }
    }
    // Directories a `run -d` killed halfway left without a config, once nobody holds them.
    for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let path = entry.path();
        let old = entry.metadata().is_ok_and(|m| now().saturating_sub(m.mtime().max(0) as u64) > 60);
        if path.is_dir() && old && !path.join("config.json").exists() {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
    removed
}
