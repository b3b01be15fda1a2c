//! `isolette`: the command-line front end of the isolette library.
//!
//! `isolette run` runs one command in a sandbox (`run.rs`; in the background with `-d`,
//! managed by `ps`, `logs`, `wait`, `stop`, `kill` and `rm`: `detached.rs`); `isolette
//! check` says what this host supports; `image` and `volume` manage the store. Every
//! failure before the program runs (a bad flag included) prints the error and exits 125,
//! as `docker run` does; with `--json`, as one JSON object on stdout. Arguments,
//! environment entries and paths are bytes and pass through unchanged.

mod attach;
mod detached;
mod network;
mod registry;
mod run;
mod volume;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use isolette::{HostReport, Image, Progress, Store};

use crate::registry::{LoginArgs, RegistryFlags};
use crate::run::RunArgs;
use crate::volume::VolumeCommand;

#[derive(Parser)]
#[command(name = "isolette", version, about = "Run untrusted code in a fresh Linux sandbox and get an exact verdict")]
struct Cli {
    /// Image store directory (default: $ISOLETTE_STORE, /var/lib/isolette for root).
    #[arg(long, global = true)]
    store: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a command in a new sandbox made from an image.
    Run(Box<RunArgs>),
    /// Show what this host supports and what degrades.
    Check,
    /// List detached sandboxes (running ones; all with -a).
    Ps {
        /// Ended and dead ones too.
        #[arg(long, short)]
        all: bool,
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Print a detached sandbox's output.
    Logs {
        /// Go on printing what comes, until the sandbox ends.
        #[arg(long, short)]
        follow: bool,
        /// ID (or a unique start of one) or NAME.
        sandbox: String,
    },
    /// Wait for a detached sandbox to end and print its outcome (JSON).
    Wait {
        /// ID or NAME.
        sandbox: String,
    },
    /// Stop detached sandboxes: SIGTERM to the program, then a kill.
    Stop {
        /// Seconds to wait for the program to end before the kill.
        #[arg(long, short, default_value_t = 10)]
        time: u64,
        /// IDs or NAMEs.
        #[arg(required = true)]
        sandboxes: Vec<String>,
    },
    /// Kill detached sandboxes (or send them a signal).
    Kill {
        /// The signal, e.g. TERM or 15 (default: a kill of the whole sandbox).
        #[arg(long, short, default_value = "KILL")]
        signal: String,
        /// IDs or NAMEs.
        #[arg(required = true)]
        sandboxes: Vec<String>,
    },
    /// Remove ended detached sandboxes (with -f, running ones too, killed first).
    Rm {
        /// Kill a running one first.
        #[arg(long, short)]
        force: bool,
        /// IDs or NAMEs.
        #[arg(required = true)]
        sandboxes: Vec<String>,
    },
    /// Remove what killed callers left behind: cgroups, and dead detached sandboxes.
    Gc,
    /// Manage the image store.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Manage named volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Manage named networks (root only).
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Log in to a registry: check the credentials and store them in ~/.docker/config.json.
    Login(LoginArgs),
    /// Remove a registry's stored credentials.
    Logout {
        /// The registry: HOST[:PORT].
        registry: String,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Import an OCI image layout, an oci-archive or a `docker save` archive.
    Import {
        /// The image file or directory.
        source: PathBuf,
        /// Name it NAME[:TAG] (default: the name the image carries).
        #[arg(long)]
        name: Option<String>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Pull an image from a registry (Docker Hub by default), e.g. `python:3.12-slim`.
    Pull {
        /// [REGISTRY/]NAME[:TAG][@sha256:DIGEST]
        reference: String,
        /// Pick OS/ARCH[/VARIANT] from a multi-platform image (default: this machine's).
        #[arg(long)]
        platform: Option<String>,
        /// No progress bars; print only the name on success.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        flags: RegistryFlags,
    },
    /// Push an image from the store to a registry.
    Push {
        /// The image in the store: NAME[:TAG].
        name: String,
        /// Where to: [REGISTRY/]NAME[:TAG] (default: NAME itself).
        reference: Option<String>,
        /// No progress bars.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        flags: RegistryFlags,
    },
    /// List the images in the store.
    Ls,
    /// Remove an image (and the layers no other image uses).
    Rm {
        /// NAME[:TAG]
        name: String,
    },
    /// Remove the layers no image uses, and what interrupted imports left.
    Prune,
}

/// The static CLI's allocator on musl: musl's own maps and unmaps pages every few
/// allocations, and those calls (with their TLB flushes) were 40% of the CLI's start-up;
/// dlmalloc takes memory in 64 KiB segments. 0.24 ms per `isolette run` here. The CLI
/// never forks (dlmalloc's lock has no fork handler); `Command` allocates nothing between
/// its fork and exec.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// Exit code of every failure before the program runs, as `docker run`.
pub(crate) const SETUP_FAILED: u8 = 125;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            if json_requested() {
                // clap's first line, without its `error: ` prefix and the usage hint.
                let text = e.to_string();
                let line = text.lines().next().unwrap_or_default();
                print_json(&failure_json("config", line.strip_prefix("error: ").unwrap_or(line), None, None, None));
            } else {
                let _ = e.print();
            }
            return ExitCode::from(SETUP_FAILED);
        }
    };
    let store = cli.store;
    match cli.command {
        Command::Check => {
            print!("{}", HostReport::probe());
            ExitCode::SUCCESS
        }
        Command::Gc => match isolette::gc() {
            Ok(report) => {
                for dir in &report.removed {
                    println!("removed {}", dir.display());
                }
                for dir in &report.busy {
                    println!("busy, left {}", dir.display());
                }
                for id in detached::gc() {
                    println!("removed dead sandbox {id}");
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e, false),
        },
        Command::Image(cmd) => exit(image(store, cmd).map(|()| 0)),
        Command::Volume(cmd) => exit(volume::volume(store, cmd).map(|()| 0)),
        Command::Network(cmd) => exit(network::network(cmd).map(|()| 0)),
        Command::Login(args) => exit(registry::login(args).map(|()| 0)),
        Command::Logout { registry } => exit(registry::logout(&registry).map(|()| 0)),
        Command::Ps { all, json } => exit(detached::ps(all, json)),
        Command::Logs { follow, sandbox } => exit(detached::logs(&sandbox, follow)),
        Command::Wait { sandbox } => exit(detached::wait(&sandbox)),
        Command::Stop { time, sandboxes } => exit(detached::stop(&sandboxes, time)),
        Command::Kill { signal, sandboxes } => exit(detached::kill(&sandboxes, &signal)),
        Command::Rm { force, sandboxes } => exit(detached::rm(&sandboxes, force)),
        Command::Run(args) => {
            if let Some(dir) = std::env::var_os(detached::SUPERVISE_ENV) {
                // `run -d` started this process to hold the sandbox (`detached.rs`).
                return ExitCode::from(detached::supervise(std::path::Path::new(&dir), store, &args));
            }
            let json = args.json;
            let result = run::run(store, *args);
            // A one-shot process: finish removing the run's cgroups now, not in the
            // background while the process exits.
            isolette::cleanup();
            match result {
                Ok(code) => ExitCode::from(code),
                Err(e) => fail(&e, json),
            }
        }
    }
}

/// A config error (the library's constructor is its own).
pub(crate) fn config_error(message: impl Into<String>) -> isolette::Error {
    isolette::Error::Config(message.into())
}

/// An I/O error of `op` on `path`.
pub(crate) fn io_error(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> isolette::Error {
    isolette::Error::Io { op, path: path.into(), source }
}

/// The exit code of a management command: 0, or 1 with the error on stderr.
fn exit(result: isolette::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("isolette: {e}");
            ExitCode::from(1)
        }
    }
}

