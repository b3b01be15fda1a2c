//! `isolette`: the command-line front end of the isolette library.
//!
//! `isolette run` runs one command in a sandbox (`run.rs`; in the background with `-d`,
//! managed by `ps`, `logs`, `wait`, `stop`, `kill` and `rm`: `detached.rs`); `isolette
//! check` says what this host supports; `image` and `volume` manage the store. Every
//! failure before the program runs (a bad flag included) prints the error and exits 125,
//! as `docker run` does; with `--json`, as one JSON object on stdout. Arguments,
//! environment entries and paths are bytes and pass through unchanged.

mod attach;
mod build;
mod compose;
mod detached;
mod flags;
mod image;
mod network;
mod registry;
mod report;
mod run;
mod volume;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use isolette::HostReport;

use crate::flags::RunArgs;
use crate::image::ImageCommand;
use crate::registry::LoginArgs;
use crate::report::{SETUP_FAILED, exit, fail, print_json};
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
    /// Build an image from a Dockerfile, each step a cached layer.
    Build(Box<build::BuildArgs>),
    /// Manage the build cache.
    #[command(subcommand)]
    Builder(build::BuilderCommand),
    /// Show what this host supports and what degrades.
    Check,
    /// Run a Compose project: its services as detached sandboxes on its own network.
    Compose(Box<compose::ComposeArgs>),
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
    /// Start stopped detached sandboxes again, with the flags they were made with.
    Start {
        /// Print a failure as JSON.
        #[arg(long)]
        json: bool,
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
    /// Remove what killed callers left behind: cgroups, dead detached sandboxes, and the
    /// work of killed builds; count the build cache.
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

/// The static CLI's allocator on musl: musl's own maps and unmaps pages every few
/// allocations, and those calls (with their TLB flushes) were 40% of the CLI's start-up;
/// dlmalloc takes memory in 64 KiB segments. 0.24 ms per `isolette run` here. The CLI
/// never forks (dlmalloc's lock has no fork handler); `Command` allocates nothing between
/// its fork and exec.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

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
                let message = line.strip_prefix("error: ").unwrap_or(line);
                print_json(&report::setup_error(&isolette::Error::config(message)));
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
                build::gc(store);
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e, false),
        },
        Command::Build(args) => {
            let json = args.json;
            match build::build(store, *args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e, json),
            }
        }
        Command::Builder(cmd) => exit(build::builder(store, cmd).map(|()| 0)),
        Command::Image(cmd) => exit(image::image(store, cmd).map(|()| 0)),
        Command::Volume(cmd) => exit(volume::volume(store, cmd).map(|()| 0)),
        Command::Network(cmd) => exit(network::network(cmd).map(|()| 0)),
        Command::Compose(args) => match compose::compose(store, *args) {
            Ok(code) => ExitCode::from(code),
            Err(e) => fail(&e, json_requested()),
        },
        Command::Login(args) => exit(registry::login(args).map(|()| 0)),
        Command::Logout { registry } => exit(registry::logout(&registry).map(|()| 0)),
        Command::Ps { all, json } => exit(detached::ps(all, json)),
        Command::Logs { follow, sandbox } => exit(detached::logs(&sandbox, follow)),
        Command::Wait { sandbox } => exit(detached::wait(&sandbox)),
        Command::Stop { time, sandboxes } => exit(detached::stop(&sandboxes, time)),
        Command::Kill { signal, sandboxes } => exit(detached::kill(&sandboxes, &signal)),
        Command::Start { json, sandboxes } => exit(detached::start_again(&sandboxes, json)),
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

/// Whether `--json` comes before any `--` (for errors found while parsing the flags).
fn json_requested() -> bool {
    std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json")
}
