//! One service of a Compose file, read from its YAML into [`Service`], with Compose's
//! meaning for each key of the subset and a clear error, naming the key's path, for
//! anything else it cannot honour.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use yaml_serde::{Mapping, Value};

use super::interpolate::Variables;
use crate::error::{Error, Result};
use crate::network::{Protocol, Publish};

/// A service: one sandbox, `<project>-<service>-1`.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
#[non_exhaustive]
pub struct Service {
    /// The image to run (a store reference); with `build`, the name the built image gets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How to build the image with `isolette build`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// The command, replacing the image's `CMD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// The entrypoint, replacing the image's `ENTRYPOINT`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The environment, `env_file`s first and `environment` over them.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Ports published on the host.
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "as_long_ports")]
    pub ports: Vec<Publish>,
    /// Named volumes and bind mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    /// The project's networks the service is on (`default` unless said).
    pub networks: Vec<String>,
    /// The services started before this one, and what each must have reached.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Condition>,
    /// How to tell the service is healthy; `None` for no check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Whether the supervisor restarts the program when it ends.
    pub restart: Restart,
    /// The working directory of the command.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// The user the command runs as (`uid[:gid]` or a name of the image's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The sandbox's hostname (default: the service's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The sandbox's name instead of `<project>-<service>-1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// The memory limit in bytes (`mem_limit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_limit: Option<u64>,
    /// The CPU limit in cores (`cpus`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// The most processes and threads (`pids_limit`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<u64>,
    /// How long `stop` waits after SIGTERM before it kills (default 10 s).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "as_duration")]
    pub stop_grace_period: Option<Duration>,
}

impl Service {
    /// The check that runs: the service's own, else the image's (`image_check`, Docker's
    /// JSON from the image's config), unless the service says `NONE` or `disable`.
    pub fn healthcheck_with(&self, image_check: Option<&serde_json::Value>) -> Option<Healthcheck> {
        match &self.healthcheck {
            Some(h) if h.test == HealthTest::None => None,
            Some(h) => Some(h.clone()),
            None => image_check.and_then(Healthcheck::from_image),
        }
    }
}

/// `build:` of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Build {
    /// The build context, absolute.
    pub context: PathBuf,
    /// The Dockerfile, relative to the context (`Dockerfile` unless said).
    pub dockerfile: String,
    /// `--build-arg`s.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    /// The stage to build (`--target`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// A volume or bind mount of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mount {
    /// What is mounted.
    pub source: MountSource,
    /// Where, in the sandbox.
    pub target: String,
    /// Whether it is read-only.
    pub read_only: bool,
}

/// What a [`Mount`] mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MountSource {
    /// A volume of the project's `volumes:` (its key there).
    Volume(String),
    /// A host path, absolute.
    Bind(PathBuf),
}

/// What a dependency must have reached before its dependent starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    /// Started.
    ServiceStarted,
    /// Started, and its healthcheck passed.
    ServiceHealthy,
    /// Ended with exit status 0.
    ServiceCompletedSuccessfully,
}

/// A service's healthcheck, with Docker's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Healthcheck {
    /// The command: its words (`CMD`), or one line for `/bin/sh -c` (`CMD-SHELL`).
    pub test: HealthTest,
    /// Between checks (30 s).
    #[serde(serialize_with = "as_duration_always")]
    pub interval: Duration,
    /// How long one check may take (30 s).
    #[serde(serialize_with = "as_duration_always")]
    pub timeout: Duration,
    /// Failures in a row that make it unhealthy (3).
    pub retries: u32,
    /// Failures in this time after the start do not count (0 s).
    #[serde(serialize_with = "as_duration_always")]
    pub start_period: Duration,
}

/// A healthcheck's command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HealthTest {
    /// `["CMD", program, args...]`.
    Cmd(Vec<String>),
    /// `["CMD-SHELL", line]` or a plain string: run by `/bin/sh -c`.
    Shell(String),
    /// `["NONE"]` or `disable: true`: no check, not even the image's.
    None,
}

impl Healthcheck {
    /// The image's check (`HEALTHCHECK`, as Docker keeps it in the config: durations in
    /// nanoseconds, 0 or missing for the default), if it has one that runs.
    pub fn from_image(docker: &serde_json::Value) -> Option<Healthcheck> {
        let words: Vec<String> =
            docker.get("Test")?.as_array()?.iter().map(|w| w.as_str().map(String::from)).collect::<Option<_>>()?;
        let mut check = Healthcheck::new(HealthTest::from_words(&words).filter(|t| *t != HealthTest::None)?);
        let nanos = |field: &str| docker.get(field).and_then(serde_json::Value::as_u64).filter(|n| *n > 0);
        check.interval = nanos("Interval").map_or(check.interval, Duration::from_nanos);
        check.timeout = nanos("Timeout").map_or(check.timeout, Duration::from_nanos);
        check.start_period = nanos("StartPeriod").map_or(check.start_period, Duration::from_nanos);
        check.retries = nanos("Retries").map_or(check.retries, |n| u32::try_from(n).unwrap_or(u32::MAX));
        Some(check)
    }

