//! Compose projects: the model of a Compose file, loaded, checked and planned as Docker
//! Compose v2 does it, for `isolette compose` and the bindings.
//!
//! [`Project::load`] finds the files (`compose.yaml`, `compose.yml`, `docker-compose.yaml`,
//! `docker-compose.yml`, in the working directory or above; `-f` files instead, merged in
//! order), reads the project's `.env`, substitutes variables (`interpolate.rs`), merges,
//! reads each service (`service.rs`), and checks what refers to what: networks, volumes,
//! dependencies (no cycle). Names are Compose v2's: sandboxes `<project>-<service>-1`,
//! networks `<project>_<name>`, volumes `<project>_<name>`. Each service has a config hash,
//! as Compose keeps one per container, so that `up` recreates only what changed.
//!
//! The subset is what an app and its database need; a key of Compose's outside it is an
//! error naming its path (`services.web.deploy`), and a key Compose does not know either is
//! a warning.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use yaml_serde::{Mapping, Value};

use crate::error::{Error, Result};

mod health;
mod interpolate;
mod live;
mod service;
mod up;

pub use health::{Health, HealthState, check_once, run_checks};
pub use live::{Phase, RunningProject, ServiceStatus, UpOptions};
pub use service::{Build, Condition, HealthTest, Healthcheck, Mount, MountSource, Restart, Service};
pub use up::{ServiceImage, ServiceSpec, SpecMount};

use interpolate::Variables;

/// The labels Compose keeps on each container, kept on each sandbox: its project, its
/// service, and the hash of what it was made from ([`Project::config_hash`]).
pub const LABEL_PROJECT: &str = "com.docker.compose.project";
/// See [`LABEL_PROJECT`].
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
/// See [`LABEL_PROJECT`].
pub const LABEL_CONFIG_HASH: &str = "com.docker.compose.config-hash";

/// The most processes a service's sandbox may have unless `pids_limit` says (a server's
/// threads, not a judge's one program).
pub const SERVICE_PIDS: u64 = 4096;
/// The most open files a service's sandbox may have, within what its caller may give.
pub const SERVICE_NOFILE: u64 = 65536;

/// The file names looked for, in order, as Compose looks for them.
pub const FILE_NAMES: [&str; 4] = ["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

/// How to find and read a project.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LoadOptions {
    /// The Compose files, merged in order (`-f`); found from `working_dir` when empty.
    pub files: Vec<PathBuf>,
    /// The project's name (`-p`); else `COMPOSE_PROJECT_NAME`, the file's `name:`, the
    /// directory's name.
    pub project_name: Option<String>,
    /// Where to look for the files (the current directory when `None`).
    pub working_dir: Option<PathBuf>,
    /// The variables, instead of this process's environment.
    pub environment: Option<BTreeMap<String, String>>,
}

impl LoadOptions {
    /// Files found from the current directory, this process's environment.
    pub fn new() -> LoadOptions {
        LoadOptions::default()
    }

    /// Adds a Compose file (`-f`).
    pub fn file(mut self, file: impl Into<PathBuf>) -> Self {
        self.files.push(file.into());
        self
    }

    /// Names the project (`-p`).
    pub fn project_name(mut self, name: impl Into<String>) -> Self {
        self.project_name = Some(name.into());
        self
    }

    /// Looks for the files from `dir`.
    pub fn working_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.working_dir = Some(dir.into());
        self
    }

    /// Takes the variables from `vars` instead of this process's environment.
    pub fn environment(mut self, vars: BTreeMap<String, String>) -> Self {
        self.environment = Some(vars);
        self
    }
}

/// A project network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct NetworkDef {
    /// Its name on the host: `<project>_<key>`, or `name:`, or the external network's.
    pub name: String,
    /// Made elsewhere, and never made or removed by the project.
    pub external: bool,
    /// Its members reach only each other: no outbound access, no published ports.
    pub internal: bool,
}

/// A project volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct VolumeDef {
    /// Its name in the store: `<project>_<key>`, or `name:`, or the external volume's.
    pub name: String,
    /// Made elsewhere, and never made or removed by the project.
    pub external: bool,
}

