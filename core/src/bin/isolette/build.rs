//! `isolette build`: an image from a Dockerfile (core's `Store::build`), with each step's
//! line as it ends (`CACHED`, or why it ran) and a `RUN`'s output on stderr; with `--json`,
//! one object per step and the result on stdout. `isolette builder prune` frees the cache.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use isolette::build::{BuildEvent, BuildNetwork, BuildOptions};

use crate::flags::{duration, open_store, size};
use crate::report::{human, print_json, short_id};

/// `isolette build` flags.
#[derive(Args)]
pub(crate) struct BuildArgs {
    /// Store the image as NAME[:TAG] (repeatable).
    #[arg(long = "tag", short = 't')]
    tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile).
    #[arg(long = "file", short = 'f')]
    file: Option<PathBuf>,
    /// A build-time variable, NAME=VALUE (repeatable).
    #[arg(long = "build-arg", value_parser = pair)]
    build_args: Vec<(String, String)>,
    /// Build this stage (default: the last).
    #[arg(long)]
    target: Option<String>,
    /// Run every step, whatever the cache holds.
    #[arg(long)]
    no_cache: bool,
    /// The network of RUN steps: outbound (the default) or none.
    #[arg(long, default_value = "outbound", value_parser = network)]
    network: BuildNetwork,
    /// Clamp new files' times and set the image's times to this (seconds since 1970), for
    /// the same image digest from the same context (default: $SOURCE_DATE_EPOCH).
    #[arg(long)]
    source_date_epoch: Option<u64>,
    /// Memory limit of each RUN (default 4G).
    #[arg(long, value_parser = size)]
    memory: Option<u64>,
    /// CPU time limit of each RUN.
    #[arg(long, value_parser = duration)]
    cpu_time: Option<Duration>,
    /// Wall-clock limit of each RUN (default 1h).
    #[arg(long, value_parser = duration)]
    wall_time: Option<Duration>,
    /// auto or plain: both print each step's line and a RUN's output on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressMode,
    /// One JSON object per step, and the result, on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// The build context directory.
    context: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProgressMode {
    Auto,
    Plain,
}

/// `isolette builder` subcommands.
#[derive(Subcommand)]
pub(crate) enum BuilderCommand {
    /// Remove the build cache entries no image uses, and their layers.
    Prune,
}

fn pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        // `--build-arg NAME` takes the value from the environment, as Docker does.
        None if !s.is_empty() => std::env::var(s).map(|v| (s.to_string(), v)).map_err(|_| format!("{s} is not set")),
        _ => Err(format!("`{s}`: give NAME=VALUE")),
    }
}

fn network(s: &str) -> Result<BuildNetwork, String> {
    s.parse().map_err(|e: isolette::Error| e.to_string())
}

/// Runs `isolette build`.
pub(crate) fn build(store: Option<PathBuf>, args: BuildArgs) -> isolette::Result<()> {
    let store = open_store(store)?;
    let mut options = BuildOptions::default();
    options.dockerfile = args.file;
    options.tags = args.tags;
    options.build_args = args.build_args;
    options.target = args.target;
    options.no_cache = args.no_cache;
    options.network = args.network;
    options.source_date_epoch =
        args.source_date_epoch.or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|v| v.trim().parse().ok()));
    options.memory = args.memory;
    options.cpu_time = args.cpu_time;
    options.wall_time = args.wall_time;
    options.canceller = Some(crate::report::cancel_on_signals(|| eprintln!("isolette build: stopping"))?);
    let _ = args.progress;
    let json = args.json;
    let mut progress = |event: &BuildEvent| match event {
        BuildEvent::Step(step) if json => print_json(&step.to_json()),
        BuildEvent::Step(step) => eprintln!("{}", step.to_line()),
        BuildEvent::Output { data, .. } => {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(data);
            let _ = err.flush();
        }
        BuildEvent::Note(note) => eprintln!("isolette build: {note}"),
        _ => {}
    };
    let result = store.build(&args.context, &options, &mut progress)?;
    if json {
        print_json(&serde_json::json!({ "status": "built", "image": result.to_json() }));
    } else {
        eprintln!(
            "built {} ({} layers, {}; {} of {} steps cached) as {}",
            short_id(&result.image.id),
            result.image.layers.len(),
            human(result.image.size),
            result.cached,
            result.steps,
            result.names.join(", ")
        );
    }
    Ok(())
}

/// `isolette gc`'s part for builds: what killed builds left in the store, and the cache's
/// size (a store that does not exist has neither).
pub(crate) fn gc(store: Option<PathBuf>) {
    let dir = store.unwrap_or_else(isolette::Store::default_dir);
    if !dir.is_dir() {
        return;
    }
    let Ok(store) = isolette::Store::open(dir) else { return };
    for dir in store.remove_stale_builds() {
        println!("removed {}", dir.display());
    }
    if let Ok((entries, bytes)) = store.build_cache() {
        println!(
            "build cache: {entries} entries, {} in layers no image uses (`isolette builder prune` frees them)",
            human(bytes)
        );
    }
}

/// Runs `isolette builder prune`.
pub(crate) fn builder(store: Option<PathBuf>, cmd: BuilderCommand) -> isolette::Result<()> {
    let store = open_store(store)?;
    match cmd {
        BuilderCommand::Prune => {
            let removed = store.prune_build_cache()?;
            println!("removed {removed} build cache entr{}", if removed == 1 { "y" } else { "ies" });
        }
    }
    Ok(())
}