    /// A check running `test`, with Docker's defaults: every 30 s, 30 s each, unhealthy
    /// after 3 failures in a row, no start period.
    pub fn new(test: HealthTest) -> Healthcheck {
        Healthcheck {
            test,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            retries: 3,
            start_period: Duration::ZERO,
        }
    }
}

impl HealthTest {
    /// The command line to run in the sandbox (none for [`HealthTest::None`]).
    pub fn argv(&self) -> Vec<String> {
        match self {
            HealthTest::Cmd(words) => words.clone(),
            HealthTest::Shell(line) => vec!["/bin/sh".into(), "-c".into(), line.clone()],
            HealthTest::None => Vec::new(),
        }
    }

    /// A test as Docker writes one: `["CMD", ...]`, `["CMD-SHELL", line]`, `["NONE"]`.
    fn from_words(words: &[String]) -> Option<HealthTest> {
        match words.split_first() {
            Some((first, _)) if first == "NONE" => Some(HealthTest::None),
            Some((first, rest)) if first == "CMD" && !rest.is_empty() => Some(HealthTest::Cmd(rest.to_vec())),
            Some((first, [line])) if first == "CMD-SHELL" => Some(HealthTest::Shell(line.clone())),
            _ => None,
        }
    }
}

/// A restart policy, carried out by the sandbox's supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restart {
    /// Never (`no`, the default).
    #[default]
    No,
    /// Whenever the program ends, until stopped.
    Always,
    /// When it ends with a status other than 0, at most `N` times when given.
    OnFailure(Option<u32>),
    /// As `Always`, and not after an explicit `stop`.
    UnlessStopped,
}

impl Restart {
    /// `no`, `always`, `on-failure`, `on-failure:N`, `unless-stopped`.
    pub fn parse(text: &str) -> Result<Restart> {
        match text {
            "no" | "\"no\"" => Ok(Restart::No),
            "always" => Ok(Restart::Always),
            "unless-stopped" => Ok(Restart::UnlessStopped),
            "on-failure" => Ok(Restart::OnFailure(None)),
            other => other
                .strip_prefix("on-failure:")
                .and_then(|n| n.parse().ok())
                .map(|n| Restart::OnFailure(Some(n)))
                .ok_or_else(|| {
                    Error::config(format!(
                        "restart `{}`: expected no, always, on-failure[:N] or unless-stopped",
                        other.escape_debug()
                    ))
                }),
        }
    }
}

impl std::str::FromStr for Restart {
    type Err = Error;

    /// As [`Restart::parse`].
    fn from_str(text: &str) -> Result<Restart> {
        Restart::parse(text)
    }
}

impl std::fmt::Display for Restart {
    /// The words [`Restart::parse`] reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Restart::No => f.write_str("no"),
            Restart::Always => f.write_str("always"),
            Restart::OnFailure(None) => f.write_str("on-failure"),
            Restart::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
            Restart::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

impl Restart {
    /// Whether a program that ended with `exit_code` (`None`: killed, or a limit) after
    /// `restarts` restarts is started again, unless it was stopped.
    pub fn restarts(&self, exit_code: Option<i32>, restarts: u32) -> bool {
        match self {
            Restart::No => false,
            Restart::Always | Restart::UnlessStopped => true,
            Restart::OnFailure(max) => exit_code != Some(0) && max.is_none_or(|m| restarts < m),
        }
    }

    /// Whether a program that ended with `outcome` after `restarts` restarts is started
    /// again, unless it was stopped: its exit status counts when it exited (ended `ok` or
    /// `runtime_error`); a limit or a signal counts as a failure, and a setup error ends it.
    pub fn restarts_after(&self, outcome: &Result<crate::Outcome>, restarts: u32) -> bool {
        let Ok(out) = outcome else { return false };
        let exited = out.status == crate::Status::Ok || out.status == crate::Status::RuntimeError;
        self.restarts(out.exit_code.filter(|_| exited), restarts)
    }

    /// How long to wait before restart number `restarts + 1`: Docker's back-off, 100 ms
    /// doubled each time, at most 10 s.
    pub fn backoff(restarts: u32) -> Duration {
        Duration::from_millis(100u64 << restarts.min(7)).min(Duration::from_secs(10))
    }
}

// Compose's own shapes when `config` prints the project.

/// Ports in Compose's long form.
fn as_long_ports<S: serde::Serializer>(ports: &[Publish], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.collect_seq(ports.iter().map(|p| {
        let mut m = BTreeMap::new();
        m.insert("host_ip", p.host_addr.to_string());
        m.insert("published", p.host_port.to_string());
        m.insert("target", p.sandbox_port.to_string());
        m.insert("protocol", p.protocol.to_string());
        m
    }))
}

impl Serialize for Mount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(4))?;
        match &self.source {
            MountSource::Volume(v) => {
                m.serialize_entry("type", "volume")?;
                m.serialize_entry("source", v)?;
            }
            MountSource::Bind(p) => {
                m.serialize_entry("type", "bind")?;
                m.serialize_entry("source", p)?;
            }
        }
        m.serialize_entry("target", &self.target)?;
        m.serialize_entry("read_only", &self.read_only)?;
        m.end()
    }
}