/// A loaded, checked Compose project.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Project {
    /// The project's name.
    pub name: String,
    /// Its directory: relative paths of the files are taken from here.
    #[serde(skip)]
    pub dir: PathBuf,
    /// The files it was read from.
    #[serde(skip)]
    pub files: Vec<PathBuf>,
    /// Its services, by name.
    pub services: BTreeMap<String, Service>,
    /// Its networks, by the key the services use.
    pub networks: BTreeMap<String, NetworkDef>,
    /// Its volumes, by the key the services use.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, VolumeDef>,
    /// What was read but not carried out (unknown keys, unset variables, an obsolete
    /// `version`), for the caller to show.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl Project {
    /// Finds, reads and checks the project `options` name.
    pub fn load(options: &LoadOptions) -> Result<Project> {
        let cwd = match &options.working_dir {
            Some(d) => d.clone(),
            None => std::env::current_dir().map_err(|e| Error::io("find", "the current directory", e))?,
        };
        let files = if options.files.is_empty() {
            vec![find(&cwd)?]
        } else {
            options.files.iter().map(|f| service::normal(&cwd.join(f))).collect()
        };
        let mut texts = Vec::with_capacity(files.len());
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::config(format!("{}: no such Compose file", file.display())),
                _ => Error::io("read", &file, e),
            })?;
            texts.push((file, text));
        }
        Project::from_texts(texts, options)
    }

    /// The project in `text`, read as if from `dir/compose.yaml` (its `.env` and relative
    /// paths are `dir`'s).
    pub fn from_yaml(text: &str, dir: &Path, options: &LoadOptions) -> Result<Project> {
        Project::from_texts(vec![(dir.join("compose.yaml"), text.to_string())], options)
    }

    /// The project of `texts` (each a file and what it holds), merged in order.
    fn from_texts(texts: Vec<(PathBuf, String)>, options: &LoadOptions) -> Result<Project> {
        let first = texts.first().map(|(f, _)| f.clone()).unwrap_or_default();
        let dir = first.parent().map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        let vars = variables(&dir, options.environment.as_ref())?;
        let mut warnings = Vec::new();
        let mut unset = Vec::new();
        let mut merged = Value::Mapping(Mapping::new());
        for (file, text) in &texts {
            let mut value = parse(file, text)?;
            substitute(&mut value, &vars, "", &mut unset)?;
            merge(&mut merged, value, "");
        }
        let files = texts.into_iter().map(|(f, _)| f).collect();
        for name in unset {
            warnings.push(format!("the \"{name}\" variable is not set; it is blank"));
        }
        let top = service::mapping("the file", &merged)?.clone();
        let name = project_name(options.project_name.as_deref(), &vars, top.get("name"), &dir)?;
        let mut project = Project {
            name,
            dir: dir.clone(),
            files,
            services: BTreeMap::new(),
            networks: BTreeMap::new(),
            volumes: BTreeMap::new(),
            warnings,
        };
        let env_file = |path: &Path, at: &str| read_env_file(path, at);
        for (key, value) in &top {
            let key = service::key_str("the file", key)?;
            match key {
                "name" => {}
                "version" => {
                    project.warnings.push("`version` is obsolete and ignored, as Compose v2 ignores it".into());
                }
                "services" => {
                    for (name, s) in service::mapping("services", value)? {
                        let name = service::key_str("services", name)?;
                        check_service_name(name)?;
                        let path = format!("services.{name}");
                        let s = service::read(&path, s, &dir, &vars, &mut project.warnings, &env_file)?;
                        project.services.insert(name.to_string(), s);
                    }
                }
                "networks" => project.networks = networks(&project.name, value)?,
                "volumes" => project.volumes = volumes(&project.name, value)?,
                k if k.starts_with("x-") => {}
                "configs" | "secrets" | "include" | "models" => {
                    return Err(Error::config(format!(
                        "{key}: isolette compose does not carry out top-level `{key}`; take it out of the file"
                    )));
                }
                k => project.warnings.push(format!("unknown top-level key `{k}`, ignored")),
            }
        }
        if project.services.is_empty() {
            return Err(Error::config("services: a Compose project needs at least one service"));
        }
        project.networks.entry("default".into()).or_insert_with(|| NetworkDef {
            name: format!("{}_default", project.name),
            external: false,
            internal: false,
        });
        project.check()?;
        // Only the networks some service is on are made.
        let used: Vec<String> = project.services.values().flat_map(|s| s.networks.clone()).collect();
        project.networks.retain(|k, _| used.contains(k));
        Ok(project)
    }

    /// Checks what refers to what: networks, volumes, dependencies, and no cycle. Done at
    /// load, and again before a project is brought up (its fields are public: a caller may
    /// have changed them since).
    pub(crate) fn check(&self) -> Result<()> {
        for (name, s) in &self.services {
            if s.networks.is_empty() {
                return Err(Error::config(format!("services.{name}.networks: a service needs a network")));
            }
            if s.networks.len() > 1 {
                return Err(Error::config(format!(
                    "services.{name}.networks: a sandbox is on one network; put the service on one of {}",
                    s.networks.join(", ")
                )));
            }
            for n in &s.networks {
                if !self.networks.contains_key(n) {
                    return Err(Error::config(format!(
                        "services.{name}.networks: network `{n}` is not in the file's top-level `networks`"
                    )));
                }
            }
            for m in &s.volumes {
                if let MountSource::Volume(v) = &m.source
                    && !self.volumes.contains_key(v)
                {
                    return Err(Error::config(format!(
                        "services.{name}.volumes: volume `{v}` is not in the file's top-level `volumes`"
                    )));
                }
            }
            for d in s.depends_on.keys() {
                if !self.services.contains_key(d) {
                    return Err(Error::config(format!(
                        "services.{name}.depends_on: there is no service `{d}` in the project"
                    )));
                }
            }
            let ports: Vec<_> = s.ports.iter().filter(|p| p.host_port != 0).collect();
            for (i, p) in ports.iter().enumerate() {
                if ports[..i].iter().any(|q| q.host_port == p.host_port && q.protocol == p.protocol) {
                    return Err(Error::config(format!("services.{name}.ports: {p} is published twice")));
                }
            }
            if s.hostname.is_none() {
                crate::network::check_member(name).map_err(|_| {
                    Error::config(format!(
                        "services.{name}: a service is reached by its name on the project's network, so the name \
                         takes letters, digits and `-` only; rename it, or give it a `hostname`"
                    ))
                })?;
            }
        }
        self.order().map(|_| ())
    }

    /// The services in an order that starts each after those it depends on (by name
    /// where the order is free).
    pub fn order(&self) -> Result<Vec<String>> {
        let mut done: Vec<String> = Vec::new();
        let mut path: Vec<String> = Vec::new();
        fn visit(p: &Project, name: &str, done: &mut Vec<String>, path: &mut Vec<String>) -> Result<()> {
            if done.iter().any(|d| d == name) {
                return Ok(());
            }
            if let Some(at) = path.iter().position(|n| n == name) {
                let mut cycle = path[at..].to_vec();
                cycle.push(name.to_string());
                return Err(Error::config(format!("depends_on: a dependency cycle: {}", cycle.join(" -> "))));
            }
            path.push(name.to_string());
            for dep in p.services[name].depends_on.keys() {
                visit(p, dep, done, path)?;
            }
            path.pop();
            done.push(name.to_string());
            Ok(())
        }
        for name in self.services.keys() {
            visit(self, name, &mut done, &mut path)?;
        }
        Ok(done)
    }

    /// The sandbox of service `service`: `container_name`, or `<project>-<service>-1`.
    pub fn sandbox_name(&self, service: &str) -> String {
        match self.services.get(service).and_then(|s| s.container_name.clone()) {
            Some(name) => name,
            None => format!("{}-{service}-1", self.name),
        }
    }

    /// A hash of service `service`'s configuration and of its image (`image_id`): a
    /// sandbox made with another hash is out of date.
    pub fn config_hash(&self, service: &str, image_id: &str) -> String {
        use sha2::Digest;
        let mut json = serde_json::to_vec(&self.services.get(service)).unwrap_or_default();
        json.push(b'\n');
        json.extend_from_slice(image_id.as_bytes());
        hex::encode(sha2::Sha256::digest(&json))
    }

    /// The store name of service `service`'s image: its `image`, else `<project>-<service>`
    /// (Compose v2's name for one it builds).
    pub fn image_name(&self, service: &str) -> String {
        self.services.get(service).and_then(|s| s.image.clone()).unwrap_or_else(|| format!("{}-{service}", self.name))
    }

    /// The project as Compose's `config` prints it: YAML, variables substituted, defaults
    /// filled in.
    pub fn to_yaml(&self) -> String {
        yaml_serde::to_string(self).unwrap_or_default()
    }
}

