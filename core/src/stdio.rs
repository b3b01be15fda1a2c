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
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use crate::error::{Error, Result};

/// Where the program's stdin comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Stdin {
    /// `/dev/null` (the default).
    #[default]
    Null,
    /// These bytes, then end of file.
    Bytes(Vec<u8>),
    /// A host file, opened by the caller's process.
    File(PathBuf),
    /// The caller's own stdin (for a command-line tool reading `< in.txt`).
    Inherit,
    /// A pipe the caller writes while the program runs ([`Running::take_stdin`]); closing
    /// it is end of file. With [`run`](crate::SandboxBuilder::run), nobody writes: end of file.
    ///
    /// [`Running::take_stdin`]: crate::Running::take_stdin
    Pipe,
    /// An fd the caller has, such as one end of [`pipe`](crate::pipe) whose other end is
    /// another sandbox's stdout (an interactive problem). The sandbox gets its own copy.
    Fd(SharedFd),
}

/// Where the program's stdout or stderr goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Output {
    /// Captured into the [`Outcome`](crate::Outcome), up to the output limit (the default).
    #[default]
    Capture,
    /// Written to a host file (created or truncated by the caller's process).
    File(PathBuf),
    /// Discarded.
    Null,
    /// The caller's own stdout or stderr; not counted against the output limit.
    Inherit,
    /// Streamed to the caller as the program writes it ([`Running::take_stdout`],
    /// [`Running::take_stderr`]), still counted against the output limit. The sandbox never
    /// waits for a slow reader: what the reader has not taken yet waits in the supervisor,
    /// up to the output limit. With [`run`](crate::SandboxBuilder::run), nobody reads: discarded.
    ///
    /// [`Running::take_stdout`]: crate::Running::take_stdout
    /// [`Running::take_stderr`]: crate::Running::take_stderr
    Pipe,
    /// An fd the caller has, such as one end of [`pipe`](crate::pipe) whose other end is
    /// another sandbox's stdin; not counted against the output limit. The sandbox gets its
    /// own copy.
    Fd(SharedFd),
}

impl std::str::FromStr for Stdin {
    type Err = Error;

    /// The modes that are one word, as every surface takes them: `null`, `pipe`,
    /// `inherit` (bytes, files and fds are given as such).
    fn from_str(word: &str) -> Result<Stdin> {
        match word {
            "null" => Ok(Stdin::Null),
            "pipe" => Ok(Stdin::Pipe),
            "inherit" => Ok(Stdin::Inherit),
            _ => Err(Error::config(format!("unknown stdin mode `{word}`; it is null, pipe or inherit"))),
        }
    }
}

impl std::str::FromStr for Output {
    type Err = Error;

    /// The modes that are one word, as every surface takes them: `capture`, `pipe`,
    /// `null`, `inherit` (files and fds are given as such).
    fn from_str(word: &str) -> Result<Output> {
        match word {
            "capture" => Ok(Output::Capture),
            "pipe" => Ok(Output::Pipe),
            "null" => Ok(Output::Null),
            "inherit" => Ok(Output::Inherit),
            _ => Err(Error::config(format!("unknown output mode `{word}`; it is capture, pipe, null or inherit"))),
        }
    }
}

/// An fd shared by the caller and the sandboxes it is handed to, closed when the last copy
/// goes. For end of file to reach the reader of a pipe, every copy of its write end must
/// be gone: drop the builders that hold one once their sandboxes are started.
#[derive(Debug, Clone)]
pub struct SharedFd(Arc<OwnedFd>);

impl SharedFd {
    /// The fd, for handing to a sandbox.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl From<OwnedFd> for SharedFd {
    fn from(fd: OwnedFd) -> SharedFd {
        SharedFd(Arc::new(fd))
    }
}

impl PartialEq for SharedFd {
    fn eq(&self, other: &SharedFd) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedFd {}

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
    /// The stdio of a run whose program reads `stdin` and writes `stdout` and `stderr`, or
    /// with `tty`, a terminal (its size is the plan's business).
    pub(crate) fn open(stdin: &Stdin, stdout: &Output, stderr: &Output, tty: bool) -> Result<Stdio> {
        if tty {
            return Stdio::terminal(stdin, stdout);
        }
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
            child_stdin: crate::sys::high_fd(child_stdin)?,
            child_stdout: crate::sys::high_fd(child_stdout)?,
            child_stderr: crate::sys::high_fd(child_stderr)?,
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
    fn terminal(stdin: &Stdin, stdout: &Output) -> Result<Stdio> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
        let (ours, theirs) = socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|e| Error::io("socketpair", "terminal", e.into()))?;
        let child = crate::sys::high_fd(theirs)?;
        let copy = || crate::sys::high_fd(dup(child.as_fd())?);
        let mut caller = Handles::default();
        let mut setup = TtySetup { sock: ours, input: None, typed: Vec::new() };
        match stdin {
            Stdin::Pipe => {
                let (r, w) = pipe()?;
                caller.stdin = Some(w);
                setup.input = Some(r);
            }
            Stdin::Bytes(bytes) => setup.typed = bytes.clone(),
            _ => {}
        }
        let mut relays = [None, None];
        if *stdout == Output::Pipe {
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
        let Some(master) = crate::sys::receive_fd(self.sock.as_fd())? else { return Ok(None) };
        fcntl(&master, FcntlArg::F_SETFL(OFlag::O_NONBLOCK))
            .map_err(|e| Error::io("fcntl O_NONBLOCK", "terminal", e.into()))?;
        Ok(Some(crate::sys::high_fd(master)?))
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

/// A CLOEXEC pipe: `(read end, write end)`, both at `sys::MIN_FD` or above so either
/// may be handed to a sandbox.
pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| Error::io("pipe2", "pipe", e.into()))?;
    Ok((crate::sys::high_fd(r)?, crate::sys::high_fd(w)?))
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
