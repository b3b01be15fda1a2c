//! The program's stdin, stdout and stderr, set up on the caller's side before the clone.
//!
//! Stdin bytes go into a sealed memfd, so the program reads a regular file (as with `<
//! in.txt`) and the supervisor never blocks on, or gets SIGPIPE from, a program that does
//! not read. Captured output comes through pipes the supervisor drains.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{FcntlArg, OFlag, fcntl};

use crate::config::{Output, Stdin};
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
}

/// What the caller of a spawned run reads and writes.
#[derive(Debug, Default)]
pub(crate) struct Handles {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

impl Stdio {
    pub(crate) fn open(stdin: &Stdin, stdout: &Output, stderr: &Output) -> Result<Stdio> {
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
        })
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
