//! A project brought up in this process ([`Project::up`]), for the library and its
//! bindings: each service a sandbox held by a supervising thread of its own, which keeps
//! the output, carries out the restart policy and runs the healthcheck, as the CLI's
//! detached supervisor does for `isolette compose`. The [`RunningProject`] owns all of it:
//! [`RunningProject::down`], or dropping it, stops the services (dependents first) and
//! removes the project's networks; a sandbox dies with the thread that made it, so a
//! killed caller takes its services with it.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::health::{Health, run_checks};
use super::up::ServiceSpec;
use super::{Condition, Project};
use crate::cancel::Canceller;
use crate::error::{Error, Result};
use crate::network::{Networks, Publish};
use crate::outcome::{Outcome, Status};
use crate::stdio::Output;
use crate::store::Store;

/// How to bring a project up ([`Project::up`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct UpOptions {
    /// Only these services, and what they depend on (every one when empty).
    pub services: Vec<String>,
    /// Build the images of services with `build` even when present.
    pub build: bool,
    /// Return once every service runs, and is healthy where it has a healthcheck
    /// (`up --wait`); an unhealthy one is an error.
    pub wait: bool,
    /// Ends a build or a wait under way; what was started is stopped again.
    pub canceller: Option<Canceller>,
    /// The most bytes of each stream's output kept per service; older bytes are dropped
    /// (and counted) beyond it.
    pub log_limit: usize,
}

impl Default for UpOptions {
    fn default() -> UpOptions {
        UpOptions { services: Vec::new(), build: false, wait: false, canceller: None, log_limit: 16 << 20 }
    }
}

/// Where a service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Its program runs.
    Running,
    /// Its program ended, and the restart policy starts it again after the back-off.
    Restarting,
    /// Its program ended, and nothing starts it again.
    Exited,
}

impl Phase {
    /// Docker's word: `running`, `restarting`, `exited`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Restarting => "restarting",
            Phase::Exited => "exited",
        }
    }
}

/// One service of a [`RunningProject`], as it is now.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceStatus {
    /// The service's name.
    pub service: String,
    /// Its sandbox's name (`<project>-<service>-1`).
    pub name: String,
    /// Where it is.
    pub phase: Phase,
    /// Its healthcheck's word, when it has one and the program runs.
    pub health: Option<Health>,
    /// The last check's output.
    pub health_output: String,
    /// Restarts so far.
    pub restarts: u32,
    /// The program's pid (in this process's pid namespace), while it runs.
    pub pid: Option<i32>,
    /// Its published ports, host ports resolved.
    pub ports: Vec<Publish>,
    /// How the last run ended, once one did.
    pub outcome: Option<Outcome>,
    /// Why it could not be started again, if so.
    pub error: Option<String>,
}

impl ServiceStatus {
    /// The status as the bindings give it: `service`, `name`, `state`, `health`,
    /// `restarts`, `pid`, `ports`, `exit_code`, `status`, `error`.
    pub fn to_json(&self) -> Value {
        json!({
            "service": self.service,
            "name": self.name,
            "state": self.phase.as_str(),
            "health": self.health.map(Health::as_str),
            "health_output": self.health_output,
            "restarts": self.restarts,
            "pid": self.pid,
            "ports": self.ports.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "exit_code": self.outcome.as_ref().and_then(|o| o.exit_code),
            "status": self.outcome.as_ref().map(|o| o.status.as_str()),
            "error": self.error,
        })
    }
}

/// What a service's thread and its owner share.
struct Shared {
    status: Mutex<ServiceStatus>,
    /// Signalled whenever `status` changes.
    changed: Condvar,
    /// When set, the program is stopped (SIGTERM, then a kill at this time) and not
    /// started again.
    stop_at: Mutex<Option<Instant>>,
    stdout: Mutex<Log>,
    stderr: Mutex<Log>,
}