/// Whether `--json` comes before any `--` (for errors found while parsing the flags).
fn json_requested() -> bool {
    std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json")
}

fn fail(e: &isolette::Error, json: bool) -> ExitCode {
    if json {
        print_json(&error_json(e));
    } else {
        eprintln!("isolette: {e}");
    }
    ExitCode::from(SETUP_FAILED)
}

/// An error as `--json` prints it ([`failure_json`]).
pub(crate) fn error_json(e: &isolette::Error) -> serde_json::Value {
    let path = e.path().map(|p| p.to_string_lossy().into_owned());
    let step = e.step().map(|s| s.name().to_string());
    failure_json(e.kind(), &e.to_string(), step, e.errno(), path)
}

/// `{"status":"setup_error","error":{...}}`: one object a script can read, for every
/// failure before the program ran.
pub(crate) fn failure_json(
    kind: &str,
    message: &str,
    step: Option<String>,
    errno: Option<i32>,
    path: Option<String>,
) -> serde_json::Value {
    serde_json::json!({
        "status": "setup_error",
        "error": { "kind": kind, "message": message.trim_end(), "step": step, "errno": errno, "path": path },
    })
}

pub(crate) fn print_json(value: &serde_json::Value) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{value}");
    let _ = stdout.flush();
}

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

fn image(store: Option<PathBuf>, cmd: ImageCommand) -> isolette::Result<()> {
    let store = open_store(store)?;
    match cmd {
        ImageCommand::Pull { reference, platform, quiet, flags } => {
            registry::pull(&store, &reference, platform, quiet, &flags)?;
        }
        ImageCommand::Push { name, reference, quiet, flags } => {
            registry::push(&store, &name, reference.as_deref(), quiet, &flags)?;
        }
        ImageCommand::Import { source, name, quiet } => {
            let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
                let bar = indicatif::ProgressBar::new(0);
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                        .expect("static template")
                        .progress_chars("=> "),
                );
                bar
            });
            let mut progress = |p: Progress| {
                if let Some(bar) = &bar {
                    bar.set_length(p.total_bytes);
                    bar.set_position(p.bytes);
                    bar.set_message(format!("layer {}/{}", p.layer + 1, p.layers));
                }
            };
            let record = store.import(&source, name.as_deref(), &mut progress)?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if quiet {
                return Ok(()); // No summary either: the exit code says it all.
            }
            println!(
                "{} {} ({} layers, {})",
                record.name,
                short_id(&record.id),
                record.layers.len(),
                human(record.size)
            );
        }
        ImageCommand::Ls => {
            let records = store.list()?;
            let w = records.iter().map(|r| r.name.len()).max().unwrap_or(0).clamp(30, 120);
            println!("{:<w$} {:<14} {:>10} {:>6}  CREATED", "NAME", "ID", "SIZE", "LAYERS");
            for r in records {
                let created = r.created.as_deref().unwrap_or("-");
                println!(
                    "{:<w$} {:<14} {:>10} {:>6}  {created}",
                    r.name,
                    short_id(&r.id),
                    human(r.size),
                    r.layers.len()
                );
            }
        }
        ImageCommand::Rm { name } => {
            let removed = store.remove(&name)?;
            println!("removed {name} and {} unused layer(s)", removed.len());
        }
        ImageCommand::Prune => {
            let removed = store.prune()?;
            println!("removed {} unused layer(s)", removed.len());
        }
    }
    Ok(())
}

pub(crate) fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// `42s`, `5m`, `3h`, `2d`: how long ago, roughly.
pub(crate) fn ago(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

pub(crate) fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1}GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}MB", b as f64 / (1u64 << 20) as f64),
        b => format!("{:.1}kB", b as f64 / 1024.0),
    }
}