/// The first of [`FILE_NAMES`] in `dir` or the nearest directory above that has one.
fn find(dir: &Path) -> Result<PathBuf> {
    for d in dir.ancestors() {
        for name in FILE_NAMES {
            let f = d.join(name);
            if f.is_file() {
                return Ok(f);
            }
        }
    }
    Err(Error::config(format!(
        "no Compose file in {} or above it (looked for {}); give one with -f",
        dir.display(),
        FILE_NAMES.join(", ")
    )))
}

/// The YAML of `file`, with `<<` merge keys applied; a syntax error names its line and
/// column.
fn parse(file: &Path, text: &str) -> Result<Value> {
    let located = |e: yaml_serde::Error| {
        let at = e.location().map(|l| format!(" line {} column {}:", l.line(), l.column())).unwrap_or_default();
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or(&message).to_string();
        Error::config(format!("{}:{at} {message}", file.display()))
    };
    let mut value: Value = yaml_serde::from_str(text).map_err(located)?;
    value.apply_merge().map_err(located)?;
    if !matches!(value, Value::Mapping(_)) {
        return Err(Error::config(format!("{}: a Compose file is a mapping (services: ...)", file.display())));
    }
    Ok(value)
}

/// Substitutes variables in every string value (not in keys) of `value`.
fn substitute(value: &mut Value, vars: &Variables, path: &str, unset: &mut Vec<String>) -> Result<()> {
    match value {
        Value::String(s) => {
            *s = interpolate::interpolate(s, vars, if path.is_empty() { "the file" } else { path }, unset)?
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, vars, &format!("{path}[{i}]"), unset)?;
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = k.as_str().unwrap_or("?");
                let at = if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
                substitute(v, vars, &at, unset)?;
            }
        }
        Value::Tagged(t) => substitute(&mut t.value, vars, path, unset)?,
        _ => {}
    }
    Ok(())
}