impl Shared {
    fn status(&self) -> MutexGuard<'_, ServiceStatus> {
        self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut ServiceStatus)) {
        f(&mut self.status());
        self.changed.notify_all();
    }

    fn stop_at(&self) -> Option<Instant> {
        *self.stop_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One stream's output: the last `limit` bytes, and how many older ones were dropped.
struct Log {
    bytes: VecDeque<u8>,
    dropped: u64,
    limit: usize,
}

/// Appends to a shared [`Log`].
struct LogWriter(Arc<Shared>, bool);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mutex = if self.1 { &self.0.stdout } else { &self.0.stderr };
        let mut log = mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        log.bytes.extend(buf);
        let over = log.bytes.len().saturating_sub(log.limit);
        log.bytes.drain(..over);
        log.dropped += over as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A service held by a thread of its own.
struct Held {
    service: String,
    spec: ServiceSpec,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A project brought up in this process; see the module's documentation. Dropping it is
/// [`RunningProject::down`] without removing volumes.
pub struct RunningProject {
    project: Project,
    store: Store,
    networks: Networks,
    /// In start order.
    services: Vec<Held>,
    ended: AtomicBool,
}

impl std::fmt::Debug for RunningProject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningProject")
            .field("project", &self.project.name)
            .field("services", &self.services.iter().map(|h| &h.service).collect::<Vec<_>>())
            .finish()
    }
}

impl Project {
    /// Brings the project up in this process (`docker compose up`, attached to the
    /// caller): images from `store` (built where asked for or missing), networks (in
    /// `networks`) and volumes (in `store`) made, each service started once what it
    /// depends on has reached its condition. `progress` hears Compose's lines
    /// (` Network proj_default  Created`, build steps). A dependency that fails its condition is an error in Compose's words
    /// (`dependency failed to start: proj-db-1 is unhealthy`), and everything this `up`
    /// started is stopped again.
    pub fn up(
        &self,
        store: &Store,
        networks: &Networks,
        options: &UpOptions,
        progress: &mut dyn FnMut(&str),
    ) -> Result<RunningProject> {
        let order = self.wanted(&options.services)?;
        let images = self.images(store, &order, options.build, options.canceller.as_ref(), progress)?;
        let mut specs = Vec::new();
        for name in &order {
            specs.push(self.spec(name, &images[name])?);
        }
        // From here on, dropping `running` takes back whatever was made.
        let mut running = RunningProject {
            project: self.clone(),
            store: store.clone(),
            networks: networks.clone(),
            services: Vec::new(),
            ended: AtomicBool::new(false),
        };
        self.make_networks(networks, &order, &mut Vec::new(), progress)?;
        self.make_volumes(store, progress)?;
        for (name, spec) in order.iter().zip(specs) {
            for (dep, condition) in &self.services[name].depends_on {
                running.wait_for(dep, *condition, options.canceller.as_ref())?;
            }
            cancelled(options.canceller.as_ref())?;
            running.start(name, spec, options.log_limit)?;
            progress(&format!(" Sandbox {}  Started", self.sandbox_name(name)));
        }
        if options.wait {
            for name in &order {
                let healthy = running.held(name)?.spec.healthcheck.is_some();
                let condition = if healthy { Condition::ServiceHealthy } else { Condition::ServiceStarted };
                running.wait_for(name, condition, options.canceller.as_ref())?;
                progress(&format!(
                    " Sandbox {}  {}",
                    self.sandbox_name(name),
                    if healthy { "Healthy" } else { "Running" }
                ));
            }
        }
        Ok(running)
    }
}

fn cancelled(canceller: Option<&Canceller>) -> Result<()> {
    match canceller {
        Some(c) if c.is_cancelled() => Err(Error::config("interrupted: what this `up` started is stopped again")),
        _ => Ok(()),
    }
}

impl RunningProject {
    /// The project.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// Every service started, in start order, as it is now.
    pub fn ps(&self) -> Vec<ServiceStatus> {
        self.services.iter().map(|h| h.shared.status().clone()).collect()
    }

    /// Service `service`'s output so far (stdout, stderr), across its restarts: the last
    /// [`UpOptions::log_limit`] bytes of each, and how many older bytes were dropped.
    pub fn logs(&self, service: &str) -> Result<(Vec<u8>, Vec<u8>, u64)> {
        let shared = &self.held(service)?.shared;
        let take = |m: &Mutex<Log>| {
            let log = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            (log.bytes.iter().copied().collect::<Vec<u8>>(), log.dropped)
        };
        let ((out, a), (err, b)) = (take(&shared.stdout), take(&shared.stderr));
        Ok((out, err, a + b))
    }

