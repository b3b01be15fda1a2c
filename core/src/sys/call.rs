//! Thin, allocation-free wrappers over the system calls of a run.
//!
//! Each wrapper is one syscall: `&CStr`, `RawFd` and integers in, `Result<_, Errno>` out.
//! The ones the sandbox's first process calls go through `raw.rs`, never libc: that
//! process shares the caller's memory until it execs the init, and libc's wrappers write
//! `errno` into the calling thread's thread-local storage. No allocation, no locks, no
//! panics. The parent-side ones (clone, wait, signals) may use libc.

use std::ffi::CStr;
use std::os::fd::RawFd;
use std::ptr;

use libc::{c_char, c_int, c_ulong, pid_t};
use nix::errno::Errno;

use super::raw::{self, nr};

pub(crate) type SysResult<T> = Result<T, Errno>;

/// One raw system call, its result as `Result`.
fn call(n: usize, args: &[usize]) -> SysResult<usize> {
    // SAFETY: every wrapper below passes the arguments its call takes: integers, and
    // pointers to NUL-terminated strings or structs that outlive the call.
    raw::check(unsafe { raw::syscall(n, args) }).map_err(Errno::from_raw)
}

fn ptr_of(s: &CStr) -> usize {
    s.as_ptr() as usize
}

fn opt_ptr(s: Option<&CStr>) -> usize {
    s.map_or(0, ptr_of)
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

/// `clone3(args)` with the child on the stack `args` names, where it calls `f(arg)`, which
/// never returns. Returns the child's pid in the parent.
/// <https://man7.org/linux/man-pages/man2/clone3.2.html>
///
/// With `CLONE_VM` the child shares the caller's memory and runs on its own stack: it must
/// not touch thread-local storage (so no libc), must not allocate or lock, and ends in
/// `execve` or `exit`. The stack must stay mapped, and whatever `arg` points to alive and
/// unchanged, until it has.
///
/// # Safety
/// `args.stack`/`args.stack_size` must describe a mapped, writable, 16-byte aligned stack
/// no one else uses, and `f` must follow the rules above.
pub(crate) unsafe fn clone3_on_stack(
    args: &mut CloneArgs,
    f: extern "C" fn(usize) -> !,
    arg: usize,
) -> SysResult<pid_t> {
    let ret: isize;
    // SAFETY: the kernel starts the child with the stack pointer at the top of its own
    // stack and every other register as the parent's, so it finds `f` and `arg` in r12 and
    // r13 and calls `f` with an aligned stack; `f` never returns. The parent only gets the
    // result in rax (rcx and r11 are the syscall's clobbers).
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") nr::CLONE3 as isize => ret,
            in("rdi") args as *mut CloneArgs,
            in("rsi") size_of::<CloneArgs>(),
            in("r12") f,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    raw::check(ret).map(|pid| pid as pid_t).map_err(Errno::from_raw)
}

/// `mount(source, target, fstype, flags, data)` — <https://man7.org/linux/man-pages/man2/mount.2.html>
pub(crate) fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> SysResult<()> {
    call(nr::MOUNT, &[opt_ptr(source), ptr_of(target), opt_ptr(fstype), flags as usize, opt_ptr(data)]).map(drop)
}

/// `umount2(target, flags)` — <https://man7.org/linux/man-pages/man2/umount2.2.html>
pub(crate) fn umount2(target: &CStr, flags: c_int) -> SysResult<()> {
    call(nr::UMOUNT2, &[ptr_of(target), flags as usize]).map(drop)
}

/// `pivot_root(new_root, put_old)` — <https://man7.org/linux/man-pages/man2/pivot_root.2.html>
pub(crate) fn pivot_root(new_root: &CStr, put_old: &CStr) -> SysResult<()> {
    call(nr::PIVOT_ROOT, &[ptr_of(new_root), ptr_of(put_old)]).map(drop)
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
    let args = [
        libc::AT_FDCWD as usize,
        ptr_of(path),
        libc::AT_RECURSIVE as usize,
        &attr as *const MountAttr as usize,
        size_of::<MountAttr>(),
    ];
    call(nr::MOUNT_SETATTR, &args).map(drop)
}

/// `setns(fd, nstype)`
pub(crate) fn setns(fd: RawFd, nstype: c_int) -> SysResult<()> {
    call(nr::SETNS, &[fd as usize, nstype as usize]).map(drop)
}

/// `unshare(flags)`
pub(crate) fn unshare(flags: c_int) -> SysResult<()> {
    call(nr::UNSHARE, &[flags as usize]).map(drop)
}

/// `CLOCK_MONOTONIC` now, in nanoseconds (the parent's reading; the init takes its own).
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the vDSO to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64)
}