impl Condition {
    /// Compose's word: `service_started`, `service_healthy`,
    /// `service_completed_successfully`.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::ServiceStarted => "service_started",
            Condition::ServiceHealthy => "service_healthy",
            Condition::ServiceCompletedSuccessfully => "service_completed_successfully",
        }
    }

    /// Reads Compose's word ([`Condition::as_str`]).
    pub fn parse(word: &str) -> Result<Condition> {
        [Condition::ServiceStarted, Condition::ServiceHealthy, Condition::ServiceCompletedSuccessfully]
            .into_iter()
            .find(|c| c.as_str() == word)
            .ok_or_else(|| {
                Error::config(format!(
                    "condition `{}`: expected service_started, service_healthy or service_completed_successfully",
                    word.escape_debug()
                ))
            })
    }
}

impl Serialize for Condition {
    /// `{condition: service_healthy}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry("condition", self.as_str())?;
        m.end()
    }
}

impl Serialize for HealthTest {
    /// `["CMD", ...]` or `["CMD-SHELL", line]`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            HealthTest::Cmd(words) => s.collect_seq(std::iter::once("CMD").chain(words.iter().map(String::as_str))),
            HealthTest::Shell(line) => s.collect_seq(["CMD-SHELL", line.as_str()]),
            HealthTest::None => s.collect_seq(["NONE"]),
        }
    }
}

impl Serialize for Restart {
    /// The words [`Restart::parse`] reads.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn as_duration<S: serde::Serializer>(d: &Option<Duration>, s: S) -> std::result::Result<S::Ok, S::Error> {
    match d {
        Some(d) => as_duration_always(d, s),
        None => s.serialize_none(),
    }
}

fn as_duration_always<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&crate::units::format_duration(*d))
}

/// Reads an `env_file` (its path, and where it is named in the file, for errors).
pub(super) type EnvFileReader = dyn Fn(&Path, &str) -> Result<Vec<(String, String)>>;

/// Service keys of Compose's that isolette does not carry out: an error naming the path.
const UNSUPPORTED: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "configs",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpuset",
    "credential_spec",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "env_from",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "init",
    "ipc",
    "isolation",
    "links",
    "logging",
    "mac_address",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "network_mode",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "platform",
    "post_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "read_only",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "userns_mode",
    "uts",
    "volumes_from",
];

/// Service keys of Compose's accepted and without effect here: `expose` (every port of a
/// member is open to the network's others anyway) and `labels`.
const WITHOUT_EFFECT: &[&str] = &["expose", "labels"];

/// Reads service `name` (at `path`, `services.NAME`) from `value`; `dir` is the project's
/// directory, against which relative paths are taken; `env_files` reads an `env_file`.
pub(super) fn read(
    path: &str,
    value: &Value,
    dir: &Path,
    vars: &Variables,
    warnings: &mut Vec<String>,
    env_file: &EnvFileReader,
) -> Result<Service> {
    let map = mapping(path, value)?;
    let mut service = Service::default();
    let mut env_files: Vec<(String, String)> = Vec::new();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (key, v) in map {
        let key = key_str(path, key)?;
        let at = format!("{path}.{key}");
        match key {
            "image" => service.image = Some(string(&at, v)?),
            "build" => service.build = Some(build(&at, v, dir, vars)?),
            "command" => service.command = words(&at, v)?,
            "entrypoint" => service.entrypoint = words(&at, v)?,
            "environment" => env = environment(&at, v, vars)?,
            "env_file" => {
                for (i, file) in env_file_list(&at, v)?.into_iter().enumerate() {
                    let (file, required) = file;
                    let full = dir.join(&file);
                    if !required && !full.exists() {
                        continue;
                    }
                    env_files.extend(env_file(&full, &format!("{at}[{i}]"))?);
                }
            }
            "ports" => {
                for (i, p) in sequence(&at, v)?.iter().enumerate() {
                    service.ports.push(port(&format!("{at}[{i}]"), p)?);
                }
            }
            "volumes" => {
                for (i, m) in sequence(&at, v)?.iter().enumerate() {
                    service.volumes.push(mount(&format!("{at}[{i}]"), m, dir)?);
                }
            }
            "networks" => service.networks = networks(&at, v)?,
            "depends_on" => service.depends_on = depends_on(&at, v)?,
            "healthcheck" => service.healthcheck = healthcheck(&at, v)?,
            "restart" => service.restart = Restart::parse(&string(&at, v)?).map_err(|e| at_path(&at, e))?,
            "working_dir" => service.working_dir = Some(string(&at, v)?),
            "user" => service.user = Some(string(&at, v)?),
            "hostname" => service.hostname = Some(string(&at, v)?),
            "container_name" => service.container_name = Some(string(&at, v)?),
            "mem_limit" => service.mem_limit = Some(size(&at, v)?),
            "cpus" => {
                let text = string(&at, v)?;
                let cpus = text.parse::<f64>().ok().filter(|c| c.is_finite() && *c > 0.0);
                service.cpus = Some(cpus.ok_or_else(|| bad(&at, "a number of cores above 0, like 0.5"))?);
            }
            "pids_limit" => {
                let n = string(&at, v)?.parse::<i64>().map_err(|_| bad(&at, "a whole number"))?;
                // -1 and 0 mean no limit, as in Compose.
                service.pids_limit = u64::try_from(n).ok().filter(|n| *n > 0);
            }
            "stop_grace_period" => service.stop_grace_period = Some(duration(&at, v)?),
            k if WITHOUT_EFFECT.contains(&k) => {}
            k if UNSUPPORTED.contains(&k) => {
                return Err(Error::config(format!(
                    "{at}: isolette compose does not carry out `{k}`; take it out of the file (the subset is in the \
                     README's Compose section)"
                )));
            }
            k if k.starts_with("x-") => {}
            k => warnings.push(format!("{path}: unknown key `{k}`, ignored")),
        }
    }
    env_files.extend(env);
    service.environment = env_files.into_iter().collect();
    if service.image.is_none() && service.build.is_none() {
        return Err(Error::config(format!("{path}: a service needs `image` or `build`")));
    }
    if service.networks.is_empty() {
        service.networks.push("default".into());
    }
    Ok(service)
}