/// Merges `over` into `base` as Compose merges `-f` files: mappings key by key; within a
/// service, `environment` and `depends_on` by key, `ports` appended, `volumes` by target;
/// anything else replaced.
fn merge(base: &mut Value, over: Value, path: &str) {
    let in_service = path.starts_with("services.") && path.matches('.').count() == 1;
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                let key = k.as_str().unwrap_or("").to_string();
                let at = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                match b.get_mut(&k) {
                    Some(existing) if in_service && (key == "environment" || key == "depends_on") => {
                        let mut m = as_map(existing.clone());
                        for (kk, vv) in as_map(v) {
                            m.insert(kk, vv);
                        }
                        *existing = Value::Mapping(m);
                    }
                    Some(Value::Sequence(items)) if in_service && key == "ports" => {
                        for p in v.as_sequence().cloned().unwrap_or_default() {
                            if !items.contains(&p) {
                                items.push(p);
                            }
                        }
                    }
                    Some(Value::Sequence(items)) if in_service && key == "volumes" => {
                        for m in v.as_sequence().cloned().unwrap_or_default() {
                            items.retain(|old| mount_target(old) != mount_target(&m));
                            items.push(m);
                        }
                    }
                    Some(existing) if in_service && (key == "command" || key == "entrypoint") => *existing = v,
                    Some(existing) => merge(existing, v, &at),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// A list of `KEY=VALUE` (or of names) as a mapping; a mapping as it is.
fn as_map(v: Value) -> Mapping {
    match v {
        Value::Mapping(m) => m,
        Value::Sequence(items) => items
            .into_iter()
            .map(|i| match i.as_str().and_then(|s| s.split_once('=')) {
                Some((k, val)) => (Value::String(k.into()), Value::String(val.into())),
                None => (i, Value::Null),
            })
            .collect(),
        _ => Mapping::new(),
    }
}

/// Where a service's volume entry mounts (`SOURCE:TARGET[:MODE]` or `{target: ...}`).
fn mount_target(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => s.split(':').nth(1).or(Some(s.as_str())).map(str::to_string),
        Value::Mapping(m) => m.get("target").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// The variables: the project directory's `.env`, with this process's environment (or
/// the caller's) over it.
fn variables(dir: &Path, given: Option<&BTreeMap<String, String>>) -> Result<Variables> {
    let mut values = BTreeMap::new();
    let dotenv = dir.join(".env");
    if dotenv.is_file() {
        values.extend(read_env_file(&dotenv, ".env")?);
    }
    match given {
        Some(g) => values.extend(g.clone()),
        None => values.extend(std::env::vars()),
    }
    Ok(Variables { values })
}

/// The `KEY=VALUE` lines of an env file (comments, quotes and `export` as Compose reads
/// them).
fn read_env_file(path: &Path, at: &str) -> Result<Vec<(String, String)>> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return Err(Error::config(format!("{at}: {} is not a file", path.display())));
    }
    let iter = dotenvy::from_path_iter(path).map_err(|e| match e {
        dotenvy::Error::Io(io) => Error::io("read", path, io),
        other => Error::config(format!("{at}: {}: {other}", path.display())),
    })?;
    iter.map(|item| item.map_err(|e| Error::config(format!("{at}: {}: {e}", path.display())))).collect()
}

/// A project name that Compose accepts: lowercase letters, digits, `_` and `-`, starting
/// with a letter or digit.
fn check_project_name(name: &str, from: &str) -> Result<String> {
    let ok = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(name.to_string())
    } else {
        Err(Error::config(format!(
            "project name `{}` ({from}): lowercase letters, digits, `_` and `-`, starting with a letter or digit",
            name.escape_debug()
        )))
    }
}

