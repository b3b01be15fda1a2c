//! `isolette run` in the foreground: the program's output passes through (or comes back
//! as one JSON object with `--json`), and its exit code is this command's. With `-it` the
//! run is attached to this terminal (`attach.rs`); with `-d` it goes to the background
//! (`detached.rs`). The flags are `flags.rs`'s.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use isolette::{Error, Output, SandboxBuilder, Stdin};

use crate::flags::{RunArgs, builder};
use crate::report;

/// Runs in the foreground, in the background (`-d`) or attached to this terminal (`-it`);
/// the exit code to leave with.
pub(crate) fn run(store: Option<PathBuf>, args: RunArgs) -> isolette::Result<u8> {
    if args.detach {
        return crate::detached::start(store, &args);
    }
    if args.interactive && !args.tty && args.stdin.is_some() {
        return Err(Error::config("-i and --stdin both say where stdin comes from; give one"));
    }
    let b = builder(store, &args)?;
    if args.tty && !args.json {
        if args.stdout.is_some() || args.stderr.is_some() || args.stdin.is_some() {
            return Err(Error::config(
                "with -t, the terminal is the program's stdin and output; drop --stdin, --stdout and --stderr",
            ));
        }
        return crate::attach::run(b, &args.cmd, args.interactive);
    }
    foreground(b, &args)
}

fn foreground(mut b: SandboxBuilder, args: &RunArgs) -> isolette::Result<u8> {
    if args.tty {
        // What the terminal shows comes back as stdout; with `-i`, what this command
        // reads is typed into it.
        if let Some(f) = &args.stdin {
            b = b.stdin(std::fs::read(f).map_err(|e| Error::io("read", f, e))?);
        } else if args.interactive && stdin_is_open() {
            let mut typed = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut typed).map_err(|e| Error::io("read", "stdin", e))?;
            b = b.stdin(typed);
        }
        if args.stdout.is_some() || args.stderr.is_some() {
            return Err(Error::config("with -t, the terminal is the only output; drop --stdout and --stderr"));
        }
    } else {
        match &args.stdin {
            Some(f) => b = b.stdin_from(Stdin::File(f.clone())),
            // A closed stdin (`<&-`) is no input, as a terminal is (unless `-i`).
            None if stdin_is_open() && (args.interactive || !std::io::stdin().is_terminal()) => {
                b = b.stdin_from(Stdin::Inherit)
            }
            None => {}
        }
        let target = |file: Option<PathBuf>| match file {
            Some(f) => Output::File(f),
            None if args.json => Output::Capture,
            None => Output::Inherit,
        };
        b = b.stdout(target(args.stdout.clone())).stderr(target(args.stderr.clone()));
    }
    let out = b.run(&args.cmd)?;
    if args.json {
        println!("{}", out.to_json());
        return Ok(0);
    }
    let _ = std::io::stdout().flush();
    Ok(report::exit_code(&out))
}

fn stdin_is_open() -> bool {
    nix::fcntl::fcntl(std::io::stdin(), nix::fcntl::FcntlArg::F_GETFD).is_ok()
}
