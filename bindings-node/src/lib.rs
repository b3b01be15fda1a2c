//! The Node.js binding of isolette (`isolette.node`): it converts types and nothing else.
//! Every behaviour is core's; `index.js` shapes it for JavaScript (option names, Promises,
//! `AbortSignal`, streams, errors with a `code`).
//!
//! Nothing here blocks the event loop or takes a thread of libuv's pool: a sandbox is
//! supervised by core's own thread, and `Running.wait` awaits, on napi's Tokio runtime,
//! the fd core makes readable once the outcome is in.

mod compose;

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::IntoRawFd;
use std::os::unix::ffi::OsStringExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use isolette::{MountSpec, Output, SandboxBuilder, SeccompAction, SeccompPolicy, Stdin};
use napi::bindgen_prelude::{Buffer, Either, Object};
use napi::{Env, Error, Result, Status};
use napi_derive::napi;

/// A core error as a JS error `index.js` rebuilds: `isolette:` and core's JSON of it
/// (`Error::to_json`), with Node's `code` added.
fn to_js(e: isolette::Error) -> Error {
    let mut detail = e.to_json();
    detail["code"] = format!("ERR_ISOLETTE_{}", e.kind().to_ascii_uppercase()).into();
    Error::new(Status::GenericFailure, format!("isolette:{detail}"))
}

fn config(message: impl Into<String>) -> Error {
    to_js(isolette::Error::config(message))
}

/// An image: unpacked layer directories, lowest first.
#[napi]
pub struct Image {
    inner: isolette::Image,
}

#[napi]
impl Image {
    /// An image from one unpacked directory.
    #[napi(factory)]
    pub fn open(path: String) -> Result<Image> {
        isolette::Image::open(path).map(|inner| Image { inner }).map_err(to_js)
    }

    /// An image from layer directories, lowest first.
    #[napi(factory)]
    pub fn from_layers(layers: Vec<String>) -> Result<Image> {
        isolette::Image::from_layers(layers).map(|inner| Image { inner }).map_err(to_js)
    }

    /// Image `name` from the store in `store`, or the default store.
    #[napi(factory)]
    pub fn load(name: String, store: Option<String>) -> Result<Image> {
        let inner = match store {
            Some(dir) => isolette::Store::open(dir).and_then(|s| s.image(&name)),
            None => isolette::Image::load(&name),
        };
        inner.map(|inner| Image { inner }).map_err(to_js)
    }

    /// The layer directories, lowest first.
    #[napi(getter)]
    pub fn layers(&self) -> Vec<String> {
        self.inner.layers().iter().map(|p| p.to_string_lossy().into_owned()).collect()
    }
}

/// An image's record in a store.
#[napi(object)]
pub struct ImageRecord {
    pub name: String,
    pub id: String,
    pub layers: Vec<String>,
    pub size: f64,
    pub created: Option<String>,
}

impl From<isolette::ImageRecord> for ImageRecord {
    fn from(r: isolette::ImageRecord) -> ImageRecord {
        ImageRecord { name: r.name, id: r.id, layers: r.layers, size: r.size as f64, created: r.created }
    }
}

/// The image store.
#[napi]
pub struct Store {
    inner: isolette::Store,
}

#[napi]
impl Store {
    /// The store in `path`, else the default one; made if missing.
    #[napi(constructor)]
    pub fn new(path: Option<String>) -> Result<Store> {
        let dir = path.map_or_else(isolette::Store::default_dir, Into::into);
        isolette::Store::open(dir).map(|inner| Store { inner }).map_err(to_js)
    }