/// The project's name: `-p`, then `COMPOSE_PROJECT_NAME`, then `name:`, then the
/// directory's name made lowercase with what Compose does not allow taken out.
fn project_name(given: Option<&str>, vars: &Variables, in_file: Option<&Value>, dir: &Path) -> Result<String> {
    if let Some(n) = given {
        return check_project_name(n, "-p");
    }
    if let Some(n) = vars.values.get("COMPOSE_PROJECT_NAME").filter(|n| !n.is_empty()) {
        return check_project_name(n, "COMPOSE_PROJECT_NAME");
    }
    if let Some(n) = in_file {
        return check_project_name(&service::string("name", n)?, "the file's `name`");
    }
    let base = dir.file_name().map(|b| b.to_string_lossy().to_lowercase()).unwrap_or_default();
    let kept: String =
        base.chars().filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-').collect();
    let trimmed = kept.trim_start_matches(['_', '-']);
    check_project_name(trimmed, "from the directory's name; give one with -p").map_err(|e| match e {
        Error::Config(m) if trimmed.is_empty() => {
            Error::config(format!("{m}: the directory `{}` gives none", dir.display()))
        }
        other => other,
    })
}

/// A service name Compose accepts.
fn check_service_name(name: &str) -> Result<()> {
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "services.{}: a service's name takes letters, digits, `.`, `_` and `-`",
            name.escape_debug()
        )))
    }
}