    /// Waits until service `service` has reached `condition` (as `depends_on` says it);
    /// one that cannot reach it any more is an error in Compose's words.
    pub fn wait_for(&self, service: &str, condition: Condition, canceller: Option<&Canceller>) -> Result<()> {
        let held = self.held(service)?;
        let name = &held.spec.name;
        let has_check = held.spec.healthcheck.is_some();
        if condition == Condition::ServiceHealthy && !has_check {
            return Err(Error::config(format!(
                "dependency failed to start: {name} has no healthcheck, and a dependent waits for it to be healthy"
            )));
        }
        let mut status = held.shared.status();
        loop {
            cancelled(canceller)?;
            match (status.phase, condition) {
                (Phase::Running, Condition::ServiceStarted) => return Ok(()),
                (Phase::Running, Condition::ServiceHealthy) => match status.health {
                    Some(Health::Healthy) => return Ok(()),
                    Some(Health::Unhealthy) => {
                        return Err(Error::config(format!("dependency failed to start: {name} is unhealthy")));
                    }
                    _ => {}
                },
                (Phase::Exited, Condition::ServiceCompletedSuccessfully) => {
                    return match status.outcome.as_ref().and_then(|o| o.exit_code) {
                        Some(0) => Ok(()),
                        code => Err(Error::config(format!(
                            "service {service} didn't complete successfully: {}",
                            code.map_or_else(|| ended(&status), |c| format!("exit {c}"))
                        ))),
                    };
                }
                (Phase::Exited, _) => {
                    return Err(Error::config(format!("dependency failed to start: {name} {}", ended(&status))));
                }
                _ => {}
            }
            status = held
                .shared
                .changed
                .wait_timeout(status, Duration::from_millis(50))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Stops the services, dependents first (SIGTERM, then a kill after each one's
    /// `stop_grace_period`), removes the project's networks (never external ones), and
    /// with `volumes` the
    /// project's named volumes (never external ones). The first error, once everything
    /// was tried. The statuses and logs stay readable; a second `down` does nothing but
    /// remove the volumes when asked.
    pub fn down(&self, volumes: bool) -> Result<()> {
        let mut result = self.end();
        if volumes {
            result = result.and(self.project.remove_volumes(&self.store, &mut |_| {}));
        }
        result
    }

    /// Stops everything and removes the networks made; once.
    fn end(&self) -> Result<()> {
        if self.ended.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        for held in self.services.iter().rev() {
            let at = Instant::now() + held.spec.stop_grace;
            held.shared.stop_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert(at);
            let thread = held.thread.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
            if let Some(t) = thread {
                let _ = t.join();
            }
        }
        // The project's networks, as `docker compose down` removes them: a network left by
        // an owner that was killed goes too.
        self.project.remove_networks(&self.networks, &mut |_| {})
    }

    fn held(&self, service: &str) -> Result<&Held> {
        self.services.iter().find(|h| h.service == service).ok_or_else(|| {
            Error::config(format!("service `{service}` was not started by this `up` of project {}", self.project.name))
        })
    }

    /// Starts service `name`'s thread, and returns once its first start succeeded or
    /// failed.
    fn start(&mut self, name: &str, spec: ServiceSpec, log_limit: usize) -> Result<()> {
        let log = || Mutex::new(Log { bytes: VecDeque::new(), dropped: 0, limit: log_limit });
        let shared = Arc::new(Shared {
            status: Mutex::new(ServiceStatus {
                service: name.to_string(),
                name: spec.name.clone(),
                phase: Phase::Running,
                health: None,
                health_output: String::new(),
                restarts: 0,
                pid: None,
                ports: Vec::new(),
                outcome: None,
                error: None,
            }),
            changed: Condvar::new(),
            stop_at: Mutex::new(None),
            stdout: log(),
            stderr: log(),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let (s, st, nw, sh) = (spec.clone(), self.store.clone(), self.networks.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name(format!("compose {name}"))
            .spawn(move || supervise(&s, &st, &nw, &sh, tx))
            .map_err(|e| Error::io("start a thread for", name, e))?;
        let first = rx.recv().unwrap_or_else(|_| Err(Error::config(format!("service `{name}`: its thread ended"))));
        let held = Held { service: name.to_string(), spec, shared, thread: Mutex::new(Some(thread)) };
        self.services.push(held);
        first.map_err(|e| match e {
            Error::Config(m) => Error::config(format!("service `{name}` did not start: {m}")),
            other => other,
        })
    }
}

impl Drop for RunningProject {
    fn drop(&mut self) {
        let _ = self.end();
    }
}

/// How a service's program ended, in words.
fn ended(status: &ServiceStatus) -> String {
    match (&status.outcome, &status.error) {
        (_, Some(e)) => format!("failed: {e}"),
        (Some(o), None) if o.status == Status::Ok || o.status == Status::RuntimeError => {
            format!("exited ({})", o.exit_code.map_or_else(|| "?".into(), |c| c.to_string()))
        }
        (Some(o), None) => format!("ended: {}", o.status),
        (None, None) => "exited".into(),
    }
}

/// A service's thread: starts its program (saying on `first` whether the first start
/// worked), copies its output, runs its healthcheck, starts it again as its restart policy
/// says, and stops it when asked.
fn supervise(
    spec: &ServiceSpec,
    store: &Store,
    networks: &Networks,
    shared: &Arc<Shared>,
    first: std::sync::mpsc::Sender<Result<()>>,
) {
    let spawn = || spec.builder(store, networks)?.stdout(Output::Pipe).stderr(Output::Pipe).spawn(&spec.argv);
    let mut running = match spawn() {
        Ok(r) => r,
        Err(e) => {
            shared.update(|s| (s.phase, s.error) = (Phase::Exited, Some(e.to_string())));
            let _ = first.send(Err(e));
            return;
        }
    };
    let mut first = Some(first);
    let mut restarts = 0u32;
    loop {
        let copiers = [(running.take_stdout(), true), (running.take_stderr(), false)].map(|(stream, out)| {
            let mut writer = LogWriter(shared.clone(), out);
            std::thread::spawn(move || {
                if let Some(mut stream) = stream {
                    let _ = std::io::copy(&mut stream, &mut writer);
                }
            })
        });
        shared.update(|s| {
            s.phase = Phase::Running;
            s.pid = Some(running.pid());
            s.ports = running.ports().to_vec();
            s.restarts = restarts;
            s.health = spec.healthcheck.as_ref().map(|_| Health::Starting);
        });
        if let Some(tx) = first.take() {
            let _ = tx.send(Ok(()));
        }
        let done = Arc::new(AtomicBool::new(false));
        let health = spec.healthcheck.as_ref().and_then(|check| {
            let network = running.network().ok()?;
            let base = spec.health_builder(store, network, check);
            let (check, done, shared) = (check.clone(), done.clone(), shared.clone());
            Some(std::thread::spawn(move || {
                run_checks(&check, &base, &done, &mut |state, output| {
                    shared.update(|s| (s.health, s.health_output) = (Some(state.status()), output));
                });
            }))
        });
        let mut signalled = false;
        let outcome = loop {
            match running.wait_timeout(Duration::from_millis(50)) {
                Ok(Some(out)) => break Ok(out),
                Ok(None) => {}
                Err(e) => break Err(e),
            }
            if let Some(at) = shared.stop_at() {
                if !signalled {
                    signalled = true;
                    let _ = running.signal(libc::SIGTERM);
                }
                if Instant::now() >= at {
                    running.kill();
                }
            }
        };
        done.store(true, Ordering::Relaxed);
        if let Some(h) = health {
            let _ = h.join();
        }
        for copier in copiers {
            let _ = copier.join();
        }
        let again = spec.restart.restarts_after(&outcome, restarts);
        let stopped = || shared.stop_at().is_some();
        shared.update(|s| {
            s.pid = None;
            s.health = None;
            match outcome {
                Ok(out) => s.outcome = Some(out),
                Err(e) => s.error = Some(e.to_string()),
            }
            s.phase = if again && !stopped() { Phase::Restarting } else { Phase::Exited };
        });
        if !again || stopped() {
            break;
        }
        let until = Instant::now() + super::Restart::backoff(restarts);
        while Instant::now() < until && !stopped() {
            std::thread::sleep(Duration::from_millis(20));
        }
        if stopped() {
            shared.update(|s| s.phase = Phase::Exited);
            break;
        }
        restarts += 1;
        // The ended sandbox goes first: its published ports are free for the next.
        drop(running);
        running = match spawn() {
            Ok(again) => again,
            Err(e) => {
                shared.update(|s| (s.phase, s.error) = (Phase::Exited, Some(e.to_string())));
                break;
            }
        };
    }
}