    /// The store's directory.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.inner.dir().to_string_lossy().into_owned()
    }

    /// Starts importing an OCI layout, an oci-archive or a `docker save` archive, on a
    /// thread of Tokio's blocking pool (not libuv's).
    #[napi]
    pub fn import_start(&self, source: String, name: Option<String>) -> Import {
        let store = self.inner.clone();
        let progress = Arc::new(Mutex::new(None));
        let seen = Arc::clone(&progress);
        let (tell, record) = tokio::sync::oneshot::channel();
        napi::bindgen_prelude::spawn_blocking(move || {
            let mut report = |p: isolette::Progress| {
                *seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
            };
            let _ = tell.send(store.import(source.as_ref(), name.as_deref(), &mut report));
        });
        Import { progress, record: Mutex::new(Some(record)) }
    }

    /// Every image's record.
    #[napi]
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        Ok(self.inner.list().map_err(to_js)?.into_iter().map(Into::into).collect())
    }

    /// Removes image `name` and the layers no other image uses.
    #[napi]
    pub fn remove(&self, name: String) -> Result<Vec<String>> {
        self.inner.remove(&name).map_err(to_js)
    }

    /// Removes the layers no image uses.
    #[napi]
    pub fn prune(&self) -> Result<Vec<String>> {
        self.inner.prune().map_err(to_js)
    }

    /// Starts building the Dockerfile in `context` (`isolette build`) on a thread of
    /// Tokio's blocking pool; its events queue up for `Build.events`.
    #[napi]
    pub fn build_start(&self, context: String, options: BuildOptions) -> Result<Build> {
        let mut o = isolette::build::BuildOptions::default();
        o.dockerfile = options.dockerfile.map(Into::into);
        o.tags = options.tags.unwrap_or_default();
        o.build_args = options.build_args.unwrap_or_default().into_iter().collect();
        o.target = options.target;
        o.no_cache = options.no_cache.unwrap_or(false);
        if let Some(network) = options.network {
            o.network = network.parse().map_err(to_js)?;
        }
        o.source_date_epoch = options.source_date_epoch.map(|s| s as u64);
        o.memory = options.memory.map(|m| isolette::parse_size(&m)).transpose().map_err(to_js)?;
        o.cpu_time = options.cpu_time.map(|d| isolette::parse_duration(&d)).transpose().map_err(to_js)?;
        o.wall_time = options.wall_time.map(|d| isolette::parse_duration(&d)).transpose().map_err(to_js)?;
        let canceller = isolette::Canceller::new().map_err(to_js)?;
        o.canceller = Some(canceller.clone());
        let store = self.inner.clone();
        let events = Arc::new(Mutex::new(Vec::new()));
        let queue = Arc::clone(&events);
        let (tell, result) = tokio::sync::oneshot::channel();
        napi::bindgen_prelude::spawn_blocking(move || {
            let mut report = |e: &isolette::build::BuildEvent| {
                queue.lock().unwrap_or_else(|e| e.into_inner()).push(BuildEventJs::from(e));
            };
            let _ = tell.send(store.build(context.as_ref(), &o, &mut report).map(|r| r.to_json().to_string()));
        });
        Ok(Build { events, result: Mutex::new(Some(result)), canceller })
    }

    /// Pulls `reference` into the store, on a thread of Tokio's blocking pool; its record.
    #[napi]
    pub async fn pull(&self, reference: String, insecure: Option<Vec<String>>) -> Result<ImageRecord> {
        let store = self.inner.clone();
        let options = registry_options(insecure);
        let pulled = napi::bindgen_prelude::spawn_blocking(move || store.pull(&reference, &options, &|_| {}))
            .await
            .map_err(|e| Error::from_reason(e.to_string()))?;
        pulled.map(Into::into).map_err(to_js)
    }

    /// Pushes image `name` to `reference` (`name` when absent); the manifest's digest.
    #[napi]
    pub async fn push(&self, name: String, reference: Option<String>, insecure: Option<Vec<String>>) -> Result<String> {
        let store = self.inner.clone();
        let options = registry_options(insecure);
        let pushed =
            napi::bindgen_prelude::spawn_blocking(move || store.push(&name, reference.as_deref(), &options, &|_| {}))
                .await
                .map_err(|e| Error::from_reason(e.to_string()))?;
        pushed.map_err(to_js)
    }
}

fn registry_options(insecure: Option<Vec<String>>) -> isolette::RegistryOptions {
    insecure.unwrap_or_default().into_iter().fold(isolette::RegistryOptions::new(), |o, h| o.insecure_registry(h))
}