fn bad(path: &str, expected: &str) -> Error {
    Error::config(format!("{path}: expected {expected}"))
}

fn at_path(path: &str, e: Error) -> Error {
    match e {
        Error::Config(m) => Error::config(format!("{path}: {m}")),
        other => other,
    }
}

pub(super) fn mapping<'a>(path: &str, v: &'a Value) -> Result<&'a Mapping> {
    v.as_mapping().ok_or_else(|| bad(path, "a mapping"))
}

fn sequence<'a>(path: &str, v: &'a Value) -> Result<&'a Vec<Value>> {
    v.as_sequence().ok_or_else(|| bad(path, "a list"))
}

pub(super) fn key_str<'a>(path: &str, k: &'a Value) -> Result<&'a str> {
    k.as_str().ok_or_else(|| bad(path, "string keys"))
}

/// A scalar as text: strings as they are, numbers and booleans written out.
pub(super) fn string(path: &str, v: &Value) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(bad(path, "a string")),
    }
}

pub(super) fn boolean(path: &str, v: &Value) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
        _ => Err(bad(path, "true or false")),
    }
}

/// A command: a list of words, or a string split as a POSIX shell splits it.
fn words(path: &str, v: &Value) -> Result<Option<Vec<String>>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => {
            shlex::split(s).map(Some).ok_or_else(|| bad(path, "a command whose quotes are closed (or a list of words)"))
        }
        Value::Sequence(items) => {
            items.iter().enumerate().map(|(i, w)| string(&format!("{path}[{i}]"), w)).collect::<Result<_>>().map(Some)
        }
        _ => Err(bad(path, "a string or a list of words")),
    }
}

/// `environment` as a list (`KEY=VALUE`, or `KEY` for the caller's value) or a map (a
/// `null` value, the caller's value): the caller's values are the project's variables (the
/// environment over `.env`). A variable that is not set is left out.
pub(super) fn environment(path: &str, v: &Value, vars: &Variables) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let from_caller = |k: &str| vars.values.get(k).cloned();
    match v {
        Value::Null => {}
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                let entry = string(&format!("{path}[{i}]"), item)?;
                match entry.split_once('=') {
                    Some((k, val)) => {
                        out.insert(k.to_string(), val.to_string());
                    }
                    None => {
                        if let Some(val) = from_caller(&entry) {
                            out.insert(entry, val);
                        }
                    }
                }
            }
        }
        Value::Mapping(map) => {
            for (k, val) in map {
                let k = key_str(path, k)?;
                match val {
                    Value::Null => {
                        if let Some(val) = from_caller(k) {
                            out.insert(k.to_string(), val);
                        }
                    }
                    other => {
                        out.insert(k.to_string(), string(&format!("{path}.{k}"), other)?);
                    }
                }
            }
        }
        _ => return Err(bad(path, "a list of KEY=VALUE or a mapping")),
    }
    for k in out.keys() {
        if k.is_empty() || k.contains('\0') {
            return Err(bad(path, "variable names that are not empty"));
        }
    }
    Ok(out)
}

/// `env_file`: a path, a list of paths, or a list of `{path, required}`.
fn env_file_list(path: &str, v: &Value) -> Result<Vec<(String, bool)>> {
    let one = |at: &str, v: &Value| -> Result<(String, bool)> {
        match v {
            Value::Mapping(m) => {
                let file = m.get("path").ok_or_else(|| bad(at, "a `path`"))?;
                let required = m.get("required").map(|r| boolean(&format!("{at}.required"), r)).transpose()?;
                Ok((string(&format!("{at}.path"), file)?, required.unwrap_or(true)))
            }
            other => Ok((string(at, other)?, true)),
        }
    };
    match v {
        Value::Sequence(items) => items.iter().enumerate().map(|(i, f)| one(&format!("{path}[{i}]"), f)).collect(),
        other => Ok(vec![one(path, other)?]),
    }
}

