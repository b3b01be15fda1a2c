//! Thin, allocation-free wrappers over the system calls of a run.
//!
//! Each wrapper is one syscall: `&CStr`, `RawFd` and integers in, `Result<_, Errno>` out.
//! They are safe to call between clone and exec: no allocation, no locks, no panics.

use std::ffi::CStr;
use std::os::fd::RawFd;
use std::ptr;

use libc::{c_char, c_int, c_long, c_ulong, pid_t};
use nix::errno::Errno;

pub(crate) type SysResult<T> = Result<T, Errno>;

fn cvt(r: c_int) -> SysResult<c_int> {
    if r < 0 { Err(Errno::last()) } else { Ok(r) }
}

fn cvt_long(r: c_long) -> SysResult<c_long> {
    if r < 0 { Err(Errno::last()) } else { Ok(r) }
}

fn opt_ptr(s: Option<&CStr>) -> *const c_char {
    s.map_or(ptr::null(), CStr::as_ptr)
}

/// `struct clone_args` of `clone3(2)`.
#[repr(C)]
#[derive(Debug, Default)]
pub(crate) struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// `clone3(args)` without a new stack: returns twice like `fork`, 0 in the child.
/// <https://man7.org/linux/man-pages/man2/clone3.2.html>
///
/// # Safety
/// In a multi-threaded caller the child is a copy of one thread only: it may run only
/// async-signal-safe code (no allocation, no locks) and must end in `execve` or `_exit`.
pub(crate) unsafe fn clone3(args: &mut CloneArgs) -> SysResult<pid_t> {
    // SAFETY: `args` is a valid, initialized clone_args of the size we pass; the kernel
    // writes the pidfd through the pointer the caller stored in `args.pidfd`.
    let r = unsafe { libc::syscall(libc::SYS_clone3, args as *mut CloneArgs, size_of::<CloneArgs>()) };
    cvt_long(r).map(|p| p as pid_t)
}

/// `fork()` as a bare `clone(SIGCHLD)`, skipping libc's atfork handlers (which may lock).
///
/// # Safety
/// Same contract as [`clone3`]: the child runs only async-signal-safe code.
pub(crate) unsafe fn fork() -> SysResult<pid_t> {
    // SAFETY: a clone with no CLONE_VM and no new stack duplicates the process like fork(2).
    let r = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as c_ulong, 0usize, 0usize, 0usize, 0usize) };
    cvt_long(r).map(|p| p as pid_t)
}

/// `mount(source, target, fstype, flags, data)` — <https://man7.org/linux/man-pages/man2/mount.2.html>
pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> SysResult<()> {
    // SAFETY: every pointer is a NUL-terminated string or null, as mount(2) takes them.
    let r = unsafe { libc::mount(opt_ptr(source), target.as_ptr(), opt_ptr(fstype), flags, opt_ptr(data).cast()) };
    cvt(r).map(drop)
}

