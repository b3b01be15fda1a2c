//! The program's stdin, stdout and stderr, set up on the caller's side before the clone.
//!
//! Stdin bytes go into a sealed memfd, so the program reads a regular file (as with `<
//! in.txt`) and the supervisor never blocks on, or gets SIGPIPE from, a program that does
//! not read. Captured output comes through pipes the supervisor drains.
//!
//! With a terminal ([`SandboxBuilder::tty`](crate::SandboxBuilder::tty)) the child's three
//! fds are one end of a socket instead, over which the sandbox's first process sends the
//! terminal's master side once it has made it (`spawn/child.rs`); the supervisor then
//! reads what the terminal shows and types into it (`supervise.rs`).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use crate::config::{Config, Output, Stdin};
use crate::error::{Error, Result};

/// The child's three fds, the parent's read ends of the capture pipes, and for
/// [`Stdin::Pipe`] and [`Output::Pipe`] the caller's ends and the supervisor's relays.
#[derive(Debug)]
pub(crate) struct Stdio {
    pub child_stdin: OwnedFd,
    pub child_stdout: OwnedFd,
    pub child_stderr: OwnedFd,
    pub capture_stdout: Option<OwnedFd>,
    pub capture_stderr: Option<OwnedFd>,
    /// The caller's ends: stdin's write end, and stdout's and stderr's read sockets.
    pub caller: Handles,
    /// The supervisor's ends of the output relays (non-blocking sockets).
    pub relays: [Option<OwnedFd>; 2],
    /// With a terminal: how its master side comes, and what to type into it.
    pub tty: Option<TtySetup>,
}

/// A terminal's parent side before the sandbox has made it.
#[derive(Debug)]
pub(crate) struct TtySetup {
    /// Our end of the socket the terminal's master side comes through.
    pub sock: OwnedFd,
    /// The read end of the caller's stdin pipe ([`Stdin::Pipe`]): typed as it comes.
    pub input: Option<OwnedFd>,
    /// Bytes typed at the start ([`Stdin::Bytes`]).
    pub typed: Vec<u8>,
}

/// What the caller of a spawned run reads and writes.
#[derive(Debug, Default)]
pub(crate) struct Handles {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// A copy of the terminal's master side, to resize it.
    pub tty: Option<OwnedFd>,
}

impl Stdio {
    pub(crate) fn open(config: &Config) -> Result<Stdio> {
        if config.tty.is_some() {
            return Stdio::terminal(config);
        }
        let (stdin, stdout, stderr) = (&config.stdin, &config.stdout, &config.stderr);
        let mut caller = Handles::default();
        let child_stdin = match stdin {
            Stdin::Pipe => {
                let (r, w) = pipe()?;
                caller.stdin = Some(w);
                r
            }
            Stdin::Fd(fd) => dup(fd.as_fd())?,
            Stdin::Null => open_null(false)?,
            Stdin::File(path) => File::open(path).map_err(|e| Error::io("open stdin", path, e))?.into(),
            Stdin::Bytes(bytes) => memfd_with(bytes)?,
            Stdin::Inherit => {
                std::io::stdin().as_fd().try_clone_to_owned().map_err(|e| Error::io("dup", "caller's stdin", e))?
            }
        };
        let (child_stdout, capture_stdout) = output(stdout, 1)?;
        let (child_stderr, capture_stderr) = output(stderr, 2)?;
        let mut relays = [None, None];
        for (i, out) in [stdout, stderr].into_iter().enumerate() {
            if *out == Output::Pipe {
                let (ours, theirs) = relay()?;
                relays[i] = Some(ours);
                *if i == 0 { &mut caller.stdout } else { &mut caller.stderr } = Some(theirs);
            }
        }
        Ok(Stdio {
            child_stdin: crate::spawn::high_fd(child_stdin)?,
            child_stdout: crate::spawn::high_fd(child_stdout)?,
            child_stderr: crate::spawn::high_fd(child_stderr)?,
            capture_stdout,
            capture_stderr,
            caller,
            relays,
            tty: None,
        })
    }

