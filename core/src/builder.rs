//! `Store::build`: a Dockerfile's stages, step by step, each `RUN` in a sandbox and each
//! file step through an overlay of its own, every layer-making step cached by a key of
//! everything it reads (`build/` has the recipe, the words, the context and the layers).
//!
//! A step's key is its parent's key and the step after expansion with what it reads: for
//! `RUN` the command, the environment in scope (`ENV`s and the stage's `ARG`s), user,
//! working directory and network; for `COPY` and `ADD` the digest of the selected files
//! (`build::Context`), the destination and the flags. `LABEL`, `EXPOSE`, `CMD`,
//! `ENTRYPOINT`, `STOPSIGNAL` and the other config steps change no key; `ENV`, `WORKDIR`,
//! `USER` and an `ARG` do through the `RUN`s that have them in scope. An entry names the
//! layer the step made (or none), written whole or not at all.
//!
//! Where a build works (its steps' writable layers) is a directory under the store's
//! `builds/` named for its process: removed when the build ends, and by `gc` when a killed
//! build left it.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::Flock;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::build::{
    ArgDecl, BuildEvent, BuildNetwork, BuildOptions, BuildResult, Command, Context, Instruction, Recipe, RunNetwork,
    Source, Stage, StepReport, Stream, Transfer, tree, words, write_layer,
};
use crate::error::{Error, Result};
use crate::image::{Image, ImageConfig};
use crate::network::Network;
use crate::sandbox::Sandbox;
use crate::stdio::Output;
use crate::store::{ImageRecord, NewLayer, Store, StoredLayer};

/// Docker's `PATH` for a step whose image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Default limits of a `RUN`.
const RUN_MEMORY: u64 = 4 << 30;
const RUN_WALL_TIME: Duration = Duration::from_secs(3600);
const RUN_PIDS: u64 = 4096;
const RUN_NOFILE: u64 = 65536;

impl Store {
    /// Builds the image the Dockerfile in `context` describes (`docker build`) and stores
    /// it under `options.tags`. `progress` hears of each step as it ends, and of a `RUN`'s
    /// output as it comes. A failed step is an [`Error::Build`] naming its line; nothing is
    /// stored under the names then, and nothing of the build is left running or mounted.
    pub fn build(
        &self,
        context: &Path,
        options: &BuildOptions,
        progress: &mut dyn FnMut(&BuildEvent),
    ) -> Result<BuildResult> {
        let mut build = Build::new(self, context, options)?;
        let result = build.run(progress);
        build.finish();
        result
    }

    /// The build cache: how many entries it has and the bytes of the layers only it keeps.
    pub fn build_cache(&self) -> Result<(usize, u64)> {
        let used: HashSet<String> = self.list()?.into_iter().flat_map(|r| r.layers).collect();
        let entries = cache_entries(self);
        let mut only: HashSet<String> = HashSet::new();
        for (_, entry) in &entries {
            if let Some(layer) = &entry.layer
                && !used.contains(&layer.diff_id)
            {
                only.insert(layer.diff_id.clone());
            }
        }
        Ok((entries.len(), only.iter().map(|d| self.layer_bytes(d)).sum()))
    }

    /// Removes the cache entries whose layers no image uses, then what a killed build left
    /// (`builds/`) and the layers nobody uses (`builder prune`); returns how many entries
    /// went.
    pub fn prune_build_cache(&self) -> Result<usize> {
        let removed = self.prune_cache_entries()?;
        self.prune()?;
        Ok(removed)
    }

    /// Drops the cache entries that name layers no image uses (called by [`Store::prune`]
    /// too); returns how many.
    pub(crate) fn prune_cache_entries(&self) -> Result<usize> {
        let used: HashSet<String> = self.list()?.into_iter().flat_map(|r| r.layers).collect();
        let mut removed = 0;
        for (path, entry) in cache_entries(self) {
            let unused = entry.layer.as_ref().is_some_and(|l| !used.contains(&l.diff_id));
            if (unused || entry.layer.is_none()) && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Removes what builds whose process is gone left: their work directories (returned),
    /// half-written cache entries, and the store's `tmp/`.
    pub fn remove_stale_builds(&self) -> Vec<PathBuf> {
        let _ = self.clean_tmp_locked();
        for entry in std::fs::read_dir(cache_dir(self).join("steps")).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `.KEY.OWNER`: an entry being written; its owner's only if it still runs.
            if let Some(owner) = name.strip_prefix('.').and_then(|n| n.split_once('.')).map(|(_, o)| o)
                && !crate::runtime::tag_alive(owner)
            {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let mut removed = Vec::new();
        for entry in std::fs::read_dir(self.dir().join("builds")).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let owner = name.split('.').next().unwrap_or_default();
            if !crate::runtime::tag_alive(owner) && std::fs::remove_dir_all(entry.path()).is_ok() {
                removed.push(entry.path());
            }
        }
        removed
    }
}

/// One cache entry: the layer a step made (`None`: it changed nothing).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct CacheEntry {
    layer: Option<StoredLayer>,
    /// When the step ran (seconds since the epoch; `None` in entries older than this field).
    #[serde(default)]
    created: Option<u64>,
}

fn cache_dir(store: &Store) -> PathBuf {
    store.dir().join("build-cache")
}

fn cache_entries(store: &Store) -> Vec<(PathBuf, CacheEntry)> {
    let dir = cache_dir(store).join("steps");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let bytes = std::fs::read(e.path()).ok()?;
            Some((e.path(), serde_json::from_slice(&bytes).ok()?))
        })
        .collect()
}

/// What one step read, by name, as digests: compared with the last build's to say why a
/// step ran.
type Inputs = Vec<(String, String)>;

/// The last build of the same Dockerfile: each step's key, its parent's, and its inputs.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Log {
    steps: Vec<Logged>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Logged {
    line: usize,
    parent: String,
    key: String,
    inputs: Inputs,
}

