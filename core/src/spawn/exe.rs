//! The init binary (`init/main.rs`, built by `build.rs`), in a sealed memfd the sandbox's
//! first process execs, as runc does with itself.
//!
//! Parent side. Made once per process. Sealed against writes, so the program, which could
//! reach the init's file through `/proc/1/exe` were it allowed to, cannot change it for the
//! next sandbox (CVE-2019-5736); it is also not dumpable, so that path is closed too.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use nix::errno::Errno;

use crate::error::{Error, HostFeature, Result, Step};

/// The init program's bytes.
static INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/isolette-init"));

/// `MFD_EXEC`: Linux 6.3+ marks memfds non-executable unless asked (`vm.memfd_noexec`).
const MFD_EXEC: libc::c_uint = 0x10;

/// The memfd with the init, made on first use; at fd `MIN_FD` or above.
pub(crate) fn init_fd() -> Result<RawFd> {
    static FD: OnceLock<std::result::Result<OwnedFd, Errno>> = OnceLock::new();
    match FD.get_or_init(make) {
        Ok(fd) => Ok(fd.as_raw_fd()),
        Err(Errno::EACCES | Errno::EPERM) => Err(Error::Host {
            feature: HostFeature::Namespaces,
            hint: "executable memfds are refused here (vm.memfd_noexec=2, or a security policy); isolette execs \
                   its init from one, so allow them for root",
        }),
        Err(e) => Err(Error::setup(Step::ExecInit, *e)),
    }
}

/// A new memfd (`flags`, CLOEXEC always) holding `bytes`.
pub(super) fn filled_memfd(name: &std::ffi::CStr, flags: libc::c_uint, bytes: &[u8]) -> Result<File, Errno> {
    // SAFETY: a NUL-terminated name and plain flags.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags | libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: memfd_create returned a new fd that nothing else owns.
    let mut file = unsafe { File::from_raw_fd(fd) };
    file.write_all(bytes).map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    Ok(file)
}

fn make() -> std::result::Result<OwnedFd, Errno> {
    let file = match filled_memfd(c"isolette-init", libc::MFD_ALLOW_SEALING | MFD_EXEC, INIT) {
        // Before 6.3 the flag is unknown, and every memfd is executable anyway.
        Err(Errno::EINVAL) => filled_memfd(c"isolette-init", libc::MFD_ALLOW_SEALING, INIT)?,
        other => other?,
    };
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: plain integers on our own fd.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(Errno::last());
    }
    // Above the fds the child moves things into (sys::MIN_FD), once and for all.
    // SAFETY: F_DUPFD_CLOEXEC makes a new fd that we own.
    let high = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_DUPFD_CLOEXEC, super::MIN_FD) };
    if high < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `high` is a new fd that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(high) })
}
