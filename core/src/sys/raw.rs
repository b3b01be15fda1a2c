//! Raw Linux system calls by inline assembly, with the kernel's `-errno` convention.
//!
//! For code that runs where libc must not: the sandbox's first process shares the caller's
//! memory until it execs the init (`CLONE_VM`), so a libc wrapper setting `errno` would
//! write into the calling thread's thread-local storage; and the init binary
//! (`spawn/init/main.rs`) has no libc at all. This file is shared by both (the init
//! includes it by path), so it uses `core` only.
//!
//! x86-64 only for now: each architecture needs its syscall numbers and its `asm!`.

#[cfg(not(target_arch = "x86_64"))]
compile_error!("isolette's sandbox spawner supports x86-64 Linux only for now");

use core::arch::asm;

/// Syscall numbers (x86-64, `arch/x86/entry/syscalls/syscall_64.tbl`).
#[allow(dead_code)]
pub mod nr {
    pub const READ: usize = 0;
    pub const WRITE: usize = 1;
    pub const CLOSE: usize = 3;
    pub const MMAP: usize = 9;
    pub const IOCTL: usize = 16;
    pub const SOCKET: usize = 41;
    pub const RT_SIGACTION: usize = 13;
    pub const RT_SIGPROCMASK: usize = 14;
    pub const CLONE: usize = 56;
    pub const EXIT: usize = 60;
    pub const WAIT4: usize = 61;
    pub const KILL: usize = 62;
    pub const FCNTL: usize = 72;
    pub const CHDIR: usize = 80;
    pub const UMASK: usize = 95;
    pub const SETSID: usize = 112;
    pub const SETGROUPS: usize = 116;
    pub const SETRESUID: usize = 117;
    pub const SETRESGID: usize = 119;
    pub const CAPSET: usize = 126;
    pub const PIVOT_ROOT: usize = 155;
    pub const PRCTL: usize = 157;
    pub const MOUNT: usize = 165;
    pub const UMOUNT2: usize = 166;
    pub const SETHOSTNAME: usize = 170;
    pub const CLOCK_GETTIME: usize = 228;
    pub const EXIT_GROUP: usize = 231;
    pub const OPENAT: usize = 257;
    pub const MKDIRAT: usize = 258;
    pub const SYMLINKAT: usize = 266;
    pub const UNLINKAT: usize = 263;
    pub const UNSHARE: usize = 272;
    pub const DUP3: usize = 292;
    pub const PIPE2: usize = 293;
    pub const PRLIMIT64: usize = 302;
    pub const SECCOMP: usize = 317;
    pub const EXECVEAT: usize = 322;
    pub const CLONE3: usize = 435;
    pub const CLOSE_RANGE: usize = 436;
    pub const MOUNT_SETATTR: usize = 442;
    pub const EXECVE: usize = 59;
    pub const RECVMSG: usize = 47;
    pub const SENDMSG: usize = 46;
    pub const FCHOWN: usize = 93;
    pub const SETNS: usize = 308;
}

/// A raw system call with up to six arguments; returns the kernel's result, `-errno` on
/// failure. Touches no memory of its own (no `errno`).
///
/// # Safety
/// The arguments must be what the kernel expects for `n`: pointers valid for the access
/// the call makes, for as long as it makes it.
#[inline(always)]
pub unsafe fn syscall6(n: usize, a1: usize, a2: usize, a3: usize, a4: usize, a5: usize, a6: usize) -> isize {
    let ret: isize;
    // SAFETY: the caller vouches for the arguments; `syscall` clobbers only rax, rcx, r11.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            in("r8") a5,
            in("r9") a6,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// [`syscall6`] with fewer arguments.
///
/// # Safety
/// As for [`syscall6`].
#[inline(always)]
pub unsafe fn syscall(n: usize, args: &[usize]) -> isize {
    let a = |i: usize| if i < args.len() { args[i] } else { 0 };
    // SAFETY: as the caller vouches; missing arguments are zero, which calls ignore.
    unsafe { syscall6(n, a(0), a(1), a(2), a(3), a(4), a(5)) }
}

/// `Ok(value)` or `Err(errno)` from a raw result.
#[inline(always)]
pub fn check(r: isize) -> Result<usize, i32> {
    if (-4095..0).contains(&r) { Err((-r) as i32) } else { Ok(r as usize) }
}

/// `EINTR`, retried by the readers and writers.
pub const EINTR: i32 = 4;

/// `write(fd, buf)` until all is written, retrying `EINTR`.
pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<(), i32> {
    while !buf.is_empty() {
        // SAFETY: the pointer and length describe `buf`.
        let r = unsafe { syscall(nr::WRITE, &[fd as usize, buf.as_ptr() as usize, buf.len()]) };
        match check(r) {
            Ok(n) => buf = &buf[n..],
            Err(EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `read(fd, buf)` once, retrying `EINTR`; the number of bytes read (0 at end of file).
pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, i32> {
    loop {
        // SAFETY: the pointer and length describe `buf`, which is writable.
        let r = unsafe { syscall(nr::READ, &[fd as usize, buf.as_mut_ptr() as usize, buf.len()]) };
        match check(r) {
            Err(EINTR) => {}
            other => return other,
        }
    }
}

/// `close(fd)`, ignoring errors.
pub fn close(fd: i32) {
    // SAFETY: plain integer.
    unsafe { syscall(nr::CLOSE, &[fd as usize]) };
}

/// `exit_group(code)`: ends the process at once.
pub fn exit(code: i32) -> ! {
    loop {
        // SAFETY: exit_group never returns.
        unsafe { syscall(nr::EXIT_GROUP, &[code as usize]) };
    }
}

/// `clock_gettime(clock)` in nanoseconds (the system call, not the vDSO).
pub fn clock_ns(clock: usize) -> u64 {
    let mut ts = [0i64; 2];
    // SAFETY: `ts` is a writable `struct timespec`.
    unsafe { syscall(nr::CLOCK_GETTIME, &[clock, ts.as_mut_ptr() as usize]) };
    (ts[0] as u64).saturating_mul(1_000_000_000).saturating_add(ts[1] as u64)
}

/// `CLOCK_MONOTONIC` and `CLOCK_PROCESS_CPUTIME_ID`.
pub const CLOCK_MONOTONIC: usize = 1;
pub const CLOCK_PROCESS_CPUTIME_ID: usize = 2;