/// `chdir(path)`
pub(crate) fn chdir(path: &CStr) -> SysResult<()> {
    call(nr::CHDIR, &[ptr_of(path)]).map(drop)
}

/// `mkdir(path, mode)` (as `mkdirat(AT_FDCWD, ...)`)
pub(crate) fn mkdir(path: &CStr, mode: u32) -> SysResult<()> {
    call(nr::MKDIRAT, &[libc::AT_FDCWD as usize, ptr_of(path), mode as usize]).map(drop)
}

fn open(path: &CStr, flags: c_int, mode: u32) -> SysResult<RawFd> {
    call(nr::OPENAT, &[libc::AT_FDCWD as usize, ptr_of(path), flags as usize, mode as usize]).map(|fd| fd as RawFd)
}

/// Creates an empty file if missing: `open(path, O_CREAT|O_WRONLY|O_CLOEXEC, mode)` + `close`.
pub(crate) fn touch(path: &CStr, mode: u32) -> SysResult<()> {
    let fd = open(path, libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW, mode)?;
    close(fd);
    Ok(())
}

/// Writes `data` to an existing file: `open(O_WRONLY|O_CLOEXEC)`, `write`, `close`.
pub(crate) fn write_file(path: &CStr, data: &[u8]) -> SysResult<()> {
    let fd = open(path, libc::O_WRONLY | libc::O_CLOEXEC, 0)?;
    let written = write_all(fd, data);
    close(fd);
    written
}