/// `umount2(target, flags)` — <https://man7.org/linux/man-pages/man2/umount2.2.html>
pub(crate) fn umount2(target: &CStr, flags: c_int) -> SysResult<()> {
    // SAFETY: `target` is a NUL-terminated path.
    cvt(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// `pivot_root(new_root, put_old)` — <https://man7.org/linux/man-pages/man2/pivot_root.2.html>
pub(crate) fn pivot_root(new_root: &CStr, put_old: &CStr) -> SysResult<()> {
    // SAFETY: both arguments are NUL-terminated paths.
    let r = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    cvt_long(r).map(drop)
}

/// `struct mount_attr` of `mount_setattr(2)`.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub(crate) const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub(crate) const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub(crate) const MOUNT_ATTR_NODEV: u64 = 0x4;

/// `mount_setattr(AT_FDCWD, path, AT_RECURSIVE, {attr_set})`: adds mount flags to a mount
/// tree without touching the ones the kernel locked.
/// <https://man7.org/linux/man-pages/man2/mount_setattr.2.html>
pub(crate) fn mount_setattr(path: &CStr, attr_set: u64) -> SysResult<()> {
    let attr = MountAttr { attr_set, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: `path` is NUL-terminated and `attr` a valid mount_attr of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE as c_ulong,
            &attr as *const MountAttr,
            size_of::<MountAttr>(),
        )
    };
    cvt_long(r).map(drop)
}

/// Zeroes `start..end` of this process's memory.
///
/// # Safety
/// The range must be mapped and writable in this process and hold nothing in use; in the
/// child it is its private copy of the caller's argv or environment strings.
pub(crate) unsafe fn zero_memory(start: usize, end: usize) {
    if start < end {
        // SAFETY: the caller guarantees the range is mapped, writable and unused.
        unsafe { ptr::write_bytes(start as *mut u8, 0, end - start) };
    }
}

/// `unshare(flags)`
pub(crate) fn unshare(flags: c_int) -> SysResult<()> {
    // SAFETY: plain integer flags.
    cvt(unsafe { libc::unshare(flags) }).map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)` — <https://man7.org/linux/man-pages/man2/seccomp.2.html>
pub(crate) fn seccomp_set_filter(filter: &[seccompiler::sock_filter]) -> SysResult<()> {
    #[repr(C)]
    struct SockFprog {
        len: u16,
        filter: *const seccompiler::sock_filter,
    }
    let prog = SockFprog { len: filter.len() as u16, filter: filter.as_ptr() };
    // SAFETY: `prog` points at `filter`, a valid BPF program (same layout as the kernel's
    // sock_filter) that outlives the call; the kernel copies it.
    cvt_long(unsafe { libc::syscall(libc::SYS_seccomp, 1u32, 0u32, &prog as *const SockFprog) }).map(drop)
}

/// `clock_gettime(clock)` in nanoseconds (async-signal-safe, POSIX).
fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the kernel (or vDSO) to fill.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// `CLOCK_MONOTONIC` now, in nanoseconds.
pub(crate) fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// Cpu time this process has used, in nanoseconds (`CLOCK_PROCESS_CPUTIME_ID`).
pub(crate) fn process_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_PROCESS_CPUTIME_ID)
}

/// `chdir(path)`
pub(crate) fn chdir(path: &CStr) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated.
    cvt(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// `mkdir(path, mode)`
pub(crate) fn mkdir(path: &CStr, mode: u32) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated.
    cvt(unsafe { libc::mkdir(path.as_ptr(), mode) }).map(drop)
}

/// Creates an empty file if missing: `open(path, O_CREAT|O_WRONLY|O_CLOEXEC, mode)` + `close`.
pub(crate) fn touch(path: &CStr, mode: u32) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated; the fd is closed right away.
    let fd = cvt(unsafe {
        libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW, mode)
    })?;
    close(fd);
    Ok(())
}

/// Writes `data` to an existing file: `open(O_WRONLY|O_CLOEXEC)`, `write`, `close`.
pub(crate) fn write_file(path: &CStr, data: &[u8]) -> SysResult<()> {
    // SAFETY: `path` is NUL-terminated; the fd is closed before returning.
    let fd = cvt(unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) })?;
    let written = write_all(fd, data);
    close(fd);
    written
}

/// `symlink(target, linkpath)`
pub(crate) fn symlink(target: &CStr, link: &CStr) -> SysResult<()> {
    // SAFETY: both are NUL-terminated.
    cvt(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }).map(drop)
}

/// `sethostname(name)`
pub(crate) fn sethostname(name: &CStr) -> SysResult<()> {
    let bytes = name.to_bytes();
    // SAFETY: the pointer and length describe `name`'s bytes.
    cvt(unsafe { libc::sethostname(bytes.as_ptr().cast(), bytes.len()) }).map(drop)
}

/// `setrlimit(resource, {soft, hard})`
pub(crate) fn setrlimit(resource: u32, soft: u64, hard: u64) -> SysResult<()> {
    let lim = libc::rlimit { rlim_cur: soft, rlim_max: hard };
    // SAFETY: `lim` is a valid rlimit.
    cvt(unsafe { libc::setrlimit(resource as _, &lim) }).map(drop)
}

/// `setsid()`
pub(crate) fn setsid() -> SysResult<()> {
    // SAFETY: no arguments.
    cvt(unsafe { libc::setsid() }).map(drop)
}

/// `umask(mask)`
pub(crate) fn umask(mask: u32) {
    // SAFETY: no pointers; umask cannot fail.
    unsafe { libc::umask(mask) };
}

/// `dup2(old, new)`, clearing CLOEXEC on `new`.
pub(crate) fn dup2(old: RawFd, new: RawFd) -> SysResult<()> {
    // SAFETY: plain integers; the kernel checks the fds.
    cvt(unsafe { libc::dup2(old, new) }).map(drop)
}

/// `close_range(first, last, 0)` — <https://man7.org/linux/man-pages/man2/close_range.2.html>
pub(crate) fn close_range(first: u32, last: u32) -> SysResult<()> {
    if first > last {
        return Ok(());
    }
    // SAFETY: plain integers.
    cvt_long(unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) }).map(drop)
}

/// `close(fd)`, ignoring errors (there is nothing to do about them).
pub(crate) fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and does not use it afterwards.
    unsafe { libc::close(fd) };
}

/// `setgroups(0, NULL)` as a raw syscall: drops every supplementary group.
///
/// Never glibc's wrapper for id changes: in a child of a multi-threaded process it
/// signals the caller's other threads (which the child does not have) and waits forever.
pub(crate) fn setgroups_empty() -> SysResult<()> {
    // SAFETY: an empty list with a null pointer is valid.
    cvt_long(unsafe { libc::syscall(libc::SYS_setgroups, 0usize, ptr::null::<libc::gid_t>()) }).map(drop)
}

/// `setresuid(uid, uid, uid)` as a raw syscall (glibc's wrapper signals every thread).
pub(crate) fn setresuid(uid: u32) -> SysResult<()> {
    // SAFETY: plain integers; the raw syscall affects only the calling thread, which is all
    // there is in the child.
    cvt_long(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
}

/// `setresgid(gid, gid, gid)` as a raw syscall.
pub(crate) fn setresgid(gid: u32) -> SysResult<()> {
    // SAFETY: as for `setresuid`.
    cvt_long(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
}

/// `prctl(option, arg2, 0, 0, 0)`
pub(crate) fn prctl(option: c_int, arg2: c_ulong) -> SysResult<()> {
    // SAFETY: every option we pass takes integer arguments only.
    cvt(unsafe { libc::prctl(option, arg2, 0 as c_ulong, 0 as c_ulong, 0 as c_ulong) }).map(drop)
}

/// `capset` with empty effective, permitted and inheritable sets (version 3, 64 bits).
pub(crate) fn capset_empty() -> SysResult<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: c_int,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header { version: 0x2008_0522, pid: 0 };
    let data =
        [Data { effective: 0, permitted: 0, inheritable: 0 }, Data { effective: 0, permitted: 0, inheritable: 0 }];
    // SAFETY: a v3 header with two data elements, as capset(2) requires.
    cvt_long(unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()) }).map(drop)
}

/// Resets every signal disposition to its default and unblocks every signal.
pub(crate) fn reset_signals() {
    // 1..=64: every signal Linux has (_NSIG is 65).
    for sig in 1..65 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a zeroed sigaction is SIG_DFL with no flags and an empty mask; errors (for
        // signals libc reserves) are ignored.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &act, ptr::null_mut());
        }
    }
    set_signal_mask(&empty_sigset());
}

/// An empty signal set.
pub(crate) fn empty_sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset initializes the whole set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        set
    }
}

/// Blocks every signal in the calling thread and returns the previous mask.
pub(crate) fn block_all_signals() -> libc::sigset_t {
    // SAFETY: both sets are valid sigset_t values owned by this frame.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        old
    }
}

/// Sets the calling thread's signal mask.
pub(crate) fn set_signal_mask(set: &libc::sigset_t) {
    // SAFETY: `set` is a valid sigset_t.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, set, ptr::null_mut()) };
}

/// `execve(path, argv, envp)`; returns only on failure.
pub(crate) fn execve(path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
    debug_assert!(argv.last().is_some_and(|p| p.is_null()) && envp.last().is_some_and(|p| p.is_null()));
    // SAFETY: `argv` and `envp` are null-terminated arrays of NUL-terminated strings that
    // outlive the call (they belong to the plan).
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Errno::last()
}

/// `_exit(code)`: ends the process without running atexit handlers or flushing stdio.
pub(crate) fn exit(code: c_int) -> ! {
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(code) }
}

/// `write(fd, buf)` until all is written; EINTR is retried.
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        // SAFETY: the pointer and length describe `buf`.
        let r = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        match r {
            n if n >= 0 => buf = &buf[n as usize..],
            _ if Errno::last() == Errno::EINTR => {}
            _ => return Err(Errno::last()),
        }
    }
    Ok(())
}

/// `read(fd, buf)` once, retrying EINTR; returns the number of bytes read (0 at EOF).
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    loop {
        // SAFETY: the pointer and length describe `buf`.
        let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match r {
            n if n >= 0 => return Ok(n as usize),
            _ if Errno::last() == Errno::EINTR => {}
            _ => return Err(Errno::last()),
        }
    }
}

/// `pipe2(O_CLOEXEC)`: `[read end, write end]`.
pub(crate) fn pipe_cloexec() -> SysResult<[RawFd; 2]> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    Ok(fds)
}

/// `wait4(pid, &status, flags, &rusage)`: `(pid, raw wait status, rusage)`, retrying EINTR.
pub(crate) fn wait4(pid: pid_t, flags: c_int) -> SysResult<(pid_t, c_int, libc::rusage)> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for the kernel to overwrite.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid for writes.
        let r = unsafe { libc::wait4(pid, &mut status, flags, &mut usage) };
        match r {
            r if r >= 0 => return Ok((r, status, usage)),
            _ if Errno::last() == Errno::EINTR => {}
            _ => return Err(Errno::last()),
        }
    }
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)` — <https://man7.org/linux/man-pages/man2/pidfd_send_signal.2.html>
pub(crate) fn pidfd_send_signal(pidfd: RawFd, sig: c_int) -> SysResult<()> {
    // SAFETY: plain integers and a null siginfo, as documented.
    cvt_long(unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, sig, ptr::null::<libc::siginfo_t>(), 0u32) })
        .map(drop)
}
