//! The parent side's fd helpers, exit and fork hooks, and scheduling.

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use crate::error::{Error, Result};

/// Lowest fd number the sandbox's first process may be handed: it moves fds into 0 to 4
/// for the init, so none it still needs may sit there (`spawn/child.rs`'s `exec_init`).
pub(crate) const MIN_FD: RawFd = 5;

/// Strings for `execve` and a null-terminated array of pointers to them, in one value.
#[derive(Debug)]
pub(crate) struct CStrArray {
    /// Owned here so the pointers stay valid.
    strings: Vec<std::ffi::CString>,
    pointers: Vec<*const libc::c_char>,
}

impl CStrArray {
    pub(crate) fn new(strings: Vec<std::ffi::CString>) -> CStrArray {
        let pointers = strings.iter().map(|c| c.as_ptr()).chain([std::ptr::null()]).collect();
        CStrArray { strings, pointers }
    }

    /// The null-terminated pointer array.
    pub(crate) fn pointers(&self) -> &[*const libc::c_char] {
        &self.pointers
    }

    pub(crate) fn strings(&self) -> &[std::ffi::CString] {
        &self.strings
    }
}

// SAFETY: the pointers lead into `strings`' heap buffers, which move with the value and are
// never changed, so the value may be sent and shared between threads like the strings.
unsafe impl Send for CStrArray {}
// SAFETY: as above; nothing is mutated through a shared reference.
unsafe impl Sync for CStrArray {}

/// Moves an fd to [`MIN_FD`] or above (CLOEXEC): the sandbox's first process moves the fds
/// it hands on into 0 to 4, which must not clobber one it still needs (a caller running
/// with a standard stream closed gets low numbers for new fds).
pub(crate) fn high_fd(fd: OwnedFd) -> Result<OwnedFd> {
    if fd.as_raw_fd() >= MIN_FD {
        return Ok(fd);
    }
    // SAFETY: plain integers on an fd we own.
    let high = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, MIN_FD) };
    if high < 0 {
        return Err(Error::io("fcntl F_DUPFD_CLOEXEC", "stdio", std::io::Error::last_os_error()));
    }
    // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(high) })
}

/// Receives one fd sent with `SCM_RIGHTS` over the Unix socket `sock` (CLOEXEC); `None`
/// at end of file or when the message carried none.
pub(crate) fn receive_fd(sock: BorrowedFd<'_>) -> Result<Option<OwnedFd>> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut byte = [0u8; 1];
    let mut iov = [std::io::IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!(RawFd);
    let msg = loop {
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(Errno::EINTR) => {}
            other => break other.map_err(|e| Error::io("recvmsg", "fd socket", e.into()))?,
        }
    };
    let mut received = None;
    for cmsg in msg.cmsgs().map_err(|e| Error::io("recvmsg", "fd socket", e.into()))? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed this fd in our table, and nothing else
                // knows its number; extra ones are closed here.
                let owned = unsafe { OwnedFd::from_raw_fd(fd) };
                received.get_or_insert(owned);
            }
        }
    }
    Ok(received)
}

/// Sets a terminal's window size (`TIOCSWINSZ` on its master side); the kernel sends
/// `SIGWINCH` to the program's foreground process group.
pub(crate) fn set_window_size(master: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<()> {
    let size = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one `struct winsize`, which lives across the call.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    if r < 0 {
        return Err(Error::io("ioctl TIOCSWINSZ", "terminal", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Puts the calling thread in `SCHED_IDLE`: it then runs only on a cpu nothing else wants,
/// as the thread making warm sandboxes should, so it never slows the runs it makes them
/// for. Its sandboxes inherit the policy until they get [`set_scheduler`]`(pid,
/// SCHED_OTHER)`. Whether it took.
pub(crate) fn idle_priority() -> bool {
    set_scheduler(0, libc::SCHED_IDLE)
}

/// `sched_setscheduler` with priority 0, by its system call: musl's wrapper (the static
/// CLI's libc) is a stub that fails with ENOSYS. Whether it took; errno says why not.
pub(crate) fn set_scheduler(pid: libc::pid_t, policy: libc::c_int) -> bool {
    // The kernel's `struct sched_param` is one int; libc's may carry more fields.
    let priority: libc::c_int = 0;
    // SAFETY: the kernel reads one int through the pointer, which lives across the call.
    unsafe { libc::syscall(libc::SYS_sched_setscheduler, pid, policy, &raw const priority) == 0 }
}

/// A connected pair of `SOCK_SEQPACKET` unix sockets (CLOEXEC, at [`MIN_FD`] or above),
/// for handing a warm sandbox its request's fds.
pub(crate) fn socket_pair() -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| Error::io("socketpair", "warm sandbox", e.into()))?;
    Ok((high_fd(a)?, high_fd(b)?))
}

/// Registers `f` to run at normal process exit (`atexit(3)`).
pub(crate) fn at_exit(f: extern "C" fn()) {
    // SAFETY: `f` is a plain function that stays valid for the life of the process.
    unsafe { libc::atexit(f) };
}

/// Registers `pthread_atfork` handlers. The child's must be async-signal-safe (the child
/// of a multi-threaded parent may only do that much), which its caller promises by the
/// handlers it passes: plain functions, valid for the life of the process.
pub(crate) fn at_fork(prepare: extern "C" fn(), parent: extern "C" fn(), child: extern "C" fn()) {
    // SAFETY: registers plain functions, which stay valid for the life of the process.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
}