fn build(path: &str, v: &Value, dir: &Path, vars: &Variables) -> Result<Build> {
    let mut b =
        Build { context: dir.to_path_buf(), dockerfile: "Dockerfile".into(), args: BTreeMap::new(), target: None };
    match v {
        Value::String(context) => b.context = dir.join(context),
        Value::Mapping(map) => {
            for (k, val) in map {
                let k = key_str(path, k)?;
                let at = format!("{path}.{k}");
                match k {
                    "context" => b.context = dir.join(string(&at, val)?),
                    "dockerfile" => b.dockerfile = string(&at, val)?,
                    "args" => b.args = environment(&at, val, vars)?,
                    "target" => b.target = Some(string(&at, val)?),
                    k if k.starts_with("x-") => {}
                    k => {
                        return Err(Error::config(format!(
                            "{at}: isolette compose builds with context, dockerfile, args and target only; take `{k}` \
                             out"
                        )));
                    }
                }
            }
        }
        _ => return Err(bad(path, "a context path or a mapping")),
    }
    b.context = normal(&b.context);
    Ok(b)
}

/// A path with `.` and `..` parts resolved in the text (not on the disk).
pub(super) fn normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A port: `"8000:80"`, `"127.0.0.1:8000:80"`, `"80"`, `"53:53/udp"`, `80`, or the long
/// form `{target, published, host_ip, protocol}`. As in Compose, a port without an address
/// listens on every IPv4 address of the host.
fn port(path: &str, v: &Value) -> Result<Publish> {
    let all = std::net::IpAddr::from([0, 0, 0, 0]);
    let num = |at: &str, v: &Value| -> Result<u16> {
        string(at, v)?.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad(at, "a port number, 1 to 65535"))
    };
    match v {
        Value::Mapping(m) => {
            let target = num(&format!("{path}.target"), m.get("target").ok_or_else(|| bad(path, "a `target`"))?)?;
            let published = match m.get("published") {
                Some(p) => num(&format!("{path}.published"), p)?,
                None => 0,
            };
            let host_ip = match m.get("host_ip") {
                Some(ip) => string(&format!("{path}.host_ip"), ip)?
                    .parse()
                    .map_err(|_| bad(&format!("{path}.host_ip"), "an IP address"))?,
                None => all,
            };
            let protocol = match m.get("protocol").map(|p| string(&format!("{path}.protocol"), p)).transpose()? {
                None => Protocol::Tcp,
                Some(p) if p == "tcp" => Protocol::Tcp,
                Some(p) if p == "udp" => Protocol::Udp,
                Some(_) => return Err(bad(&format!("{path}.protocol"), "tcp or udp")),
            };
            for k in m.keys() {
                let k = key_str(path, k)?;
                if !["target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"].contains(&k) {
                    return Err(Error::config(format!("{path}: unknown key `{k}` of a port")));
                }
            }
            Ok(Publish { protocol, host_addr: host_ip, host_port: published, sandbox_port: target })
        }
        other => {
            let text = string(path, other)?;
            if text.contains('-') {
                return Err(Error::config(format!(
                    "{path}: `{text}`: port ranges are not carried out; publish each port on a line of its own"
                )));
            }
            let (ports, proto) = text.rsplit_once('/').unwrap_or((&text, "tcp"));
            let colons = ports.matches(':').count();
            // Compose's default address is every one of the host's (isolette's own `-p`
            // takes 127.0.0.1 unless told), so it is written out here.
            let spec = match colons {
                0 => format!("0.0.0.0:0:{ports}/{proto}"),
                1 => format!("0.0.0.0:{ports}/{proto}"),
                _ => format!("{ports}/{proto}"),
            };
            Publish::parse(&spec).map_err(|e| at_path(path, e))
        }
    }
}

/// A mount: `NAME:/path[:ro|rw]`, `./dir:/path[:ro]`, `/abs:/path`, `~/dir:/path`, or the
/// long form `{type: volume|bind, source, target, read_only}`.
fn mount(path: &str, v: &Value, dir: &Path) -> Result<Mount> {
    let source = |s: &str| -> MountSource {
        if s.starts_with('/') {
            MountSource::Bind(normal(Path::new(s)))
        } else if s == "." || s == ".." || s.starts_with("./") || s.starts_with("../") {
            MountSource::Bind(normal(&dir.join(s)))
        } else if let Some(home) = s.strip_prefix("~/").or((s == "~").then_some("")) {
            let h = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
            MountSource::Bind(normal(&h.join(home)))
        } else {
            MountSource::Volume(s.to_string())
        }
    };
    let target_ok = |t: &str| -> Result<String> {
        if t.starts_with('/') { Ok(t.to_string()) } else { Err(bad(path, "an absolute target path in the sandbox")) }
    };
    match v {
        Value::Mapping(m) => {
            let at = |k: &str| format!("{path}.{k}");
            let kind = m.get("type").map(|t| string(&at("type"), t)).transpose()?.unwrap_or_else(|| "volume".into());
            let src = m.get("source").map(|s| string(&at("source"), s)).transpose()?;
            let target = target_ok(&string(&at("target"), m.get("target").ok_or_else(|| bad(path, "a `target`"))?)?)?;
            let read_only = m.get("read_only").map(|r| boolean(&at("read_only"), r)).transpose()?.unwrap_or(false);
            let source = match (kind.as_str(), src) {
                ("volume", Some(s)) if !s.contains('/') => MountSource::Volume(s),
                ("bind", Some(s)) => match source(&s) {
                    MountSource::Volume(rel) => MountSource::Bind(normal(&dir.join(rel))),
                    bind => bind,
                },
                ("volume" | "bind", _) => {
                    return Err(Error::config(format!(
                        "{path}: a {kind} mount needs a `source` (anonymous volumes are not carried out: name one)"
                    )));
                }
                (other, _) => {
                    return Err(Error::config(format!(
                        "{path}: mounts of type `{other}` are not carried out; use volume or bind"
                    )));
                }
            };
            Ok(Mount { source, target, read_only })
        }
        other => {
            let text = string(path, other)?;
            let parts: Vec<&str> = text.split(':').collect();
            let (src, target, mode) = match parts[..] {
                [_] => {
                    return Err(Error::config(format!(
                        "{path}: `{text}`: anonymous volumes are not carried out; name one (`data:{text}`)"
                    )));
                }
                [s, t] => (s, t, ""),
                [s, t, m] => (s, t, m),
                _ => return Err(bad(path, "SOURCE:TARGET[:ro|rw]")),
            };
            let read_only = match mode {
                "" | "rw" => false,
                "ro" => true,
                other if other.split(',').all(|o| ["ro", "rw", "z", "Z"].contains(&o)) => {
                    other.split(',').any(|o| o == "ro")
                }
                _ => return Err(bad(path, "SOURCE:TARGET[:ro|rw]")),
            };
            Ok(Mount { source: source(src), target: target_ok(target)?, read_only })
        }
    }
}