/// Replaces `path` with a new file (mode 0644) holding `data`: `unlinkat` of what is there
/// (a file or symlink; none is fine), then an exclusive `open` that follows no symlink.
pub(crate) fn replace_file(path: &CStr, data: &[u8]) -> SysResult<()> {
    match call(nr::UNLINKAT, &[libc::AT_FDCWD as usize, ptr_of(path), 0]) {
        Ok(_) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fd = open(path, flags, 0o644)?;
    let written = write_all(fd, data);
    close(fd);
    written
}

/// `symlink(target, linkpath)` (as `symlinkat`)
pub(crate) fn symlink(target: &CStr, link: &CStr) -> SysResult<()> {
    call(nr::SYMLINKAT, &[ptr_of(target), libc::AT_FDCWD as usize, ptr_of(link)]).map(drop)
}

/// `sethostname(name)`
pub(crate) fn sethostname(name: &CStr) -> SysResult<()> {
    call(nr::SETHOSTNAME, &[ptr_of(name), name.to_bytes().len()]).map(drop)
}

/// Brings this network namespace's loopback interface up, as `ip link set lo up` does:
/// `SIOCGIFFLAGS`, then `SIOCSIFFLAGS` with `IFF_UP`, on a datagram socket.
pub(crate) fn loopback_up() -> SysResult<()> {
    let sock = call(nr::SOCKET, &[libc::AF_INET as usize, (libc::SOCK_DGRAM | libc::SOCK_CLOEXEC) as usize, 0])?;
    // `struct ifreq`: the interface name in 16 bytes, then a 24-byte union whose first
    // member here is the flags, a short.
    let mut req = [0u8; 40];
    req[..2].copy_from_slice(b"lo");
    let result = call(nr::IOCTL, &[sock, libc::SIOCGIFFLAGS as usize, req.as_mut_ptr() as usize]).and_then(|_| {
        let flags = i16::from_ne_bytes([req[16], req[17]]) | libc::IFF_UP as i16;
        req[16..18].copy_from_slice(&flags.to_ne_bytes());
        call(nr::IOCTL, &[sock, libc::SIOCSIFFLAGS as usize, req.as_ptr() as usize])
    });
    raw::close(sock as RawFd);
    result.map(drop)
}

/// `setrlimit(resource, {soft, hard})` (as `prlimit64(0, ...)`)
pub(crate) fn setrlimit(resource: u32, soft: u64, hard: u64) -> SysResult<()> {
    let lim = [soft, hard];
    call(nr::PRLIMIT64, &[0, resource as usize, lim.as_ptr() as usize, 0]).map(drop)
}

/// `setsid()`
pub(crate) fn setsid() -> SysResult<()> {
    call(nr::SETSID, &[]).map(drop)
}

/// `umask(mask)`
pub(crate) fn umask(mask: u32) {
    let _ = call(nr::UMASK, &[mask as usize]);
}

/// `dup3(old, new, flags)`; `old == new` only sets or clears CLOEXEC (`fcntl(F_SETFD)`).
pub(crate) fn dup_to(old: RawFd, new: RawFd, cloexec: bool) -> SysResult<()> {
    if old == new {
        let flags = if cloexec { libc::FD_CLOEXEC } else { 0 };
        return call(nr::FCNTL, &[old as usize, libc::F_SETFD as usize, flags as usize]).map(drop);
    }
    let flags = if cloexec { libc::O_CLOEXEC } else { 0 };
    call(nr::DUP3, &[old as usize, new as usize, flags as usize]).map(drop)
}

/// `fcntl(fd, F_DUPFD_CLOEXEC, min)`: a copy of `fd` at `min` or above.
pub(crate) fn dup_above(fd: RawFd, min: RawFd) -> SysResult<RawFd> {
    call(nr::FCNTL, &[fd as usize, libc::F_DUPFD_CLOEXEC as usize, min as usize]).map(|fd| fd as RawFd)
}

/// `close_range(first, last, 0)` — <https://man7.org/linux/man-pages/man2/close_range.2.html>
pub(crate) fn close_range(first: u32, last: u32) -> SysResult<()> {
    if first > last {
        return Ok(());
    }
    call(nr::CLOSE_RANGE, &[first as usize, last as usize, 0]).map(drop)
}

/// `close(fd)`, ignoring errors (there is nothing to do about them).
pub(crate) fn close(fd: RawFd) {
    raw::close(fd);
}

/// `setresuid(uid, uid, uid)` as a raw syscall (glibc's wrapper signals every thread).
pub(crate) fn setresuid(uid: u32) -> SysResult<()> {
    call(nr::SETRESUID, &[uid as usize, uid as usize, uid as usize]).map(drop)
}

/// `setresgid(gid, gid, gid)` as a raw syscall.
pub(crate) fn setresgid(gid: u32) -> SysResult<()> {
    call(nr::SETRESGID, &[gid as usize, gid as usize, gid as usize]).map(drop)
}

/// `prctl(option, arg2, 0, 0, 0)` with integer arguments.
pub(crate) fn prctl(option: c_int, arg2: c_ulong) -> SysResult<()> {
    call(nr::PRCTL, &[option as usize, arg2 as usize, 0, 0, 0]).map(drop)
}

/// Resets every signal disposition to its default and unblocks every signal (the raw
/// `rt_sigaction` and `rt_sigprocmask`, whose kernel `sigaction` layout this builds).
pub(crate) fn reset_signals() {
    // struct kernel_sigaction: handler, flags, restorer, mask (8 bytes for 64 signals).
    let default = [0usize; 4];
    // 1..=64: every signal Linux has; SIGKILL and SIGSTOP refuse, which is fine.
    for sig in 1..=64usize {
        let _ = call(nr::RT_SIGACTION, &[sig, default.as_ptr() as usize, 0, 8]);
    }
    let empty = 0u64;
    let _ = call(nr::RT_SIGPROCMASK, &[libc::SIG_SETMASK as usize, &empty as *const u64 as usize, 0, 8]);
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

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: runs the program open at `fd`; returns
/// only on failure. <https://man7.org/linux/man-pages/man2/execveat.2.html>
pub(crate) fn execveat(fd: RawFd, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
    debug_assert!(argv.last().is_some_and(|p| p.is_null()) && envp.last().is_some_and(|p| p.is_null()));
    let args = [fd as usize, ptr_of(c""), argv.as_ptr() as usize, envp.as_ptr() as usize, libc::AT_EMPTY_PATH as usize];
    match call(nr::EXECVEAT, &args) {
        Err(e) => e,
        Ok(_) => Errno::UnknownErrno,
    }
}

/// `recvmsg(fd, MSG_CMSG_CLOEXEC)` of one byte carrying three fds (`SCM_RIGHTS`); `None`
/// at end of file. The kernel's `msghdr`, `iovec` and `cmsghdr` are built on the stack.
pub(crate) fn receive_fds(fd: RawFd) -> SysResult<Option<[RawFd; 3]>> {
    let mut byte = 0u8;
    let iov = [&mut byte as *mut u8 as usize, 1];
    // cmsghdr { len: u64, level: i32, type: i32 } then the fds: 16 + 12 bytes, aligned.
    let mut control = [0u64; 4];
    // struct msghdr: name, namelen, iov, iovlen, control, controllen, flags.
    let mut msg = [0usize, 0, iov.as_ptr() as usize, 1, control.as_mut_ptr() as usize, size_of_val(&control), 0];
    let n = loop {
        match call(nr::RECVMSG, &[fd as usize, msg.as_mut_ptr() as usize, libc::MSG_CMSG_CLOEXEC as usize]) {
            Err(Errno::EINTR) => {}
            other => break other?,
        }
    };
    if n == 0 {
        return Ok(None);
    }
    let (len, level, kind) = (control[0], control[1] as u32 as i32, (control[1] >> 32) as u32 as i32);
    if level != libc::SOL_SOCKET || kind != libc::SCM_RIGHTS || len != 16 + 12 {
        return Err(Errno::EPROTO);
    }
    let word = |i: usize| (control[2 + i / 2] >> (32 * (i % 2))) as u32 as RawFd;
    Ok(Some([word(0), word(1), word(2)]))
}

/// A new terminal in the devpts at `/dev/pts` (mounted by then): `(master, slave)`, the
/// slave unlocked, sized `rows` by `cols` and owned by `uid:gid`, both CLOEXEC and the
/// slave at `min_fd` or above. `open("/dev/pts/ptmx")`, `TIOCSPTLCK`, `TIOCSWINSZ`,
/// `TIOCGPTPEER` (which opens the slave without a path lookup), `fchown`.
pub(crate) fn open_pty(rows: u16, cols: u16, uid: u32, gid: u32, min_fd: RawFd) -> SysResult<(RawFd, RawFd)> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    let master = open(c"/dev/pts/ptmx", flags, 0)?;
    let slave = (|| {
        let unlock: c_int = 0;
        call(nr::IOCTL, &[master as usize, libc::TIOCSPTLCK as usize, &unlock as *const c_int as usize])?;
        // struct winsize: rows, columns, then two unused pixel sizes.
        let size: [u16; 4] = [rows, cols, 0, 0];
        call(nr::IOCTL, &[master as usize, libc::TIOCSWINSZ as usize, size.as_ptr() as usize])?;
        let low = call(nr::IOCTL, &[master as usize, libc::TIOCGPTPEER as usize, flags as usize])? as RawFd;
        let slave = if low < min_fd {
            let high = dup_above(low, min_fd);
            close(low);
            high?
        } else {
            low
        };
        match call(nr::FCHOWN, &[slave as usize, uid as usize, gid as usize]) {
            Ok(_) => Ok(slave),
            Err(e) => {
                close(slave);
                Err(e)
            }
        }
    })();
    match slave {
        Ok(slave) => Ok((master, slave)),
        Err(e) => {
            close(master);
            Err(e)
        }
    }
}

/// Sends `fd` over the Unix socket `sock` with one byte (`sendmsg`, `SCM_RIGHTS`).
pub(crate) fn send_fd(sock: RawFd, fd: RawFd) -> SysResult<()> {
    let byte = 0u8;
    let iov = [&byte as *const u8 as usize, 1];
    // cmsghdr { len: u64, level: i32, type: i32 } then the fd: 16 + 4 bytes, padded to 24.
    let control: [u64; 3] =
        [16 + 4, (libc::SCM_RIGHTS as u32 as u64) << 32 | libc::SOL_SOCKET as u32 as u64, fd as u32 as u64];
    // struct msghdr: name, namelen, iov, iovlen, control, controllen, flags.
    let msg = [0usize, 0, iov.as_ptr() as usize, 1, control.as_ptr() as usize, size_of_val(&control), 0];
    loop {
        match call(nr::SENDMSG, &[sock as usize, msg.as_ptr() as usize, libc::MSG_NOSIGNAL as usize]) {
            Err(Errno::EINTR) => {}
            other => return other.map(drop),
        }
    }
}

/// `exit_group(code)`: ends the process without running atexit handlers or flushing stdio.
pub(crate) fn exit(code: c_int) -> ! {
    raw::exit(code)
}

/// `write(fd, buf)` until all is written; EINTR is retried.
pub(crate) fn write_all(fd: RawFd, buf: &[u8]) -> SysResult<()> {
    raw::write_all(fd, buf).map_err(Errno::from_raw)
}

/// `read(fd, buf)` once, retrying EINTR; returns the number of bytes read (0 at EOF).
pub(crate) fn read(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    raw::read(fd, buf).map_err(Errno::from_raw)
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
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd, sig, ptr::null::<libc::siginfo_t>(), 0u32) };
    if r < 0 { Err(Errno::last()) } else { Ok(()) }
}