/// A stage as built so far.
#[derive(Clone)]
struct State {
    /// The store image at the bottom of the `FROM` chain (`None` for `scratch`).
    base: Option<String>,
    /// Every layer directory, lowest first.
    layers: Vec<PathBuf>,
    /// History since `base`.
    history: Vec<NewLayer>,
    /// The image config's `config` object.
    config: Map<String, Value>,
    /// The cache key so far.
    key: String,
    /// The stage's `ARG`s and their values.
    args: Vec<(String, Option<String>)>,
    /// When its newest layer step ran: the image's `created` when nothing newer ran, so
    /// that a build all from the cache makes the same image (the same id) again, as
    /// Docker's does, and builds `FROM` it stay cached.
    newest: Option<u64>,
}

struct Build<'a> {
    store: &'a Store,
    options: &'a BuildOptions,
    file: String,
    recipe: Recipe,
    context: Context,
    hashes: PathBuf,
    work: PathBuf,
    steps_dir: PathBuf,
    log_path: PathBuf,
    last: Log,
    log: Log,
    leases: Vec<Flock<File>>,
    images: Vec<Image>,
    build_args: HashMap<String, String>,
    used_args: HashSet<String>,
    index: usize,
    total: usize,
    cached: usize,
    seq: usize,
}

impl<'a> Build<'a> {
    fn new(store: &'a Store, context: &Path, options: &'a BuildOptions) -> Result<Build<'a>> {
        if !nix::unistd::geteuid().is_root() {
            return Err(Error::config(
                "isolette build needs root: its steps run as root of a user namespace that maps the image's own \
                 ids, and its file steps mount the stage's layers; run it as root",
            ));
        }
        let dockerfile = options.dockerfile.clone().unwrap_or_else(|| context.join("Dockerfile"));
        let text = std::fs::read(&dockerfile).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::config(format!(
                "no Dockerfile at {}; give one with -f, or put a Dockerfile in the context",
                dockerfile.display()
            )),
            _ => Error::io("read", &dockerfile, e),
        })?;
        let file = dockerfile.display().to_string();
        let text = String::from_utf8(text).map_err(|_| Error::config(format!("{file} is not UTF-8 text")))?;
        let recipe = Recipe::parse(&text, &file)?;
        let context = Context::open(context, Some(&dockerfile))?;
        for name in &options.tags {
            crate::store::normalize_name(name)?;
        }
        let id = hex::encode(Sha256::digest(
            format!("{}\0{}\0{:?}", context.root().display(), file, options.target).as_bytes(),
        ));
        store.remove_stale_builds();
        let cache = cache_dir(store);
        let steps_dir = cache.join("steps");
        for dir in [&steps_dir, &cache.join("logs"), &cache.join("hashes")] {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("mkdir", dir, e))?;
        }
        // Builds' writable layers hold what their steps made as root: the owner's only.
        let builds = store.dir().join("builds");
        if std::fs::create_dir(&builds).is_ok() {
            std::fs::set_permissions(&builds, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .map_err(|e| Error::io("chmod", &builds, e))?;
        }
        let hashes = cache.join("hashes").join(&id[..32]);
        context.load_hashes(&hashes);
        let log_path = cache.join("logs").join(&id[..32]);
        let last = std::fs::read(&log_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let work = store.dir().join("builds").join(format!("{}.{seq}", crate::runtime::owner_tag()));
        std::fs::create_dir(&work).map_err(|e| Error::io("mkdir", &work, e))?;
        Ok(Build {
            store,
            options,
            file,
            recipe,
            context,
            hashes,
            work,
            steps_dir,
            log_path,
            last,
            log: Log::default(),
            leases: Vec::new(),
            images: Vec::new(),
            build_args: options.build_args.iter().cloned().collect(),
            used_args: HashSet::new(),
            index: 0,
            total: 0,
            cached: 0,
            seq: 0,
        })
    }

    /// Removes the work directory; keeps the content hashes for the next build.
    fn finish(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work);
        let _ = self.context.save_hashes(&self.hashes);
    }

    fn run(&mut self, progress: &mut dyn FnMut(&BuildEvent)) -> Result<BuildResult> {
        let globals: Vec<(String, Option<String>)> = self
            .recipe
            .args
            .iter()
            .map(|a| {
                let value = self.build_args.get(&a.name).cloned().or_else(|| a.default.clone());
                (a.name.clone(), value)
            })
            .collect();
        for (name, _) in &globals {
            if self.build_args.contains_key(name) {
                self.used_args.insert(name.clone());
            }
        }
        let escape = self.recipe.escape;
        let global_lookup = |name: &str| globals.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.clone());
        let expand_global = |w: &str| {
            words::expand(w, escape, &global_lookup).map_err(|e| Error::config(format!("{}: {e}", self.file)))
        };
        let target = self.recipe.target(self.options.target.as_deref())?;
        let needed = self.recipe.needed(target, &expand_global)?;
        self.total = needed.iter().map(|&i| self.recipe.stages[i].steps.len() + 1).sum();
        let mut done: HashMap<usize, State> = HashMap::new();
        for &i in &needed {
            let stage = self.recipe.stages[i].clone();
            let state = self.stage(i, &stage, &globals, &done, progress)?;
            done.insert(i, state);
        }
        for name in self.build_args.keys() {
            if !self.used_args.contains(name) {
                progress(&BuildEvent::Note(format!("build-arg {name} was given but no stage declares it (ARG)")));
            }
        }
        let state = done.remove(&target).ok_or_else(|| Error::config("the target stage was not built"))?;
        // A cancel that came with the last step's report still stores nothing.
        self.check_cancelled(
            self.recipe.stages[target].steps.last().map_or(self.recipe.stages[target].line, |s| s.line),
        )?;
        // Whole or not at all: another build of this Dockerfile may read it meanwhile.
        let tmp = self.log_path.with_extension(crate::runtime::owner_tag());
        if std::fs::write(&tmp, serde_json::to_vec(&self.log).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(&tmp, &self.log_path);
        }
        self.commit(state)
    }

    /// Stores the final stage under every name.
    fn commit(&mut self, state: State) -> Result<BuildResult> {
        let created = match (self.options.source_date_epoch, state.newest, &state.base) {
            (Some(secs), _, _) => rfc3339(secs),
            (None, Some(secs), _) => rfc3339(secs),
            // No layer of its own: as new as its base.
            (None, None, Some(base)) => {
                self.store.record(base)?.created.unwrap_or_else(|| rfc3339(crate::names::now()))
            }
            (None, None, None) => rfc3339(crate::names::now()),
        };
        let names = if self.options.tags.is_empty() {
            vec![format!("build:{}", &state.key[..12])]
        } else {
            self.options.tags.clone()
        };
        let config = state.config.clone();
        let edit = |c: &mut Map<String, Value>| *c = config.clone();
        let mut first = None;
        let mut stored = Vec::new();
        for name in &names {
            let record = self.store.commit(name, state.base.as_deref(), &state.history, &created, &edit)?;
            stored.push(record.name.clone());
            first.get_or_insert(record);
        }
        let image = first.ok_or_else(|| Error::config("no name to store the image under"))?;
        Ok(BuildResult { image, names: stored, steps: self.index, cached: self.cached })
    }

    /// Builds stage `i`.
    fn stage(
        &mut self,
        i: usize,
        stage: &Stage,
        globals: &[(String, Option<String>)],
        done: &HashMap<usize, State>,
        progress: &mut dyn FnMut(&BuildEvent),
    ) -> Result<State> {
        let escape = self.recipe.escape;
        let lookup = |name: &str| globals.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.clone());
        let image_word = words::expand(&stage.image, escape, &lookup).map_err(|e| self.bad(stage.line, e))?;
        let stage_name = stage.name.clone().unwrap_or_else(|| i.to_string());
        let started = Instant::now();
        let mut state = match self.recipe.stage_index(&image_word).filter(|&j| j < i) {
            Some(j) => done.get(&j).cloned().ok_or_else(|| self.bad(stage.line, "its base stage was not built"))?,
            None if image_word.eq_ignore_ascii_case("scratch") => State {
                base: None,
                layers: Vec::new(),
                history: Vec::new(),
                config: Map::new(),
                key: hex::encode(Sha256::digest(b"scratch")),
                args: Vec::new(),
                newest: None,
            },
            None => self.base_image(&image_word, stage.line, progress)?,
        };
        state.args.clear();
        self.report(progress, &stage_name, stage.line, &format!("FROM {}", stage.image), false, None, None, started);
        for step in &stage.steps {
            self.check_cancelled(step.line)?;
            let started = Instant::now();
            let text = describe(&step.instruction);
            let (cached, reason, layer) = self
                .step(&mut state, &step.instruction, step.line, done, progress)
                .map_err(|e| self.in_step(step.line, &text, e))?;
            // A config step is in the image's history too, as an empty layer (as Docker has it).
            let layer_step = matches!(
                step.instruction,
                Instruction::Run { .. } | Instruction::Copy(_) | Instruction::Add(_) | Instruction::Workdir(_)
            );
            if !layer_step && !matches!(step.instruction, Instruction::Arg(_)) {
                state.history.push(NewLayer { layer: None, created_by: text.clone() });
            }
            self.report(progress, &stage_name, step.line, &text, cached, reason, layer, started);
        }
        Ok(state)
    }

    /// A store image to start a stage from, pulled when the store lacks it.
    fn base_image(&mut self, name: &str, line: usize, progress: &mut dyn FnMut(&BuildEvent)) -> Result<State> {
        let record = match self.store.record(name) {
            Ok(r) => r,
            Err(e) => self.pull(name, line, e, progress)?,
        };
        let image = self.store.image(&record.name)?;
        let config = self.store.image_config(&record)?;
        let state = State {
            base: Some(record.name.clone()),
            layers: image.layers().to_vec(),
            history: Vec::new(),
            config,
            key: hex::encode(Sha256::digest(format!("image\0{}", record.id).as_bytes())),
            args: Vec::new(),
            newest: None,
        };
        self.images.push(image);
        Ok(state)
    }

    #[cfg(feature = "registry")]
    fn pull(
        &mut self,
        name: &str,
        line: usize,
        missing: Error,
        progress: &mut dyn FnMut(&BuildEvent),
    ) -> Result<ImageRecord> {
        if !matches!(missing, Error::Image { .. }) {
            return Err(missing);
        }
        progress(&BuildEvent::Note(format!("pulling {name}")));
        self.store
            .pull(name, &crate::registry::RegistryOptions::default(), &|_| {})
            .map_err(|e| self.bad(line, format!("FROM {name}: not in the store, and pulling it failed: {e}")))
    }

    #[cfg(not(feature = "registry"))]
    fn pull(&mut self, _: &str, _: usize, missing: Error, _: &mut dyn FnMut(&BuildEvent)) -> Result<ImageRecord> {
        Err(missing)
    }

    #[allow(clippy::too_many_arguments)]
    fn report(
        &mut self,
        progress: &mut dyn FnMut(&BuildEvent),
        stage: &str,
        line: usize,
        text: &str,
        cached: bool,
        reason: Option<String>,
        layer: Option<String>,
        started: Instant,
    ) {
        self.index += 1;
        if cached && reason.is_none() {
            self.cached += 1;
        }
        progress(&BuildEvent::Step(StepReport {
            index: self.index,
            total: self.total,
            stage: stage.to_string(),
            line,
            instruction: text.to_string(),
            cached: cached && reason.is_none(),
            reason,
            layer,
            seconds: started.elapsed().as_secs_f64(),
        }));
    }

    /// The error of a cancelled build, at the step it had reached.
    fn check_cancelled(&self, line: usize) -> Result<()> {
        if self.options.canceller.as_ref().is_some_and(|c| c.is_cancelled()) {
            return Err(Error::Build {
                file: self.file.clone(),
                line,
                instruction: "the build".into(),
                reason: "cancelled".into(),
                exit_code: None,
            });
        }
        Ok(())
    }

    fn bad(&self, line: usize, why: impl std::fmt::Display) -> Error {
        Error::config(format!("{} line {line}: {why}", self.file))
    }

    /// A step's error, with its line unless it names one already.
    fn in_step(&self, line: usize, text: &str, e: Error) -> Error {
        match e {
            Error::Build { .. } => e,
            Error::Config(m) if m.starts_with(&self.file) => Error::Config(m),
            Error::Config(m) => self.bad(line, format!("{text}: {m}")),
            other => Error::Build {
                file: self.file.clone(),
                line,
                instruction: text.to_string(),
                reason: other.to_string(),
                exit_code: None,
            },
        }
    }

    /// The value of `name` in the stage: its `ENV`, else its `ARG`.
    fn lookup(state: &State, name: &str) -> Option<String> {
        env_list(&state.config)
            .iter()
            .rev()
            .find_map(|e| e.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
            .or_else(|| state.args.iter().find(|(n, _)| n == name).and_then(|(_, v)| v.clone()))
    }

    fn expand(&self, state: &State, word: &str) -> Result<String> {
        words::expand(word, self.recipe.escape, &|n| Self::lookup(state, n)).map_err(Error::config)
    }

    /// Runs one step; returns whether the cache answered, why it ran, and its layer.
    fn step(
        &mut self,
        state: &mut State,
        instruction: &Instruction,
        line: usize,
        done: &HashMap<usize, State>,
        progress: &mut dyn FnMut(&BuildEvent),
    ) -> Result<(bool, Option<String>, Option<String>)> {
        let config_only = |state: &mut State, key: &str, value: Value| {
            state.config.insert(key.into(), value);
            Ok((false, None, None))
        };
        match instruction {
            Instruction::Arg(decls) => {
                for ArgDecl { name, default } in decls {
                    let value = match (self.build_args.get(name), default) {
                        (Some(v), _) => Some(v.clone()),
                        (None, Some(d)) => Some(self.expand(state, d)?),
                        (None, None) => self
                            .recipe
                            .args
                            .iter()
                            .find(|a| &a.name == name)
                            .and_then(|a| self.build_args.get(&a.name).cloned().or_else(|| a.default.clone())),
                    };
                    if self.build_args.contains_key(name) {
                        self.used_args.insert(name.clone());
                    }
                    state.args.retain(|(n, _)| n != name);
                    state.args.push((name.clone(), value));
                }
                Ok((false, None, None))
            }
            Instruction::Env(pairs) => {
                let mut env = env_list(&state.config);
                for (k, v) in pairs {
                    let v = self.expand(state, v)?;
                    env.retain(|e| e.split_once('=').is_none_or(|(name, _)| name != k));
                    env.push(format!("{k}={v}"));
                    state.config.insert("Env".into(), json!(env));
                }
                Ok((false, None, None))
            }
            Instruction::Label(pairs) => {
                let mut labels = state.config.get("Labels").and_then(Value::as_object).cloned().unwrap_or_default();
                for (k, v) in pairs {
                    labels.insert(self.expand(state, k)?, self.expand(state, v)?.into());
                }
                config_only(state, "Labels", Value::Object(labels))
            }
            Instruction::User(user) => {
                let user = self.expand(state, user)?;
                config_only(state, "User", user.into())
            }
            Instruction::Cmd(command) => {
                let argv = self.argv(state, command);
                config_only(state, "Cmd", json!(argv))
            }
            Instruction::Entrypoint(command) => {
                let argv = self.argv(state, command);
                state.config.insert("Cmd".into(), Value::Null);
                config_only(state, "Entrypoint", json!(argv))
            }
            Instruction::Expose(ports) => {
                let mut exposed =
                    state.config.get("ExposedPorts").and_then(Value::as_object).cloned().unwrap_or_default();
                for port in ports {
                    let port = self.expand(state, port)?;
                    let port = if port.contains('/') { port } else { format!("{port}/tcp") };
                    exposed.insert(port, json!({}));
                }
                config_only(state, "ExposedPorts", Value::Object(exposed))
            }
            Instruction::StopSignal(signal) => {
                let signal = self.expand(state, signal)?;
                config_only(state, "StopSignal", signal.into())
            }
            Instruction::Shell(argv) => config_only(state, "Shell", json!(argv)),
            Instruction::Volume(paths) => {
                let mut volumes = state.config.get("Volumes").and_then(Value::as_object).cloned().unwrap_or_default();
                for path in paths {
                    volumes.insert(self.expand(state, path)?, json!({}));
                }
                config_only(state, "Volumes", Value::Object(volumes))
            }
            Instruction::Healthcheck(check) => {
                let value = match check {
                    None => json!({ "Test": ["NONE"] }),
                    Some((command, options)) => healthcheck(command, options)?,
                };
                config_only(state, "Healthcheck", value)
            }
            Instruction::Workdir(dir) => {
                let dir = self.expand(state, dir)?;
                let dir = absolute(&workdir(state), &dir);
                state.config.insert("WorkingDir".into(), dir.clone().into());
                // What it makes belongs to the stage's user, as BuildKit does it.
                let owner = self.user_ids(state)?;
                let inputs = vec![("workdir".to_string(), dir.clone()), ("user".to_string(), format!("{owner:?}"))];
                let key = step_key(&state.key, &inputs_text(&inputs));
                let path = PathBuf::from(&dir);
                self.layer_step(state, line, key, inputs, &format!("WORKDIR {dir}"), |b, state, step| {
                    b.file_step(state, step, Vec::new(), |root| tree::make_dirs(root, &path, owner).map(drop))
                })
            }
            Instruction::Copy(t) | Instruction::Add(t) => {
                let add = matches!(instruction, Instruction::Add(_));
                self.transfer(state, t, add, line, done, progress)
            }
            Instruction::Run { command, network, heredocs } => {
                self.run_step(state, command, *network, heredocs, line, progress)
            }
        }
    }

    /// A `CMD`'s or `ENTRYPOINT`'s argv: the exec form as written, the shell form through
    /// the stage's `SHELL`.
    fn argv(&self, state: &State, command: &Command) -> Vec<String> {
        match command {
            Command::Exec(argv) => argv.clone(),
            Command::Shell(line) => {
                let mut argv = shell(state);
                argv.push(line.clone());
                argv
            }
        }
    }

    /// A step that makes a layer: answered from the cache under `key`, or run by `make`
    /// (which fills the step's writable layer).
    #[allow(clippy::too_many_arguments)]
    fn layer_step(
        &mut self,
        state: &mut State,
        line: usize,
        key: String,
        inputs: Inputs,
        created_by: &str,
        make: impl FnOnce(&mut Self, &State, &Path) -> Result<()>,
    ) -> Result<(bool, Option<String>, Option<String>)> {
        let entry_path = self.steps_dir.join(&key);
        // A hit holds its layer (leased, so that no prune takes it from here on) or none.
        let hit = (!self.options.no_cache)
            .then(|| std::fs::read(&entry_path).ok())
            .flatten()
            .and_then(|b| serde_json::from_slice::<CacheEntry>(&b).ok())
            .and_then(|e| match &e.layer {
                None => Some((e, None)),
                Some(l) => {
                    let lease = self.store.lease(&l.diff_id).ok()?;
                    self.store.has_layer(l).then_some((e, Some(lease)))
                }
            });
        let reason = if hit.is_some() { None } else { Some(self.why(line, &state.key, &key, &inputs)) };
        self.log.steps.push(Logged { line, parent: state.key.clone(), key: key.clone(), inputs });
        let (entry, lease) = match hit {
            // An entry from before entries kept their time gets one now, once.
            Some((entry, lease)) if entry.created.is_none() => {
                let entry = CacheEntry { created: Some(crate::names::now()), ..entry };
                self.keep_entry(&key, &entry)?;
                (entry, lease)
            }
            Some(hit) => hit,
            None => {
                self.seq += 1;
                let step = self.work.join(format!("step-{}", self.seq));
                std::fs::create_dir(&step).map_err(|e| Error::io("mkdir", &step, e))?;
                make(self, state, &step)?;
                let (layer, lease) = self.keep_layer(&step)?.unzip();
                let entry = CacheEntry { layer, created: Some(crate::names::now()) };
                self.keep_entry(&key, &entry)?;
                let _ = std::fs::remove_dir_all(&step);
                (entry, lease)
            }
        };
        state.key = key;
        state.newest = state.newest.max(Some(entry.created.unwrap_or_else(crate::names::now)));
        let layer = entry.layer.clone();
        self.leases.extend(lease);
        if let Some(layer) = &layer {
            state.layers.push(self.store.layer_path(&layer.diff_id));
        }
        state.history.push(NewLayer { layer: layer.clone(), created_by: created_by.to_string() });
        Ok((reason.is_none(), reason, layer.map(|l| l.diff_id)))
    }

    /// Stores a cache entry whole (another build may read it meanwhile).
    fn keep_entry(&self, key: &str, entry: &CacheEntry) -> Result<()> {
        let path = self.steps_dir.join(key);
        let tmp = self.steps_dir.join(format!(".{key}.{}", crate::runtime::owner_tag()));
        let bytes = serde_json::to_vec(entry).unwrap_or_default();
        std::fs::write(&tmp, bytes).map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename", &path, e))
    }

    /// The step's writable layer as a layer in the store, leased (`None` when it holds
    /// nothing).
    fn keep_layer(&self, step: &Path) -> Result<Option<(StoredLayer, Flock<File>)>> {
        let upper = step.join("upper");
        std::fs::create_dir_all(&upper).map_err(|e| Error::io("mkdir", &upper, e))?;
        let tar_path = step.join("layer.tar");
        let tar = File::create(&tar_path).map_err(|e| Error::io("create", &tar_path, e))?;
        let epoch = self.options.source_date_epoch;
        let summary = write_layer(&upper, std::io::BufWriter::new(tar), epoch)?;
        if summary.entries == 0 {
            return Ok(None);
        }
        self.store.add_layer_leased(&tar_path, Some(&upper), epoch).map(Some)
    }

    /// Why a step missed the cache, from the last build's log.
    fn why(&self, line: usize, parent: &str, key: &str, inputs: &Inputs) -> String {
        if self.options.no_cache {
            return "--no-cache".into();
        }
        let Some(last) = self.last.steps.iter().find(|s| s.line == line) else {
            return "not in the cache".into();
        };
        if last.key == key {
            return "not in the cache (pruned)".into();
        }
        let before: HashMap<&str, &str> = last.inputs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let now: HashMap<&str, &str> = inputs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut changed: Vec<String> = Vec::new();
        for (name, value) in inputs {
            if before.get(name.as_str()) != Some(&value.as_str()) {
                changed.push(describe_input(name));
            }
        }
        for (name, _) in &last.inputs {
            if !now.contains_key(name.as_str()) {
                changed.push(describe_input(name));
            }
        }
        changed.retain(|c| !c.is_empty());
        changed.dedup();
        match changed.len() {
            0 if last.parent != parent => "a step before it changed".into(),
            0 => "not in the cache".into(),
            1..=3 => changed.join(", "),
            n => format!("{}, and {} more", changed[..3].join(", "), n - 3),
        }
    }

    /// `COPY` or `ADD`.
    fn transfer(
        &mut self,
        state: &mut State,
        t: &Transfer,
        add: bool,
        line: usize,
        done: &HashMap<usize, State>,
        progress: &mut dyn FnMut(&BuildEvent),
    ) -> Result<(bool, Option<String>, Option<String>)> {
        let keyword = if add { "ADD" } else { "COPY" };
        let dest_word = self.expand(state, &t.dest)?;
        let dest = absolute(&workdir(state), &dest_word);
        let chmod = t
            .chmod
            .as_deref()
            .map(|m| {
                u32::from_str_radix(m, 8).map_err(|_| Error::config(format!("--chmod={m}: give octal bits like 644")))
            })
            .transpose()?;
        let owner = match &t.chown {
            None => (0, 0),
            Some(spec) => {
                let spec = self.expand(state, spec)?;
                self.resolve_user(state, &spec)?
            }
        };
        let heredocs: Vec<&crate::build::HereDoc> =
            t.sources.iter().filter_map(|s| if let Source::HereDoc(h) = s { Some(h) } else { None }).collect();
        let paths: Vec<String> = t
            .sources
            .iter()
            .filter_map(|s| if let Source::Path(p) = s { Some(p) } else { None })
            .map(|p| self.expand(state, p))
            .collect::<Result<_>>()?;
        if !heredocs.is_empty() && !paths.is_empty() {
            return Err(Error::config(format!("{keyword}: here-documents and files in one step are not taken")));
        }
        let into_dir = dest_word.ends_with('/') || paths.len() > 1 || paths.iter().any(|p| has_glob(p));
        let mut inputs: Inputs =
            vec![("dest".into(), format!("{dest} {into_dir} {owner:?} {chmod:?}")), ("kind".into(), keyword.into())];
        let created_by = format!("{keyword} {} {}", paths.join(" "), dest);
        if !heredocs.is_empty() {
            let bodies: Vec<String> = heredocs
                .iter()
                .map(|h| if h.expand { self.expand(state, &h.body) } else { Ok(h.body.clone()) })
                .collect::<Result<_>>()?;
            inputs.push(("heredoc".into(), hex::encode(Sha256::digest(bodies.join("\0").as_bytes()))));
            let key = step_key(&state.key, &inputs_text(&inputs));
            let file = PathBuf::from(&dest);
            return self.layer_step(state, line, key, inputs, &created_by, |b, state, step| {
                let body = bodies.concat();
                b.file_step(state, step, Vec::new(), move |root| {
                    let parent = file.parent().unwrap_or(Path::new("/"));
                    let name = file.file_name().ok_or_else(|| Error::config("a here-document needs a file name"))?;
                    let target = tree::make_dirs(root, parent, owner)?.join(name);
                    std::fs::write(&target, body).map_err(|e| Error::io("write", &target, e))?;
                    std::os::unix::fs::chown(&target, Some(owner.0), Some(owner.1))
                        .map_err(|e| Error::io("chown", &target, e))?;
                    std::fs::set_permissions(
                        &target,
                        std::os::unix::fs::PermissionsExt::from_mode(chmod.unwrap_or(0o644)),
                    )
                    .map_err(|e| Error::io("chmod", &target, e))
                })
            });
        }
        match &t.from {
            None => {
                let selection = self.context.select(&paths, chmod)?;
                for entry in &selection.entries {
                    let rel = entry.path.strip_prefix(self.context.root()).unwrap_or(&entry.path);
                    inputs.push((format!("file:{}", rel.display()), entry.digest.clone()));
                }
                inputs.push(("files".into(), selection.digest.clone()));
                let key = step_key(&state.key, &inputs_text(&inputs));
                let entries = selection.entries;
                let dest = PathBuf::from(dest);
                self.layer_step(state, line, key, inputs, &created_by, |b, state, step| {
                    b.file_step(state, step, Vec::new(), |root| {
                        let attrs = tree::Attrs { owner, chmod };
                        if add {
                            let (tars, files): (Vec<_>, Vec<_>) = entries
                                .into_iter()
                                .partition(|e| e.rel.as_os_str().is_empty() && tree::is_tar(&e.path));
                            for archive in tars {
                                tree::extract(root, &archive.path, &dest, owner)?;
                            }
                            tree::copy_entries(root, &files, &dest, into_dir, attrs)
                        } else {
                            tree::copy_entries(root, &entries, &dest, into_dir, attrs)
                        }
                    })
                })
            }
            Some(from) => {
                let from = self.expand(state, from)?;
                let source = match self.recipe.stage_index(&from) {
                    Some(j) => done.get(&j).cloned().ok_or_else(|| {
                        Error::config(format!("--from={from}: that stage comes later or was not built"))
                    })?,
                    None => self.base_image(&from, line, progress)?,
                };
                inputs.push(("from".into(), source.key.clone()));
                inputs.push(("sources".into(), paths.join("\0")));
                let key = step_key(&state.key, &inputs_text(&inputs));
                let dest = PathBuf::from(dest);
                self.layer_step(state, line, key, inputs, &created_by, |b, state, step| {
                    let from_root = step.join("from");
                    let mount = tree::Mount { target: from_root.clone(), lower: source.layers.clone(), upper: None };
                    b.file_step(state, step, vec![mount], |root| {
                        let context = Context::tree(&from_root)?;
                        let selection = context.select(&paths, chmod)?;
                        tree::copy_entries(root, &selection.entries, &dest, into_dir, tree::Attrs { owner, chmod })
                    })
                })
            }
        }
    }

    /// Runs `work` with the stage's tree mounted (its writable layer in `step`) at
    /// `step/tree`, and `more` beside it.
    fn file_step(
        &self,
        state: &State,
        step: &Path,
        more: Vec<tree::Mount>,
        work: impl FnOnce(&Path) -> Result<()> + Send,
    ) -> Result<()> {
        let root = step.join("tree");
        let mut mounts =
            vec![tree::Mount { target: root.clone(), lower: state.layers.clone(), upper: Some(step.to_path_buf()) }];
        mounts.extend(more);
        tree::with_mounts(&mounts, || work(&root))
    }

    /// The ids of the stage's `USER` (root when it has none).
    fn user_ids(&self, state: &State) -> Result<(u32, u32)> {
        match state.config.get("User").and_then(Value::as_str).filter(|u| !u.is_empty()) {
            None => Ok((0, 0)),
            Some(user) => self.resolve_user(state, user),
        }
    }

    /// `USER`/`--chown` text to ids, with the stage's `/etc/passwd` and `/etc/group`.
    fn resolve_user(&self, state: &State, spec: &str) -> Result<(u32, u32)> {
        if state.layers.is_empty() {
            let id = |s: &str| if s == "root" { Ok(0) } else { s.parse::<u32>() };
            let (u, g) = spec.split_once(':').unwrap_or((spec, spec));
            return match (id(u), id(g)) {
                (Ok(u), Ok(g)) => Ok((u, g)),
                _ => Err(Error::config(format!("user `{spec}`: a stage from scratch has no /etc/passwd; use numbers"))),
            };
        }
        Image::from_layers(&state.layers)?.resolve_user(spec)
    }

    /// A `RUN` step.
    fn run_step(
        &mut self,
        state: &mut State,
        command: &Command,
        network: Option<RunNetwork>,
        heredocs: &[crate::build::HereDoc],
        line: usize,
        progress: &mut dyn FnMut(&BuildEvent),
    ) -> Result<(bool, Option<String>, Option<String>)> {
        let argv = match command {
            Command::Exec(argv) => argv.clone(),
            Command::Shell(text) => {
                let mut argv = shell(state);
                argv.push(script(text, heredocs));
                argv
            }
        };
        if argv.first().is_none_or(String::is_empty) {
            return Err(Error::config("RUN needs a command"));
        }
        let mut env: Vec<(String, String)> = Vec::new();
        for (name, value) in &state.args {
            if let Some(v) = value {
                env.push((name.clone(), v.clone()));
            }
        }
        for entry in env_list(&state.config) {
            if let Some((k, v)) = entry.split_once('=') {
                env.retain(|(n, _)| n != k);
                env.push((k.to_string(), v.to_string()));
            }
        }
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        let ids = self.user_ids(state)?;
        let dir = workdir(state);
        let offline = self.options.network == BuildNetwork::None || network == Some(RunNetwork::None);
        let mut inputs: Inputs = vec![
            ("command".into(), argv.join("\0")),
            ("user".into(), format!("{ids:?}")),
            ("workdir".into(), dir.clone()),
            ("network".into(), if offline { "none".into() } else { "outbound".into() }),
        ];
        let env_names: HashSet<String> =
            env_list(&state.config).iter().filter_map(|e| e.split_once('=')).map(|(k, _)| k.to_string()).collect();
        for (k, v) in &env {
            let kind = if env_names.contains(k) { "env" } else { "arg" };
            inputs.push((format!("{kind}:{k}"), v.clone()));
        }
        let key = step_key(&state.key, &inputs_text(&inputs));
        let created_by = format!("RUN {}", argv.last().cloned().unwrap_or_default());
        let index = self.index + 1;
        self.layer_step(state, line, key, inputs, &created_by, |b, state, step| {
            b.sandbox_run(state, step, &argv, &env, ids, &dir, offline, index, line, progress)
        })
    }

    /// Runs a `RUN`'s command in a sandbox whose writable layer is `step`.
    #[allow(clippy::too_many_arguments)]
    fn sandbox_run(
        &self,
        state: &State,
        step: &Path,
        argv: &[String],
        env: &[(String, String)],
        ids: (u32, u32),
        dir: &str,
        offline: bool,
        index: usize,
        line: usize,
        progress: &mut dyn FnMut(&BuildEvent),
    ) -> Result<()> {
        if state.layers.is_empty() {
            return Err(Error::config("RUN in a stage from scratch: there is no program to run"));
        }
        let image = Image::from_layers(&state.layers)?.with_config(ImageConfig::default());
        let mut b = Sandbox::builder(&image)
            .build_root()
            .writable_layer(step)
            .entrypoint(Vec::<String>::new())
            .user(ids.0, ids.1)
            .workdir(dir)
            .hostname("isolette-build")
            .memory(self.options.memory.unwrap_or(RUN_MEMORY))
            .wall_time(self.options.wall_time.unwrap_or(RUN_WALL_TIME))
            .pids(RUN_PIDS)
            .nofile(nofile_cap())
            .stdout(Output::Pipe)
            .stderr(Output::Pipe)
            .network(if offline { Network::None } else { Network::Outbound });
        if let Some(cpu) = self.options.cpu_time {
            b = b.cpu_time(cpu);
        }
        if let Some(canceller) = &self.options.canceller {
            b = b.canceller(canceller);
        }
        for (k, v) in env {
            b = b.env(k, v);
        }
        let mut running = b.spawn(argv)?;
        let (tx, rx) = std::sync::mpsc::channel::<(Stream, Vec<u8>)>();
        let mut readers = Vec::new();
        for (stream, pipe) in [(Stream::Stdout, running.take_stdout()), (Stream::Stderr, running.take_stderr())] {
            let Some(mut pipe) = pipe else { continue };
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 16384];
                while let Ok(n) = std::io::Read::read(&mut pipe, &mut buf) {
                    if n == 0 || tx.send((stream, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }));
        }
        drop(tx);
        let mut tail: Vec<u8> = Vec::new();
        for (stream, data) in rx {
            tail.extend_from_slice(&data);
            if tail.len() > 4096 {
                tail.drain(..tail.len() - 2048);
            }
            progress(&BuildEvent::Output { index, stream, data });
        }
        for r in readers {
            let _ = r.join();
        }
        let outcome = running.wait()?;
        if outcome.status == crate::Status::Ok {
            return Ok(());
        }
        let last: String = String::from_utf8_lossy(&tail)
            .lines()
            .rev()
            .take(5)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        let what = match outcome.exit_code {
            Some(code) => format!("the command exited with code {code}"),
            None => format!("the command ended with `{}`", outcome.status),
        };
        Err(Error::Build {
            file: self.file.clone(),
            line,
            instruction: format!("RUN {}", shorten(argv.last().map_or("", String::as_str))),
            reason: if last.is_empty() { what } else { format!("{what}; its last output:\n{last}") },
            exit_code: outcome.exit_code,
        })
    }
}