/// `store.build`'s options as `index.js` normalizes them (sizes and durations as strings
/// core parses).
#[napi(object)]
pub struct BuildOptions {
    pub tags: Option<Vec<String>>,
    pub dockerfile: Option<String>,
    pub build_args: Option<HashMap<String, String>>,
    pub target: Option<String>,
    pub no_cache: Option<bool>,
    pub network: Option<String>,
    pub source_date_epoch: Option<f64>,
    pub memory: Option<String>,
    pub cpu_time: Option<String>,
    pub wall_time: Option<String>,
}

/// One build event: `event` is `step` (with core's JSON of it), `output` or `note`.
#[napi(object)]
pub struct BuildEventJs {
    pub event: String,
    pub json: Option<String>,
    pub step: Option<u32>,
    pub stream: Option<String>,
    pub data: Option<Buffer>,
    pub message: Option<String>,
}

impl From<&isolette::build::BuildEvent> for BuildEventJs {
    fn from(e: &isolette::build::BuildEvent) -> BuildEventJs {
        use isolette::build::BuildEvent;
        let mut js =
            BuildEventJs { event: e.kind().into(), json: None, step: None, stream: None, data: None, message: None };
        match e {
            BuildEvent::Step(s) => js.json = Some(s.to_json().to_string()),
            BuildEvent::Output { index, stream, data } => {
                js.step = Some(*index as u32);
                js.stream = Some(stream.name().into());
                js.data = Some(data.clone().into());
            }
            BuildEvent::Note(m) => js.message = Some(m.clone()),
            _ => {}
        }
        js
    }
}

/// A build under way: its events so far, its result to await, and its cancel.
#[napi]
pub struct Build {
    events: Arc<Mutex<Vec<BuildEventJs>>>,
    result: Mutex<Option<tokio::sync::oneshot::Receiver<isolette::Result<String>>>>,
    canceller: isolette::Canceller,
}

#[napi]
impl Build {
    /// The events since the last call.
    #[napi]
    pub fn events(&self) -> Vec<BuildEventJs> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Stops the build: its running step is killed, and the result is an error.
    #[napi]
    pub fn cancel(&self) {
        self.canceller.cancel();
    }

    /// The summary (core's JSON of the result), once.
    #[napi]
    pub async fn result(&self) -> Result<String> {
        let Some(result) = self.result.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Err(config("this build's result was already taken"));
        };
        match result.await {
            Ok(result) => result.map_err(to_js),
            Err(_) => Err(Error::from_reason("the build's thread ended without a result")),
        }
    }
}

/// An import under way: where it is, and its record to await.
#[napi]
pub struct Import {
    progress: Arc<Mutex<Option<isolette::Progress>>>,
    record: Mutex<Option<tokio::sync::oneshot::Receiver<isolette::Result<isolette::ImageRecord>>>>,
}

#[napi]
impl Import {
    /// `[layer, layers, bytes, totalBytes]` so far, or `null` before the first layer.
    #[napi]
    pub fn progress(&self) -> Option<Vec<f64>> {
        let p = (*self.progress.lock().unwrap_or_else(|e| e.into_inner()))?;
        Some(vec![p.layer as f64, p.layers as f64, p.bytes as f64, p.total_bytes as f64])
    }

    /// The imported image's record, once.
    #[napi]
    pub async fn record(&self) -> Result<ImageRecord> {
        let Some(record) = self.record.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Err(config("this import's record was already taken"));
        };
        match record.await {
            Ok(result) => result.map(Into::into).map_err(to_js),
            Err(_) => Err(Error::from_reason("the import's thread ended without a record")),
        }
    }
}