fn networks(path: &str, v: &Value) -> Result<Vec<String>> {
    match v {
        Value::Sequence(items) => items.iter().enumerate().map(|(i, n)| string(&format!("{path}[{i}]"), n)).collect(),
        Value::Mapping(m) => {
            let mut out = Vec::new();
            for (k, val) in m {
                let k = key_str(path, k)?;
                if let Value::Mapping(opts) = val {
                    for o in opts.keys() {
                        let o = key_str(path, o)?;
                        if o != "aliases" {
                            return Err(Error::config(format!(
                                "{path}.{k}.{o}: isolette compose does not carry out `{o}` of a service's network"
                            )));
                        }
                    }
                    if opts.get("aliases").is_some_and(|a| a.as_sequence().is_some_and(|s| !s.is_empty())) {
                        return Err(Error::config(format!(
                            "{path}.{k}.aliases: network aliases are not carried out; a service is reached by its name"
                        )));
                    }
                }
                out.push(k.to_string());
            }
            Ok(out)
        }
        _ => Err(bad(path, "a list or a mapping of networks")),
    }
}

fn depends_on(path: &str, v: &Value) -> Result<BTreeMap<String, Condition>> {
    let mut out = BTreeMap::new();
    match v {
        Value::Sequence(items) => {
            for (i, s) in items.iter().enumerate() {
                out.insert(string(&format!("{path}[{i}]"), s)?, Condition::ServiceStarted);
            }
        }
        Value::Mapping(m) => {
            for (k, val) in m {
                let k = key_str(path, k)?;
                let at = format!("{path}.{k}");
                let opts = match val {
                    Value::Null => None,
                    other => Some(mapping(&at, other)?),
                };
                let condition = match opts.and_then(|o| o.get("condition")) {
                    None => Condition::ServiceStarted,
                    Some(c) => Condition::parse(&string(&format!("{at}.condition"), c)?).map_err(|e| match e {
                        Error::Config(m) => Error::config(format!("{at}.{m}")),
                        other => other,
                    })?,
                };
                if let Some(o) = opts {
                    for key in o.keys() {
                        let key = key_str(&at, key)?;
                        if !["condition", "required", "restart"].contains(&key) {
                            return Err(Error::config(format!("{at}: unknown key `{key}` of a dependency")));
                        }
                    }
                }
                out.insert(k.to_string(), condition);
            }
        }
        _ => return Err(bad(path, "a list or a mapping of services")),
    }
    Ok(out)
}

/// A duration as Compose writes them: `1m30s`, `10s`, `500ms`, `1h`, or seconds.
pub(super) fn duration(path: &str, v: &Value) -> Result<Duration> {
    let text = string(path, v)?;
    let fail = || bad(path, "a duration like 30s, 1m30s or 500ms");
    if text.is_empty() {
        return Err(fail());
    }
    let mut total = Duration::ZERO;
    let mut rest = text.as_str();
    while !rest.is_empty() {
        // One number and its unit at a time.
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let unit_end = rest[digits..].find(|c: char| c.is_ascii_digit() || c == '.').map_or(rest.len(), |u| digits + u);
        if digits == 0 {
            return Err(fail());
        }
        total += crate::units::parse_duration(&rest[..unit_end]).map_err(|_| fail())?;
        rest = &rest[unit_end..];
    }
    Ok(total)
}

fn size(path: &str, v: &Value) -> Result<u64> {
    crate::units::parse_size(&string(path, v)?).map_err(|e| at_path(path, e))
}

