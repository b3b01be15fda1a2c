//! What the CLI prints and exits with: the exit codes (the program's, 125 for a failure
//! before it ran, 1 for a management command), the JSON of a setup failure (core's
//! `Error::to_json` under `"error"`), and sizes, ids and ages for people.

use std::io::Write;
use std::process::ExitCode;

use isolette::{Outcome, Status};

/// Exit code of every failure before the program runs, as `docker run`.
pub(crate) const SETUP_FAILED: u8 = 125;

/// The exit code that stands for an outcome: the program's, 128 + a signal's number, and a
/// line on stderr for a limit.
pub(crate) fn exit_code(out: &Outcome) -> u8 {
    if !matches!(out.status, Status::Ok | Status::RuntimeError | Status::Signaled) {
        eprintln!("isolette: {} after {:.3}s", out.status, out.wall_time.as_secs_f64());
    }
    match (out.exit_code, out.signal) {
        (Some(code), _) => code as u8,
        (None, Some(sig)) => 128u8.saturating_add(sig as u8),
        (None, None) => 0,
    }
}

/// The exit code of a management command: 0, or 1 with the error on stderr.
pub(crate) fn exit(result: isolette::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("isolette: {e}");
            ExitCode::from(1)
        }
    }
}

/// A failure before the program ran: exit 125, the error on stderr, or with `--json` as
/// one object ([`setup_error`]) on stdout.
pub(crate) fn fail(e: &isolette::Error, json: bool) -> ExitCode {
    if json {
        print_json(&setup_error(e));
    } else {
        eprintln!("isolette: {e}");
    }
    ExitCode::from(SETUP_FAILED)
}

/// `{"status":"setup_error","error":{...}}` (core's [`isolette::Error::to_json`]): one
/// object a script can read, for every failure before the program ran.
pub(crate) fn setup_error(e: &isolette::Error) -> serde_json::Value {
    serde_json::json!({ "status": "setup_error", "error": e.to_json() })
}

/// One JSON value on a line of stdout, flushed.
pub(crate) fn print_json(value: &serde_json::Value) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{value}");
    let _ = stdout.flush();
}

/// The first 12 hex digits of an id (`sha256:` dropped).
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

/// A size for people: `1.5GB`, `12.0MB`, `3.2kB`.
pub(crate) fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{:.1}GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1}MB", b as f64 / (1u64 << 20) as f64),
        b => format!("{:.1}kB", b as f64 / 1024.0),
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (and the threads it starts later) and
/// takes them on a thread of their own: each calls `on_signal`, then cancels the returned
/// canceller (a build under way ends, leaving nothing). Children the CLI starts get the
/// default mask back (`std::process::Command` resets it).
pub(crate) fn cancel_on_signals(on_signal: impl Fn() + Send + 'static) -> isolette::Result<isolette::Canceller> {
    use nix::sys::signal::{SigSet, Signal};
    let canceller = isolette::Canceller::new()?;
    let mut signals = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        signals.add(s);
    }
    signals.thread_block().map_err(|e| isolette::Error::io("block signals", "the CLI", e.into()))?;
    let cancel = canceller.clone();
    std::thread::spawn(move || {
        while signals.wait().is_ok() {
            on_signal();
            cancel.cancel();
        }
    });
    Ok(canceller)
}
