//! `isolette image pull`, `image push`, `login` and `logout`: the registry commands, with
//! a progress bar per layer on a terminal, as `docker pull` draws them.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;

use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use isolette::{Credentials, RegistryOptions, Store, Transfer, TransferState};

use crate::report::{human, short_id};

/// Flags shared by pull, push and login.
#[derive(Args, Clone, Default)]
pub(crate) struct RegistryFlags {
    /// Speak plain HTTP to this registry (HOST[:PORT]) when HTTPS fails; loopback
    /// registries always may. Repeatable.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure: Vec<String>,
}

impl RegistryFlags {
    fn options(&self) -> RegistryOptions {
        self.insecure.iter().fold(RegistryOptions::new(), |o, h| o.insecure_registry(h))
    }
}

/// `isolette login` flags.
#[derive(Args)]
pub(crate) struct LoginArgs {
    /// The registry: HOST[:PORT] (docker.io for Docker Hub).
    registry: String,
    /// The user name (asked for on a terminal when left out).
    #[arg(long, short)]
    username: Option<String>,
    /// Read the password (or token) from stdin, not from a prompt.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    flags: RegistryFlags,
}

/// Per-layer bars: one per blob, made as the blob's first event arrives.
struct Bars {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<usize, ProgressBar>>,
    verb: &'static str,
}

impl Bars {
    fn new(quiet: bool, verb: &'static str) -> Bars {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Bars { multi, bars: Mutex::new(HashMap::new()), verb }
    }

    fn update(&self, t: &Transfer) {
        let Some(multi) = &self.multi else { return };
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        let bar = bars.entry(t.index).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(t.total));
            bar.set_style(
                ProgressStyle::with_template("{prefix}: {msg} {wide_bar} {bytes}/{total_bytes}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(short_id(&t.digest).to_string());
            bar
        });
        match t.state {
            TransferState::Waiting => bar.set_message("Waiting"),
            TransferState::Moving => {
                bar.set_message(self.verb);
                bar.set_position(t.bytes);
            }
            TransferState::Exists => finish(bar, "Already exists"),
            TransferState::Done => finish(bar, "Complete"),
            _ => {}
        }
    }

    fn clear(&self) {
        if let Some(multi) = &self.multi {
            let _ = multi.clear();
        }
    }
}

fn finish(bar: &ProgressBar, message: &'static str) {
    bar.set_style(ProgressStyle::with_template("{prefix}: {msg}").expect("static template"));
    bar.finish_with_message(message);
}

/// `isolette image pull`.
pub(crate) fn pull(
    store: &Store,
    reference: &str,
    platform: Option<String>,
    quiet: bool,
    flags: &RegistryFlags,
) -> isolette::Result<()> {
    let mut options = flags.options();
    if let Some(p) = platform {
        options = options.platform(p);
    }
    let bars = Bars::new(quiet, "Downloading");
    let result = store.pull(reference, &options, &|t| bars.update(t));
    bars.clear();
    let record = result?;
    if quiet {
        println!("{}", record.name);
        return Ok(());
    }
    println!(
        "{} {} ({} layers, {}), manifest {}",
        record.name,
        short_id(&record.id),
        record.layers.len(),
        human(record.size),
        record.manifest.as_deref().unwrap_or("-")
    );
    Ok(())
}

/// `isolette image push`.
pub(crate) fn push(
    store: &Store,
    name: &str,
    reference: Option<&str>,
    quiet: bool,
    flags: &RegistryFlags,
) -> isolette::Result<()> {
    let bars = Bars::new(quiet, "Pushing");
    let result = store.push(name, reference, &flags.options(), &|t| bars.update(t));
    bars.clear();
    let digest = result?;
    println!("{}: digest {digest}", reference.unwrap_or(name));
    Ok(())
}

/// `isolette login`: asks what is missing, checks the credentials, stores them.
pub(crate) fn login(args: LoginArgs) -> isolette::Result<()> {
    let username = match args.username {
        Some(u) => u,
        None => prompt("Username: ", false)?,
    };
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| isolette::Error::io("read", "stdin", e))?;
        line.trim_end_matches(['\n', '\r']).to_string()
    } else {
        prompt("Password: ", true)?
    };
    if username.is_empty() || password.is_empty() {
        return Err(isolette::Error::config("login: the user name and the password must not be empty"));
    }
    let credentials = Credentials { username, password };
    let (name, path) = isolette::login(&args.registry, &credentials, &args.flags.options())?;
    println!("Login to {name} succeeded; credentials stored in {}", path.display());
    Ok(())
}

/// `isolette logout`.
pub(crate) fn logout(registry: &str) -> isolette::Result<()> {
    let (name, path) = isolette::logout(registry)?;
    println!("Removed the credentials of {name} from {}", path.display());
    Ok(())
}

/// Reads one line from the terminal after `label` (without echo for a secret).
fn prompt(label: &str, secret: bool) -> isolette::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(isolette::Error::config(format!(
            "login: no terminal to ask for the {}; pass --username and --password-stdin",
            label.trim_end_matches(": ").to_lowercase()
        )));
    }
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let saved = if secret {
        let saved = tcgetattr(&stdin).map_err(|e| isolette::Error::io("tcgetattr", "stdin", e.into()))?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet).map_err(|e| isolette::Error::io("tcsetattr", "stdin", e.into()))?;
        Some(saved)
    } else {
        None
    };
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if let Some(saved) = saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &saved);
        eprintln!();
    }
    read.map_err(|e| isolette::Error::io("read", "stdin", e))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
