//! `isolette run -t` in the foreground: what the program's terminal shows appears on this
//! one as it comes; with `-i`, what this command reads is typed into it, in raw mode when
//! stdin is a terminal (so Ctrl-C, arrows and line editing reach the program), and the
//! window size follows this terminal's. The terminal is restored however the run ends.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;

use isolette::{Output, SandboxBuilder, Stdin};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::termios::{self, SetArg, Termios};

/// This terminal's size in rows and columns, if stdout (or stdin) is a terminal.
pub(crate) fn window_size() -> Option<(u16, u16)> {
    let ws = [std::io::stdout().as_fd(), std::io::stdin().as_fd()].into_iter().find_map(|fd| {
        let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCGWINSZ writes one `struct winsize`, which lives across the call.
        let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::TIOCGWINSZ, &mut ws) };
        (r == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some(ws)
    })?;
    Some((ws.ws_row, ws.ws_col))
}

/// Puts stdin's terminal in raw mode until dropped.
struct RawMode(Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSADRAIN, &self.0);
    }
}

/// Runs `cmd` with its terminal shown here; the exit code to leave with.
pub(crate) fn run(b: SandboxBuilder, cmd: &[std::ffi::OsString], interactive: bool) -> isolette::Result<u8> {
    let io_err = |op: &'static str, e: std::io::Error| isolette::Error::io(op, "terminal", e);
    // SIGWINCH through a signalfd: blocked before the sandbox's threads start, so that none
    // of them takes it (the sandbox itself starts with every signal unblocked).
    let mut winch = SigSet::empty();
    winch.add(Signal::SIGWINCH);
    let _ = nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&winch), None);
    let resized = SignalFd::new(&winch).map_err(|e| io_err("signalfd", e.into()))?;
    let b = b.stdout(Output::Pipe);
    let b = if interactive { b.stdin_from(Stdin::Pipe) } else { b };
    let mut running = b.spawn(cmd)?;
    let mut shown = running.take_stdout().expect("stdout is piped");
    let mut keys = running.take_stdin();
    let raw = (keys.is_some() && std::io::stdin().is_terminal()).then(RawMode::enter).flatten();
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let mut fds =
            vec![PollFd::new(shown.as_fd(), PollFlags::POLLIN), PollFd::new(resized.as_fd(), PollFlags::POLLIN)];
        if keys.is_some() {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(io_err("poll", e.into())),
        }
        let ready: Vec<bool> = fds.iter().map(|p| p.any().unwrap_or(false)).collect();
        drop(fds);
        if ready[1] {
            let _ = resized.read_signal();
            if let Some((rows, cols)) = window_size() {
                let _ = running.resize(rows, cols);
            }
        }
        if ready.get(2) == Some(&true) {
            let n = stdin.lock().read(&mut buf).unwrap_or(0);
            let typed = n > 0 && keys.as_mut().is_some_and(|k| k.write_all(&buf[..n]).is_ok());
            if !typed {
                keys = None; // end of this command's input: nothing more is typed
            }
        }
        if ready[0] {
            match shown.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let _ = stdout.write_all(&buf[..n]).and_then(|()| stdout.flush());
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("read", e)),
            }
        }
    }
    drop(keys);
    let out = running.wait()?;
    drop(raw);
    Ok(crate::report::exit_code(&out))
}