/// The top-level `networks`.
fn networks(project: &str, value: &Value) -> Result<BTreeMap<String, NetworkDef>> {
    definitions("networks", value, |key, v| {
        let mut internal = false;
        let (name, external) = definition(project, "network", key, v, "bridge", |at, o, val| match o {
            "internal" => service::boolean(at, val).map(|b| internal = b).map(|()| true),
            _ => Ok(false),
        })?;
        Ok(NetworkDef { name, external, internal })
    })
}

/// The top-level `volumes`.
fn volumes(project: &str, value: &Value) -> Result<BTreeMap<String, VolumeDef>> {
    definitions("volumes", value, |key, v| {
        let (name, external) = definition(project, "volume", key, v, "local", |_, _, _| Ok(false))?;
        Ok(VolumeDef { name, external })
    })
}

/// Each entry of the top-level mapping `section` (`networks`, `volumes`), read by `read`.
fn definitions<T>(
    section: &str,
    value: &Value,
    mut read: impl FnMut(&str, &Value) -> Result<T>,
) -> Result<BTreeMap<String, T>> {
    let mut out = BTreeMap::new();
    if value.is_null() {
        return Ok(out);
    }
    for (k, v) in service::mapping(section, value)? {
        let key = service::key_str(section, k)?;
        out.insert(key.to_string(), read(key, v)?);
    }
    Ok(out)
}