fn healthcheck(path: &str, v: &Value) -> Result<Option<Healthcheck>> {
    let m = mapping(path, v)?;
    let mut check = Healthcheck::new(HealthTest::Cmd(Vec::new()));
    let mut has_test = false;
    for (k, val) in m {
        let k = key_str(path, k)?;
        let at = format!("{path}.{k}");
        match k {
            "disable" if boolean(&at, val)? => return Ok(Some(Healthcheck::new(HealthTest::None))),
            "disable" => {}
            "test" => {
                has_test = true;
                check.test = match val {
                    Value::String(line) => HealthTest::Shell(line.clone()),
                    Value::Sequence(items) => {
                        let words: Vec<String> = items
                            .iter()
                            .enumerate()
                            .map(|(i, w)| string(&format!("{at}[{i}]"), w))
                            .collect::<Result<_>>()?;
                        match HealthTest::from_words(&words) {
                            Some(HealthTest::None) => return Ok(Some(Healthcheck::new(HealthTest::None))),
                            Some(test) => test,
                            None => {
                                return Err(bad(&at, r#"["CMD", program, args...], ["CMD-SHELL", line] or ["NONE"]"#));
                            }
                        }
                    }
                    _ => return Err(bad(&at, "a command line or a list")),
                }
            }
            "interval" => check.interval = duration(&at, val)?,
            "timeout" => check.timeout = duration(&at, val)?,
            "start_period" => check.start_period = duration(&at, val)?,
            "start_interval" => {}
            "retries" => {
                check.retries = string(&at, val)?.parse().map_err(|_| bad(&at, "a whole number"))?;
            }
            k => return Err(Error::config(format!("{path}: unknown key `{k}` of a healthcheck"))),
        }
    }
    if !has_test {
        return Err(Error::config(format!(
            "{path}: a healthcheck needs a `test` (an image's HEALTHCHECK is taken when the service gives none)"
        )));
    }
    if check.interval.is_zero() || check.timeout.is_zero() {
        return Err(bad(path, "an interval and a timeout above 0"));
    }
    Ok(Some(check))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(yaml: &str) -> std::result::Result<(Service, Vec<String>), String> {
        let v: Value = yaml_serde::from_str(yaml).unwrap();
        let mut warnings = Vec::new();
        let no_files = |p: &Path, _: &str| -> Result<Vec<(String, String)>> {
            Ok(vec![("FROM_FILE".into(), p.file_name().unwrap().to_string_lossy().into_owned())])
        };
        let vars = Variables { values: [("FROM_CALLER".to_string(), "c".to_string())].into() };
        read("services.web", &v, Path::new("/proj"), &vars, &mut warnings, &no_files)
            .map(|s| (s, warnings))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_subset_reads_with_composes_meaning() {
        let (s, warnings) = svc(r#"
image: web:1
command: python3 -m http.server "8000"
entrypoint: ["/bin/sh", "-c"]
environment: [A=1, "B=x=y", FROM_CALLER, NOT_SET]
env_file: .env.web
ports: ["127.0.0.1:18080:8000", "9000:90", "53/udp", 7000, {target: 80, published: 8080, host_ip: 127.0.0.1}]
volumes: ["data:/var/lib/x", "./src:/app:ro", "/etc/ssl:/ssl:ro", {type: bind, source: ./static, target: /static}]
networks: [front, back]
depends_on: {db: {condition: service_healthy}, init: {condition: service_completed_successfully}, cache: null}
restart: on-failure:3
working_dir: /app
hostname: www
mem_limit: 256m
cpus: "0.5"
pids_limit: 64
stop_grace_period: 1m30s
expose: ["8000"]
x-note: hello
mystery: 1
"#)
        .unwrap();
        assert_eq!(s.image.as_deref(), Some("web:1"));
        assert_eq!(s.command.unwrap(), ["python3", "-m", "http.server", "8000"]);
        assert_eq!(s.entrypoint.unwrap(), ["/bin/sh", "-c"]);
        let env: Vec<(&str, &str)> = s.environment.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(env, [("A", "1"), ("B", "x=y"), ("FROM_CALLER", "c"), ("FROM_FILE", ".env.web")]);
        let ports: Vec<String> = s.ports.iter().map(ToString::to_string).collect();
        assert_eq!(
            ports,
            [
                "127.0.0.1:18080->8000/tcp",
                "0.0.0.0:9000->90/tcp",
                "0.0.0.0:0->53/udp",
                "0.0.0.0:0->7000/tcp",
                "127.0.0.1:8080->80/tcp"
            ]
        );
        assert_eq!(s.volumes[0].source, MountSource::Volume("data".into()));
        assert_eq!(
            (s.volumes[1].source.clone(), s.volumes[1].read_only),
            (MountSource::Bind("/proj/src".into()), true)
        );
        assert_eq!(s.volumes[2].source, MountSource::Bind("/etc/ssl".into()));
        assert_eq!(s.volumes[3].source, MountSource::Bind("/proj/static".into()));
        assert_eq!(s.networks, ["front", "back"]);
        assert_eq!(s.depends_on["db"], Condition::ServiceHealthy);
        assert_eq!(s.depends_on["init"], Condition::ServiceCompletedSuccessfully);
        assert_eq!(s.depends_on["cache"], Condition::ServiceStarted);
        assert_eq!(s.restart, Restart::OnFailure(Some(3)));
        assert!(s.restart.restarts(Some(1), 2) && !s.restart.restarts(Some(1), 3) && !s.restart.restarts(Some(0), 0));
        assert!(s.restart.restarts(None, 0), "a program killed by a limit failed");
        for word in ["no", "always", "on-failure", "on-failure:3", "unless-stopped"] {
            assert_eq!(word.parse::<Restart>().unwrap().to_string(), word);
        }
        assert_eq!((s.mem_limit, s.cpus, s.pids_limit), (Some(256 << 20), Some(0.5), Some(64)));
        assert_eq!(s.stop_grace_period, Some(Duration::from_secs(90)));
        assert_eq!(warnings, ["services.web: unknown key `mystery`, ignored"]);
    }

    #[test]
    fn healthchecks_take_dockers_defaults() {
        let (s, _) = svc("image: r\nhealthcheck: {test: [CMD, redis-cli, ping], interval: 1s}").unwrap();
        let h = s.healthcheck.unwrap();
        assert_eq!(h.test.argv(), ["redis-cli", "ping"]);
        assert_eq!(
            (h.interval, h.timeout, h.retries, h.start_period),
            (Duration::from_secs(1), Duration::from_secs(30), 3, Duration::ZERO)
        );
        let (s, _) = svc("image: r\nhealthcheck: {test: 'curl -f localhost || exit 1'}").unwrap();
        assert_eq!(s.healthcheck.unwrap().test.argv(), ["/bin/sh", "-c", "curl -f localhost || exit 1"]);
        let (s, _) = svc("image: r\nhealthcheck: {test: [CMD-SHELL, 'exit 0'], retries: 5}").unwrap();
        assert_eq!(s.healthcheck.as_ref().unwrap().retries, 5);
        let image =
            serde_json::json!({"Test": ["CMD-SHELL", "redis-cli ping"], "Interval": 500_000_000u64, "Retries": 0});
        for off in ["image: r\nhealthcheck: {test: [NONE]}", "image: r\nhealthcheck: {disable: true}"] {
            let s = svc(off).unwrap().0;
            assert_eq!(s.healthcheck.as_ref().unwrap().test, HealthTest::None);
            assert!(s.healthcheck_with(Some(&image)).is_none(), "{off}: not even the image's");
        }
        // The image's, with Docker's defaults where it gives 0 or nothing.
        let from_image = svc("image: r").unwrap().0.healthcheck_with(Some(&image)).unwrap();
        assert_eq!(from_image.test.argv(), ["/bin/sh", "-c", "redis-cli ping"]);
        assert_eq!((from_image.interval, from_image.retries), (Duration::from_millis(500), 3));
        assert!(Healthcheck::from_image(&serde_json::json!({"Test": ["NONE"]})).is_none());
        assert!(Healthcheck::from_image(&serde_json::json!({"Test": "x"})).is_none());
    }

    #[test]
    fn what_cannot_be_honoured_is_an_error_naming_its_path() {
        for (yaml, want) in [
            ("image: x\ndeploy: {replicas: 2}", "services.web.deploy"),
            ("image: x\nprivileged: true", "services.web.privileged"),
            ("command: x", "needs `image` or `build`"),
            ("image: x\nports: ['8000-8001:80-81']", "services.web.ports[0]: `8000-8001:80-81`: port ranges"),
            ("image: x\nports: ['99999:80']", "services.web.ports[0]"),
            ("image: x\nvolumes: ['/data']", "services.web.volumes[0]: `/data`: anonymous volumes"),
            ("image: x\nvolumes: ['data:relative']", "services.web.volumes[0]: expected an absolute target"),
            ("image: x\nrestart: sometimes", "services.web.restart: restart `sometimes`"),
            ("image: x\ndepends_on: {db: {condition: service_ready}}", "services.web.depends_on.db.condition"),
            ("image: x\nhealthcheck: {test: [CMD]}", "services.web.healthcheck.test"),
            ("image: x\nhealthcheck: {interval: 1s}", "needs a `test`"),
            ("image: x\nhealthcheck: {test: x, interval: soon}", "services.web.healthcheck.interval"),
            ("image: x\ncommand: 'echo \"open'", "services.web.command"),
            ("image: x\nbuild: {context: ., ssh: default}", "services.web.build.ssh"),
            ("image: x\nnetworks: {front: {aliases: [www]}}", "services.web.networks.front.aliases"),
            ("image: x\ncpus: lots", "services.web.cpus"),
            ("- image: x", "services.web: expected a mapping"),
        ] {
            let e = svc(yaml).unwrap_err();
            assert!(e.contains(want), "{yaml}: {e}");
        }
    }

    #[test]
    fn compose_durations() {
        let d = |s: &str| duration("x", &Value::String(s.into())).map_err(|e| e.to_string());
        assert_eq!(d("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(d("1h2m3.5s").unwrap(), Duration::from_millis(3_723_500));
        assert_eq!(d("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(d("10").unwrap(), Duration::from_secs(10));
        for bad in ["", "s", "1x", "m1"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }
}