    /// A terminal's stdio: the child gets one end of a socket as all three fds (it sends
    /// the master side back through it, then puts the terminal there); the settings are
    /// the ones `plan.rs` lets through.
    fn terminal(config: &Config) -> Result<Stdio> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|e| Error::io("socketpair", "terminal", e.into()))?;
        let child = crate::spawn::high_fd(theirs)?;
        let copy = || crate::spawn::high_fd(dup(child.as_fd())?);
        let mut caller = Handles::default();
        let mut setup = TtySetup { sock: ours, input: None, typed: Vec::new() };
        match &config.stdin {
            Stdin::Pipe => {
                let (r, w) = pipe()?;
                caller.stdin = Some(w);
                setup.input = Some(r);
            }
            Stdin::Bytes(bytes) => setup.typed = bytes.clone(),
            _ => {}
        }
        let mut relays = [None, None];
        if config.stdout == Output::Pipe {
            let (ours, theirs) = relay()?;
            relays[0] = Some(ours);
            caller.stdout = Some(theirs);
        }
        Ok(Stdio {
            child_stdout: copy()?,
            child_stderr: copy()?,
            child_stdin: child,
            capture_stdout: None,
            capture_stderr: None,
            caller,
            relays,
            tty: Some(setup),
        })
    }
}

impl TtySetup {
    /// Waits up to `timeout` for the terminal's master side (non-blocking, CLOEXEC); `None`
    /// when the sandbox ended or failed before sending it (its report says why) or took
    /// too long.
    pub(crate) fn receive(&self, timeout: std::time::Duration) -> Result<Option<OwnedFd>> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)) {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(Error::io("poll", "terminal", e.into())),
        }
        let Some(master) = crate::spawn::receive_fd(self.sock.as_fd())? else { return Ok(None) };
        fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(|e| Error::io("fcntl O_NONBLOCK", "terminal", e.into()))?;
        Ok(Some(crate::spawn::high_fd(master)?))
    }
}

fn output(out: &Output, caller_fd: i32) -> Result<(OwnedFd, Option<OwnedFd>)> {
    Ok(match out {
        Output::Capture | Output::Pipe => {
            let (r, w) = pipe()?;
            fcntl(&r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
                .map_err(|e| Error::io("fcntl O_NONBLOCK", "pipe", e.into()))?;
            (w, Some(r))
        }
        Output::File(path) => {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(path)
                .map_err(|e| Error::io("create output file", path, e))?;
            (f.into(), None)
        }
        Output::Null => (open_null(true)?, None),
        Output::Fd(fd) => (dup(fd.as_fd())?, None),
        Output::Inherit => {
            let owned = match caller_fd {
                1 => std::io::stdout().as_fd().try_clone_to_owned(),
                _ => std::io::stderr().as_fd().try_clone_to_owned(),
            };
            (owned.map_err(|e| Error::io("dup", "caller's stdio", e))?, None)
        }
    })
}

/// A copy of `fd` for the sandbox (CLOEXEC).
fn dup(fd: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd> {
    fd.try_clone_to_owned().map_err(|e| Error::io("dup", "the caller's fd", e))
}

/// A relay to the caller: a connected pair of stream sockets, `(the supervisor's end,
/// non-blocking, the caller's end)`. A socket, not a pipe, so that a reader who went away
/// is an `EPIPE` from `send(MSG_NOSIGNAL)`, never a `SIGPIPE` in the caller's process.
fn relay() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| Error::io("socketpair", "output relay", e.into()))?;
    fcntl(&ours, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| Error::io("fcntl O_NONBLOCK", "relay", e.into()))?;
    nix::sys::socket::shutdown(theirs.as_raw_fd(), nix::sys::socket::Shutdown::Write)
        .map_err(|e| Error::io("shutdown", "output relay", e.into()))?;
    Ok((ours, theirs))
}

/// A CLOEXEC pipe: `(read end, write end)`, both at `spawn::MIN_FD` or above so either
/// may be handed to a sandbox.
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::io("pipe2", "pipe", e.into()))?;
    Ok((crate::spawn::high_fd(r)?, crate::spawn::high_fd(w)?))
}

fn open_null(write: bool) -> Result<OwnedFd> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .open("/dev/null")
        .map(Into::into)
        .map_err(|e| Error::io("open", "/dev/null", e))
}

fn memfd_with(bytes: &[u8]) -> Result<OwnedFd> {
    use nix::sys::memfd::{MFdFlags, memfd_create};
    let fd = memfd_create(c"isolette-stdin", MFdFlags::MFD_CLOEXEC)
        .map_err(|e| Error::io("memfd_create", "stdin", e.into()))?;
    let mut file = File::from(fd);
    file.write_all(bytes).map_err(|e| Error::io("write", "stdin memfd", e))?;
    nix::unistd::lseek(&file, 0, nix::unistd::Whence::SeekSet)
        .map_err(|e| Error::io("lseek", "stdin memfd", e.into()))?;
    Ok(file.into())
}