/// A network's or volume's name on the host and whether it is external: `<project>_<key>`,
/// or its `name:`, or an external one's key. `external`, `name`, `labels`, `x-*` and
/// `driver: DRIVER` are read here; `own` reads the keys of its kind (true when it took
/// one); any other key is an error.
fn definition(
    project: &str,
    kind: &str,
    key: &str,
    v: &Value,
    driver: &str,
    mut own: impl FnMut(&str, &str, &Value) -> Result<bool>,
) -> Result<(String, bool)> {
    let at = format!("{kind}s.{key}");
    let (mut external, mut own_name) = (false, None);
    match v {
        Value::Null => {}
        Value::Mapping(opts) => {
            for (o, val) in opts {
                let o = service::key_str(&at, o)?;
                let at = format!("{at}.{o}");
                match o {
                    "external" => external = service::boolean(&at, val)?,
                    "name" => own_name = Some(service::string(&at, val)?),
                    "driver" if service::string(&at, val)? == driver => {}
                    "labels" => {}
                    o if o.starts_with("x-") => {}
                    o if own(&at, o, val)? => {}
                    o => {
                        return Err(Error::config(format!(
                            "{at}: isolette compose does not carry out `{o}` of a {kind}"
                        )));
                    }
                }
            }
        }
        _ => return Err(Error::config(format!("{at}: expected a mapping"))),
    }
    let name = match own_name {
        Some(n) => n,
        None if external => key.to_string(),
        None => format!("{project}_{key}"),
    };
    crate::names::check(kind, &name).map_err(|e| match e {
        Error::Config(m) => Error::config(format!("{at}: {m}")),
        other => other,
    })?;
    Ok((name, external))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A project directory named `dir` with `files` in it.
    fn project(dir: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join(dir);
        std::fs::create_dir_all(&root).unwrap();
        for (name, text) in files {
            std::fs::write(root.join(name), text).unwrap();
        }
        (tmp, root)
    }

    fn load(root: &Path, opts: LoadOptions, env: &[(&str, &str)]) -> std::result::Result<Project, String> {
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Project::load(&opts.working_dir(root).environment(env)).map_err(|e| e.to_string())
    }

    const APP: &str = "
services:
  web:
    image: ${WEB_IMAGE:-web:latest}
    ports: [\"127.0.0.1:${PORT:?give PORT}:8000\"]
    depends_on: {db: {condition: service_healthy}}
    volumes: [./static:/static:ro]
  db:
    image: redis
    volumes: [data:/data]
    healthcheck: {test: [CMD, redis-cli, ping], interval: 1s}
volumes:
  data:
";

    #[test]
    fn a_project_loads_with_composes_names_and_order() {
        let (_t, root) = project("My App!", &[("compose.yaml", APP), (".env", "PORT=18080\nWEB_IMAGE=from-dotenv\n")]);
        let p = load(&root, LoadOptions::new(), &[("WEB_IMAGE", "from-env")]).unwrap();
        assert_eq!(p.name, "myapp");
        assert_eq!(p.order().unwrap(), ["db", "web"]);
        assert_eq!(p.sandbox_name("web"), "myapp-web-1");
        assert_eq!(p.networks["default"].name, "myapp_default");
        assert_eq!(p.volumes["data"].name, "myapp_data");
        let web = &p.services["web"];
        assert_eq!(web.image.as_deref(), Some("from-env"), "the environment over .env");
        assert_eq!(web.ports[0].to_string(), "127.0.0.1:18080->8000/tcp");
        assert_eq!(web.volumes[0].source, MountSource::Bind(root.join("static")));
        assert_eq!(web.networks, ["default"]);
        assert_ne!(p.config_hash("web", "i"), p.config_hash("db", "i"));
        assert_ne!(p.config_hash("web", "i"), p.config_hash("web", "j"), "another image");
        assert_eq!((p.image_name("db"), p.image_name("web")), ("redis".to_string(), "from-env".to_string()));
        assert!(p.to_yaml().contains("name: myapp"), "{}", p.to_yaml());
        // Found from a directory below, too.
        std::fs::create_dir(root.join("sub")).unwrap();
        assert_eq!(load(&root.join("sub"), LoadOptions::new(), &[]).unwrap().name, "myapp");
    }

    #[test]
    fn a_project_changed_after_loading_is_checked_again_before_it_runs() {
        let (_t, root) = project("app", &[("compose.yaml", APP), (".env", "PORT=18080\n")]);
        let mut p = load(&root, LoadOptions::new(), &[]).unwrap();
        assert_eq!(p.wanted(&["web".into()]).unwrap(), ["db", "web"], "with what it depends on");
        assert_eq!(p.wanted(&["db".into()]).unwrap(), ["db"]);
        assert!(p.wanted(&["nope".into()]).unwrap_err().to_string().contains("no service `nope` in project app"));
        let web = p.services.get_mut("web").unwrap();
        web.depends_on.insert("ghost".into(), Condition::ServiceStarted);
        let err = p.wanted(&["web".into()]).unwrap_err().to_string();
        assert!(err.contains("services.web.depends_on: there is no service `ghost`"), "{err}");
        let web = p.services.get_mut("web").unwrap();
        web.depends_on.remove("ghost");
        web.networks.clear();
        let image = up::ServiceImage { reference: "x".into(), id: "i".into(), healthcheck: None, is_dir: false };
        let err = p.spec("web", &image).unwrap_err().to_string();
        assert!(err.contains("services.web.networks: a service needs a network"), "{err}");
    }

    #[test]
    fn the_project_name_comes_from_where_compose_takes_it() {
        let named = format!("name: from-file\n{APP}");
        let (_t, root) = project("dir", &[("docker-compose.yml", &named), (".env", "PORT=1\n")]);
        assert_eq!(load(&root, LoadOptions::new(), &[]).unwrap().name, "from-file");
        assert_eq!(load(&root, LoadOptions::new(), &[("COMPOSE_PROJECT_NAME", "env")]).unwrap().name, "env");
        assert_eq!(
            load(&root, LoadOptions::new().project_name("flag"), &[("COMPOSE_PROJECT_NAME", "env")]).unwrap().name,
            "flag"
        );
        let e = load(&root, LoadOptions::new().project_name("Bad Name"), &[]).unwrap_err();
        assert!(e.contains("project name `Bad Name` (-p)"), "{e}");
    }

    #[test]
    fn files_merge_in_order() {
        let over = "
services:
  web:
    image: web:2
    environment: {B: 2}
    ports: [\"9000:9000\"]
    volumes: [./other:/static]
";
        let (_t, root) = project(
            "m",
            &[
                (
                    "a.yaml",
                    &APP.replace(
                        "    image: ${WEB_IMAGE:-web:latest}\n",
                        "    image: web:1\n    environment: [A=1, B=1]\n",
                    ),
                ),
                ("b.yaml", over),
            ],
        );
        let p = load(&root, LoadOptions::new().file("a.yaml").file("b.yaml"), &[("PORT", "1")]).unwrap();
        let web = &p.services["web"];
        assert_eq!(web.image.as_deref(), Some("web:2"));
        assert_eq!(web.environment.get("A").map(String::as_str), Some("1"));
        assert_eq!(web.environment.get("B").map(String::as_str), Some("2"));
        assert_eq!(web.ports.len(), 2);
        assert_eq!(web.volumes.len(), 1);
        assert_eq!(web.volumes[0].source, MountSource::Bind(root.join("other")));
    }

    #[test]
    fn bad_projects_are_clear_errors() {
        let cases: &[(&str, &str)] = &[
            ("services:\n  web:\n    image: [unclosed\n", "compose.yaml: line 4 column 1: did not find expected"),
            ("services:\n  a: {image: x, depends_on: [b]}\n  b: {image: x, depends_on: [a]}\n", "cycle: a -> b -> a"),
            ("services:\n  a: {image: x, depends_on: [nope]}\n", "no service `nope`"),
            ("services:\n  a: {image: x, networks: [back]}\n", "network `back` is not in"),
            ("services:\n  a: {image: x, volumes: ['data:/d']}\n", "volume `data` is not in"),
            ("services:\n  a: {image: x}\nsecrets: {}\n", "top-level `secrets`"),
            ("services:\n  a: {image: '${NEED:?set NEED}'}\n", "services.a.image: required variable NEED"),
            ("services:\n  my_app: {image: x}\n", "rename it, or give it a `hostname`"),
            ("services: {}\n", "at least one service"),
            ("- a\n", "a Compose file is a mapping"),
            ("services:\n  a: {image: x, ports: ['80:80', '80:81']}\n", "published twice"),
            ("services:\n  a: {image: x, networks: [b, c]}\nnetworks: {b: {}, c: {}}\n", "a sandbox is on one network"),
            ("services:\n  a: {image: x}\nnetworks: {default: {driver: overlay}}\n", "networks.default.driver"),
        ];
        for (text, want) in cases {
            let (_t, root) = project("p", &[("compose.yaml", text)]);
            let e = load(&root, LoadOptions::new(), &[]).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        let (_t, root) = project("p", &[]);
        assert!(load(&root, LoadOptions::new(), &[]).unwrap_err().contains("no Compose file"));
    }

    #[test]
    fn unknown_keys_and_unset_variables_are_warnings() {
        let text = "version: '3'\nservices:\n  a: {image: 'x$NOPE', frobnicate: 1}\nx-common: {}\nextra: 1\n";
        let (_t, root) = project("p", &[("compose.yaml", text)]);
        let p = load(&root, LoadOptions::new(), &[]).unwrap();
        assert_eq!(p.services["a"].image.as_deref(), Some("x"));
        assert_eq!(p.warnings.len(), 4, "{:?}", p.warnings);
    }

    #[test]
    fn networks_and_volumes_take_their_names_as_compose_gives_them() {
        let text = "services:\n  a: {image: x, networks: [back], volumes: ['v:/v', 'e:/e']}\n  b: {image: x, networks: [ext]}\nnetworks:\n  back: {internal: true}\n  ext: {external: true, name: shared}\nvolumes:\n  v: {name: own}\n  e: {external: true}\n";
        let (_t, root) = project("p", &[("compose.yaml", text)]);
        let p = load(&root, LoadOptions::new(), &[]).unwrap();
        assert_eq!((p.networks["back"].name.as_str(), p.networks["back"].internal), ("p_back", true));
        assert_eq!((p.networks["ext"].name.as_str(), p.networks["ext"].external), ("shared", true));
        assert!(!p.networks.contains_key("default"), "no service is on it");
        assert_eq!(p.volumes["v"].name, "own");
        assert_eq!((p.volumes["e"].name.as_str(), p.volumes["e"].external), ("e", true));
    }
}