/// The options as `index.js` normalizes them: names checked there, values in the forms
/// below (sizes in bytes or strings core parses, durations in milliseconds or strings).
#[napi(object)]
#[derive(Default)]
pub struct NativeOptions {
    pub memory: Option<Either<f64, String>>,
    pub output_limit: Option<Either<f64, String>>,
    pub fsize: Option<Either<f64, String>>,
    pub tmpfs_size: Option<Either<f64, String>>,
    pub stack: Option<Either<f64, String>>,
    pub cpu_time: Option<Either<f64, String>>,
    pub wall_time: Option<Either<f64, String>>,
    pub pids: Option<f64>,
    pub nofile: Option<f64>,
    pub cpus: Option<f64>,
    pub cpuset: Option<String>,
    pub env: Option<HashMap<String, String>>,
    pub workdir: Option<String>,
    /// `SRC:DST[:rw]` each.
    pub mounts: Option<Vec<String>>,
    /// `null`, `bytes`, `pipe`, `inherit` or `file`.
    pub stdin_mode: Option<String>,
    pub stdin_data: Option<Buffer>,
    pub stdin_path: Option<String>,
    /// `capture`, `pipe`, `null`, `inherit` or `file` (then the path).
    pub stdout_mode: Option<String>,
    pub stdout_path: Option<String>,
    pub stderr_mode: Option<String>,
    pub stderr_path: Option<String>,
    /// `default`, `off`, `deny:NAME,...` or `allow:NAME,...`.
    pub seccomp: Option<String>,
    /// `kill` or `errno`.
    pub seccomp_action: Option<String>,
    pub cgroup: Option<bool>,
    pub sys: Option<bool>,
    pub user_namespace: Option<bool>,
    /// `[uid, gid]`.
    pub user: Option<Vec<u32>>,
    pub hostname: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub tty: Option<bool>,
    /// `[rows, cols]`.
    pub tty_size: Option<Vec<u32>>,
    /// `none`, `outbound` or a network's name.
    pub network: Option<String>,
    /// `[ADDR:]HOSTPORT:PORT[/udp]` each.
    pub publish: Option<Vec<String>>,
    pub host_loopback: Option<bool>,
    /// `allow:CIDR[:PORTS]` or `deny:CIDR[:PORTS]` each, in order (the first match decides).
    pub egress: Option<Vec<String>>,
}