/// [`RUN_NOFILE`], or the caller's own hard limit when that is lower.
fn nofile_cap() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(RUN_NOFILE, |(_, hard)| hard.min(RUN_NOFILE))
}

/// A step's key: sha256 over the parent key and the step's parts, each delimited.
fn step_key(parent: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(parent.as_bytes());
    for p in parts {
        h.update([0]);
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

fn inputs_text(inputs: &Inputs) -> Vec<&str> {
    inputs.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]).collect()
}

fn describe_input(name: &str) -> String {
    match name.split_once(':') {
        Some(("file", path)) => format!("changed: {path}"),
        Some(("arg", arg)) => format!("build-arg {arg}"),
        Some(("env", var)) => format!("env {var}"),
        // The files' digest stands behind the `file:` entries, which say which changed.
        _ if name == "files" => String::new(),
        _ => format!("{name} changed"),
    }
}

/// The image config's `Env` list.
fn env_list(config: &Map<String, Value>) -> Vec<String> {
    config
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

fn workdir(state: &State) -> String {
    state.config.get("WorkingDir").and_then(Value::as_str).filter(|w| !w.is_empty()).unwrap_or("/").to_string()
}

fn shell(state: &State) -> Vec<String> {
    state
        .config
        .get("Shell")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
}

/// `path` made absolute against the working directory `dir`, `.` and `..` resolved.
fn absolute(dir: &str, path: &str) -> String {
    let joined = if path.starts_with('/') { path.to_string() } else { format!("{dir}/{path}") };
    match crate::build::clean_parts(&joined).0.as_str() {
        "." => "/".to_string(),
        clean => format!("/{clean}"),
    }
}

fn has_glob(path: &str) -> bool {
    path.contains(['*', '?', '['])
}

/// The shell script of a shell-form `RUN`. A `RUN <<EOF` here-document is the script
/// itself; with words after its delimiter (`RUN <<EOF python3`), they are the command and
/// the document its stdin.
fn script(text: &str, heredocs: &[crate::build::HereDoc]) -> String {
    match heredocs.first() {
        None => text.to_string(),
        Some(doc) if text.trim().is_empty() => doc.body.clone(),
        Some(doc) => {
            const END: &str = "ISOLETTE_HEREDOC_END";
            let open = if doc.expand { END.to_string() } else { format!("'{END}'") };
            let newline = if doc.body.ends_with('\n') || doc.body.is_empty() { "" } else { "\n" };
            format!("{} <<{open}\n{}{newline}{END}\n", text.trim(), doc.body)
        }
    }
}

/// A `HEALTHCHECK`'s config object, with Docker's option names and defaults left out.
fn healthcheck(command: &Command, options: &[(String, String)]) -> Result<Value> {
    let test = match command {
        Command::Exec(argv) => std::iter::once("CMD".to_string()).chain(argv.iter().cloned()).collect::<Vec<_>>(),
        Command::Shell(line) => vec!["CMD-SHELL".into(), line.clone()],
    };
    let mut check = json!({ "Test": test });
    for (name, value) in options {
        let field = match name.as_str() {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => {
                let n: u64 = value.parse().map_err(|_| Error::config(format!("HEALTHCHECK --retries={value}")))?;
                check["Retries"] = n.into();
                continue;
            }
            other => return Err(Error::config(format!("HEALTHCHECK --{other}: not an option"))),
        };
        let d = humantime::parse_duration(value)
            .map_err(|_| Error::config(format!("HEALTHCHECK --{name}={value}: give a duration like 30s")))?;
        check[field] = (d.as_nanos() as u64).into();
    }
    Ok(check)
}

/// The step's first line, shortened, for progress and history.
fn describe(instruction: &Instruction) -> String {
    let text = match instruction {
        Instruction::Run { command, heredocs, .. } if !heredocs.is_empty() => {
            format!("RUN <<here-document {}", command_text(command).trim())
        }
        Instruction::Run { command, .. } => format!("RUN {}", command_text(command)),
        Instruction::Copy(t) => format!("COPY {}", transfer_text(t)),
        Instruction::Add(t) => format!("ADD {}", transfer_text(t)),
        Instruction::Workdir(d) => format!("WORKDIR {d}"),
        Instruction::Env(pairs) => format!("ENV {}", pairs_text(pairs)),
        Instruction::Arg(args) => format!("ARG {}", args.iter().map(|a| a.name.clone()).collect::<Vec<_>>().join(" ")),
        Instruction::User(u) => format!("USER {u}"),
        Instruction::Cmd(c) => format!("CMD {}", command_text(c)),
        Instruction::Entrypoint(c) => format!("ENTRYPOINT {}", command_text(c)),
        Instruction::Expose(p) => format!("EXPOSE {}", p.join(" ")),
        Instruction::Label(pairs) => format!("LABEL {}", pairs_text(pairs)),
        Instruction::StopSignal(s) => format!("STOPSIGNAL {s}"),
        Instruction::Shell(s) => format!("SHELL {s:?}"),
        Instruction::Healthcheck(Some((c, _))) => format!("HEALTHCHECK CMD {}", command_text(c)),
        Instruction::Healthcheck(None) => "HEALTHCHECK NONE".into(),
        Instruction::Volume(v) => format!("VOLUME {}", v.join(" ")),
    };
    shorten(&text)
}

fn command_text(c: &Command) -> String {
    match c {
        Command::Exec(argv) => format!("{argv:?}"),
        Command::Shell(line) => line.clone(),
    }
}

fn transfer_text(t: &Transfer) -> String {
    let sources: Vec<String> = t
        .sources
        .iter()
        .map(|s| match s {
            Source::Path(p) => p.clone(),
            Source::HereDoc(_) => "<<here-document".into(),
        })
        .collect();
    let from = t.from.as_ref().map(|f| format!("--from={f} ")).unwrap_or_default();
    format!("{from}{} {}", sources.join(" "), t.dest)
}

fn pairs_text(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

fn shorten(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() > 80 {
        format!("{}...", line.chars().take(77).collect::<String>())
    } else if text.lines().nth(1).is_some() {
        format!("{line} ...")
    } else {
        line.to_string()
    }
}

/// `secs` since the epoch as RFC 3339 (`1970-01-01T00:00:00Z`).
fn rfc3339(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_against_the_working_directory() {
        assert_eq!(absolute("/app", "src/"), "/app/src");
        assert_eq!(absolute("/app", "/etc/x"), "/etc/x");
        assert_eq!(absolute("/app", "../../x"), "/x");
        assert_eq!(absolute("/", "."), "/");
    }

    #[test]
    fn here_document_scripts() {
        let doc = |body: &str| crate::build::HereDoc { body: body.into(), expand: true };
        assert_eq!(script("", &[doc("echo hi\n")]), "echo hi\n", "a document alone is the script");
        assert_eq!(
            script(" python3", &[doc("print(1)")]),
            "python3 <<ISOLETTE_HEREDOC_END\nprint(1)\nISOLETTE_HEREDOC_END\n"
        );
        assert_eq!(script("echo plain", &[]), "echo plain");
    }

    #[test]
    fn keys_and_reasons() {
        assert_ne!(step_key("a", &["x", "y"]), step_key("a", &["xy"]), "parts are delimited");
        assert_eq!(describe_input("file:app/main.py"), "changed: app/main.py");
        assert_eq!(describe_input("arg:V"), "build-arg V");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        let check = healthcheck(&Command::Shell("true".into()), &[("interval".into(), "5s".into())]).unwrap();
        assert_eq!(check["Interval"], 5_000_000_000u64);
        assert_eq!(check["Test"][0], "CMD-SHELL");
    }
}