fn size(v: Either<f64, String>, name: &str) -> Result<u64> {
    match v {
        Either::A(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= 9.0e15 => Ok(n as u64),
        Either::A(_) => Err(config(format!("option `{name}` must be a whole number of bytes, 0 or more"))),
        Either::B(s) => isolette::parse_size(&s).map_err(to_js),
    }
}

fn millis(v: Either<f64, String>, name: &str) -> Result<Duration> {
    match v {
        Either::A(ms) => Duration::try_from_secs_f64(ms / 1000.0)
            .map_err(|_| config(format!("option `{name}` must be a finite number of milliseconds, 0 or more"))),
        Either::B(s) => isolette::parse_duration(&s).map_err(to_js),
    }
}

fn count(n: f64, name: &str) -> Result<u64> {
    if n.is_finite() && n >= 0.0 && n.fract() == 0.0 {
        Ok(n as u64)
    } else {
        Err(config(format!("option `{name}` must be a whole number, 0 or more")))
    }
}

fn output(mode: Option<String>, path: Option<String>, name: &str) -> Result<Option<Output>> {
    Ok(match (mode.as_deref(), path) {
        (None, _) => None,
        (Some("file"), Some(p)) => Some(Output::File(p.into())),
        (Some(mode), _) => Some(mode.parse().map_err(|_| {
            config(format!("option `{name}` must be 'capture', 'pipe', 'null', 'inherit' or {{ path }}"))
        })?),
    })
}

fn builder(image: &Image, o: NativeOptions) -> Result<SandboxBuilder> {
    let mut b = isolette::Sandbox::builder(&image.inner);
    if let Some(v) = o.memory {
        b = b.memory(size(v, "memory")?);
    }
    if let Some(v) = o.output_limit {
        b = b.output_limit(size(v, "outputLimit")?);
    }
    if let Some(v) = o.fsize {
        b = b.fsize(size(v, "fsize")?);
    }
    if let Some(v) = o.tmpfs_size {
        b = b.tmpfs_size(size(v, "tmpfsSize")?);
    }
    if let Some(v) = o.stack {
        b = b.stack(size(v, "stack")?);
    }
    if let Some(v) = o.cpu_time {
        b = b.cpu_time(millis(v, "cpuTime")?);
    }
    if let Some(v) = o.wall_time {
        b = b.wall_time(millis(v, "wallTime")?);
    }
    if let Some(n) = o.pids {
        b = b.pids(count(n, "pids")?);
    }
    if let Some(n) = o.nofile {
        b = b.nofile(count(n, "nofile")?);
    }
    if let Some(n) = o.cpus {
        b = b.cpus(n);
    }
    if let Some(s) = o.cpuset {
        b = b.cpuset(s);
    }
    for (k, v) in o.env.unwrap_or_default() {
        b = b.env(k, v);
    }
    if let Some(w) = o.workdir {
        b = b.workdir(w);
    }
    for m in o.mounts.unwrap_or_default() {
        b = b.mount(MountSpec::parse(m).map_err(to_js)?);
    }
    let bad_stdin = || config("option `stdin` must be a Buffer, a string, null, 'pipe', 'inherit' or { path }");
    match (o.stdin_mode.as_deref(), o.stdin_data, o.stdin_path) {
        (None, _, _) => {}
        (Some("bytes"), Some(data), _) => b = b.stdin(data.to_vec()),
        (Some("file"), _, Some(p)) => b = b.stdin_from(Stdin::File(p.into())),
        (Some("bytes" | "file"), _, _) => return Err(bad_stdin()),
        (Some(mode), _, _) => b = b.stdin_from(mode.parse::<Stdin>().map_err(|_| bad_stdin())?),
    }
    if let Some(out) = output(o.stdout_mode, o.stdout_path, "stdout")? {
        b = b.stdout(out);
    }
    if let Some(out) = output(o.stderr_mode, o.stderr_path, "stderr")? {
        b = b.stderr(out);
    }
    let mut policy = None;
    if let Some(s) = o.seccomp {
        policy = Some(s.parse::<SeccompPolicy>().map_err(to_js)?);
    }
    if let Some(a) = o.seccomp_action {
        let action =
            a.parse::<SeccompAction>().map_err(|_| config("option `seccompAction` must be 'kill' or 'errno'"))?;
        policy = Some(policy.unwrap_or_default().with_action(action));
    }
    if let Some(p) = policy {
        b = b.seccomp(p);
    }
    if let Some(on) = o.cgroup {
        b = b.cgroup(on);
    }
    if let Some(on) = o.sys {
        b = b.sys(on);
    }
    if let Some(on) = o.user_namespace {
        b = b.user_namespace(on);
    }
    if let Some(ids) = o.user {
        match ids[..] {
            [uid, gid] => b = b.user(uid, gid),
            _ => return Err(config("option `user` must be [uid, gid]")),
        }
    }
    if let Some(h) = o.hostname {
        b = b.hostname(h);
    }
    if let Some(n) = o.network {
        b = b.network(n.parse().map_err(to_js)?);
    }
    for spec in o.publish.unwrap_or_default() {
        b = b.publish(spec.parse().map_err(to_js)?);
    }
    if let Some(on) = o.host_loopback {
        b = b.host_loopback(on);
    }
    // Each rule the shared word `allow:CIDR[:PORTS]` (index.js joins pairs into it).
    for rule in o.egress.unwrap_or_default() {
        b = b.egress(rule.parse().map_err(to_js)?);
    }
    if let Some(e) = o.entrypoint {
        b = b.entrypoint(e);
    }
    if o.tty == Some(true) {
        b = b.tty(true);
    }
    if let Some(size) = o.tty_size {
        match size[..] {
            [rows, cols] if rows <= u32::from(u16::MAX) && cols <= u32::from(u16::MAX) => {
                b = b.tty_size(rows as u16, cols as u16)
            }
            _ => return Err(config("option `tty` must be a boolean or [rows, cols]")),
        }
    }
    Ok(b)
}

fn argv(args: Vec<Either<String, Buffer>>) -> Vec<OsString> {
    args.into_iter()
        .map(|a| match a {
            Either::A(s) => OsString::from(s),
            Either::B(b) => OsString::from_vec(b.to_vec()),
        })
        .collect()
}

/// Checks the options as a run would (names are checked by `index.js`).
#[napi]
pub fn check_options(image: &Image, options: NativeOptions) -> Result<()> {
    builder(image, options).map(drop)
}

/// Starts `args` in a new sandbox.
#[napi]
pub fn spawn(image: &Image, args: Vec<Either<String, Buffer>>, options: NativeOptions) -> Result<Running> {
    let mut running = builder(image, options)?.spawn(argv(args)).map_err(to_js)?;
    let streams = [
        running.take_stdin().map(|f| f.into_raw_fd()),
        running.take_stdout().map(|s| s.into_raw_fd()),
        running.take_stderr().map(|s| s.into_raw_fd()),
    ];
    Ok(Running { inner: Arc::new(running), streams: Mutex::new(Some(streams)) })
}

/// Cancels the runs `start` was given it for.
#[napi]
pub struct Canceller {
    inner: isolette::Canceller,
}

#[napi]
impl Canceller {
    /// A canceller for a run to come.
    #[napi(constructor)]
    pub fn new() -> Result<Canceller> {
        isolette::Canceller::new().map(|inner| Canceller { inner }).map_err(to_js)
    }

    /// Stops the sandbox now; the run ends `cancelled`.
    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

/// Runs `args` in a new sandbox with core's `run()`, on a thread of napi's Tokio blocking
/// pool (not libuv's), and resolves the promise from there: cheaper than a `Running`, for
/// runs without streams.
#[napi(ts_return_type = "Promise<NativeOutcome>")]
pub fn start<'env>(
    env: &'env Env,
    image: &Image,
    args: Vec<Either<String, Buffer>>,
    options: NativeOptions,
    canceller: Option<&Canceller>,
) -> Result<Object<'env>> {
    let mut b = builder(image, options)?;
    if let Some(c) = canceller {
        b = b.canceller(&c.inner);
    }
    let argv = argv(args);
    let (deferred, promise) = env.create_deferred()?;
    napi::bindgen_prelude::spawn_blocking(move || match b.run(argv) {
        Ok(outcome) => deferred.resolve(move |_| Ok(NativeOutcome::from(outcome))),
        Err(e) => deferred.reject(to_js(e)),
    });
    Ok(promise)
}

/// One field of an outcome (core's `Outcome::fields`), in JavaScript's names and units:
/// camelCase, times in milliseconds, output as a Buffer; the one value set is the field's
/// (none for a number that is absent).
#[napi(object)]
pub struct NativeField {
    pub name: String,
    pub number: Option<f64>,
    pub text: Option<String>,
    pub flag: Option<bool>,
    pub bytes: Option<Buffer>,
}

/// What a run gave: core's outcome, shown field by field (`fields`) or as
/// `isolette run --json` prints it (`toJson`).
#[napi]
pub struct NativeOutcome {
    inner: isolette::Outcome,
}

#[napi]
impl NativeOutcome {
    /// Every field, in core's order.
    #[napi]
    pub fn fields(&self) -> Vec<NativeField> {
        self.inner
            .fields()
            .into_iter()
            .map(|(name, field)| {
                let mut f = NativeField { name: camel_case(name), number: None, text: None, flag: None, bytes: None };
                match field {
                    isolette::Field::Status(status) => f.text = Some(status.as_str().into()),
                    isolette::Field::Int(n) => f.number = n.map(f64::from),
                    isolette::Field::Time(d) => f.number = Some(d.as_secs_f64() * 1000.0),
                    isolette::Field::Bytes(n) => f.number = Some(n as f64),
                    isolette::Field::Flag(on) => f.flag = Some(on),
                    isolette::Field::Output(bytes) => f.bytes = Some(bytes.to_vec().into()),
                    _ => {}
                }
                f
            })
            .collect()
    }

    /// The outcome as `isolette run --json` prints it (core's `Outcome::to_json`), as text.
    #[napi]
    pub fn to_json(&self) -> String {
        self.inner.to_json().to_string()
    }
}

impl From<isolette::Outcome> for NativeOutcome {
    fn from(inner: isolette::Outcome) -> NativeOutcome {
        NativeOutcome { inner }
    }
}

/// `cpu_time` → `cpuTime`.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

/// Every status, in core's order (`Status::ALL`): `index.js`'s list is tested against it.
#[napi]
pub fn statuses() -> Vec<String> {
    isolette::Status::ALL.iter().map(|s| s.as_str().to_string()).collect()
}

/// A sandbox under way.
#[napi]
pub struct Running {
    inner: Arc<isolette::Running>,
    streams: Mutex<Option<[Option<i32>; 3]>>,
}

#[napi]
impl Running {
    /// The host pid of the sandbox's init.
    #[napi(getter)]
    pub fn pid(&self) -> i32 {
        self.inner.pid()
    }

    /// This sandbox's id, unique in this process.
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.inner.id().to_string()
    }

    /// The published ports, as `127.0.0.1:8080->8000/tcp` (host ports chosen for 0).
    #[napi(getter)]
    pub fn ports(&self) -> Vec<String> {
        self.inner.ports().iter().map(ToString::to_string).collect()
    }

    /// The fds of piped stdin, stdout and stderr (-1 where not piped), once: the caller
    /// owns them from here on.
    #[napi]
    pub fn take_streams(&self) -> Vec<i32> {
        let taken = self.streams.lock().unwrap_or_else(|e| e.into_inner()).take();
        taken.unwrap_or([None; 3]).iter().map(|fd| fd.unwrap_or(-1)).collect()
    }

    /// Waits for the outcome without a thread: the fd core makes readable once it is in.
    #[napi]
    pub async fn wait(&self) -> Result<NativeOutcome> {
        let inner = Arc::clone(&self.inner);
        let ready = inner.ready_fd().try_clone_to_owned().map_err(|e| Error::from_reason(e.to_string()))?;
        // SAFETY: `ready` is an OwnedFd the AsyncFd owns: open, and the same file, for
        // the AsyncFd's whole life.
        let ready = unsafe { tokio::io::unix::AsyncFd::register_with_interest(ready, tokio::io::Interest::READABLE) }
            .map_err(|e| Error::from_reason(e.to_string()))?;
        loop {
            if let Some(outcome) = inner.try_wait().map_err(to_js)? {
                return Ok(outcome.into());
            }
            let mut guard = ready.readable().await.map_err(|e| Error::from_reason(e.to_string()))?;
            guard.clear_ready();
        }
    }

    /// Stops the sandbox now; the run ends `cancelled`.
    #[napi]
    pub fn kill(&self) {
        self.inner.kill();
    }

    /// Sends `signal` (a number) to the program.
    #[napi]
    pub fn signal(&self, signal: i32) -> Result<()> {
        self.inner.signal(signal).map_err(to_js)
    }

    /// Resizes the program's terminal.
    #[napi]
    pub fn resize(&self, rows: u32, cols: u32) -> Result<()> {
        let rows = u16::try_from(rows).map_err(|_| config("rows must be below 65536"))?;
        let cols = u16::try_from(cols).map_err(|_| config("cols must be below 65536"))?;
        self.inner.resize(rows, cols).map_err(to_js)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(fds) = self.streams.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            for fd in fds.into_iter().flatten() {
                // SAFETY: an fd from `into_raw_fd` that nobody took: this owns it.
                drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
            }
        }
    }
}

/// Finishes removing this process's cgroups now.
#[napi]
pub fn cleanup() {
    isolette::cleanup();
}

/// What `gc` removed: directories gone, and those still busy.
#[napi(object)]
pub struct GcReport {
    pub removed: Vec<String>,
    pub busy: Vec<String>,
}

/// Removes what callers that no longer run left behind (their cgroups, killing what is
/// still in them), as `isolette gc` does.
#[napi]
pub fn gc() -> Result<GcReport> {
    let report = isolette::gc().map_err(to_js)?;
    let paths = |dirs: &[std::path::PathBuf]| dirs.iter().map(|d| d.to_string_lossy().into_owned()).collect();
    Ok(GcReport { removed: paths(&report.removed), busy: paths(&report.busy) })
}
