//! `isolette-init`: pid 1 of every sandbox. A tiny static program with no libc, built by
//! `core/build.rs` and carried inside the library, which `execveat`s it from a sealed
//! memfd once the sandbox's mounts are made (`spawn/child.rs`).
//!
//! It exists so that no sandbox ever copies the caller's address space: the first process
//! of a sandbox shares the caller's memory (`CLONE_VM`) until it execs this, and this forks
//! the program from a few pages instead of from a Python or Node process holding hundreds
//! of megabytes.
//!
//! What it does: fork the program; in the program, the last steps before `execve`
//! (session, fds, working directory, ids, capabilities, `no_new_privs`, seccomp); in
//! itself, pass the usual signals on to the program, report the exec time, then reap every
//! process until the program ends, report its wait status and exit, which takes whatever
//! is left in the pid namespace with it. The program is a child, not pid 1 itself, so it
//! keeps normal signal semantics (pid 1 ignores signals it has no handler for).
//!
//! Everything comes through `execve`: the layout of argv is in `proto.rs`; fds 0 to 2 are
//! the program's stdio and fd 3 the report pipe. Nothing is allocated; the only state is
//! one static buffer for the seccomp filter.
#![no_std]
#![no_main]

#[path = "../../proto.rs"]
#[allow(dead_code)]
mod proto;
#[path = "../../sys/raw.rs"]
#[allow(dead_code)]
mod raw;

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicUsize, Ordering};

use raw::{check, nr, syscall};

// The entry point: the kernel leaves argc, argv and envp on the stack.
global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {main}",
    "ud2",
    main = sym main,
);

// `clone` onto a stack of the caller's choosing, for a `CLONE_VM | CLONE_VFORK` child:
// `isolette_clone_on(flags, stack_top, entry, arg)`. The child starts `entry(arg)` on the
// new stack (entry never returns); the parent gets the child's pid, or `-errno`. The
// syscall keeps every register but rax, rcx and r11, so entry and arg ride in r9 and r8
// (clone ignores r8, its tls argument, without CLONE_SETTLS, and has no sixth argument).
global_asm!(
    ".globl isolette_clone_on",
    "isolette_clone_on:",
    "mov r9, rdx",
    "mov r8, rcx",
    "xor edx, edx",
    "xor r10d, r10d",
    "mov eax, 56",
    "syscall",
    "test rax, rax",
    "jnz 2f",
    "xor ebp, ebp",
    "mov rdi, r8",
    "and rsp, -16",
    "call r9",
    "ud2",
    "2:",
    "ret",
);

// Where a signal handler returns to: `rt_sigreturn`.
global_asm!(".globl isolette_sigreturn", "isolette_sigreturn:", "mov eax, 15", "syscall", "ud2");

unsafe extern "C" {
    /// The trampoline above; never called directly.
    fn isolette_sigreturn();
    /// The clone trampoline above.
    fn isolette_clone_on(flags: usize, stack_top: usize, entry: extern "C" fn(usize) -> !, arg: usize) -> isize;
}

/// The program's stack from its clone to its `execve`: the init's memory is shared until
/// then (`CLONE_VM`), so the two must not share a stack.
static mut PROGRAM_STACK: [u64; 8192] = [0; 8192];

const CLONE_VM: usize = 0x100;
const CLONE_VFORK: usize = 0x4000;

/// The program's pid once it is forked: where the signals the init catches go.
static PROGRAM: AtomicUsize = AtomicUsize::new(0);

const SA_RESTART: usize = 0x1000_0000;
const SA_RESTORER: usize = 0x0400_0000;

const SIGCHLD: usize = 17;
const WALL: usize = 0x4000_0000;
const O_CLOEXEC: usize = 0o2000000;
const PR_SET_NAME: usize = 15;
const PR_SET_DUMPABLE: usize = 4;
const PR_SET_NO_NEW_PRIVS: usize = 38;
const PR_CAPBSET_READ: usize = 23;
const PR_CAPBSET_DROP: usize = 24;
const PR_CAP_AMBIENT: usize = 47;
const PR_CAP_AMBIENT_CLEAR_ALL: usize = 4;
const TIOCSCTTY: usize = 0x540E;
const EINVAL: i32 = 22;
const ENOENT: i32 = 2;
const ENOTDIR: i32 = 20;
const EACCES: i32 = 13;

/// What argv says to do.
struct Spec {
    uid: usize,
    gid: usize,
    setgroups: bool,
    cap_last_cap: usize,
    /// Capabilities the program keeps (a bit mask; 0 but for a build step run as root).
    caps: usize,
    /// Fds 0 to 2 are a terminal: the program makes it its controlling terminal.
    tty: bool,
    workdir: *const u8,
    /// The seccomp filter's `sock_filter` count; the program is in `FILTER`.
    filter_len: usize,
    candidates: &'static [*const u8],
    argv: *const *const u8,
    envp: *const *const u8,
}

/// The decoded seccomp filter: BPF programs have at most 4096 instructions of 8 bytes.
static mut FILTER: [u64; 4096] = [0; 4096];

extern "C" fn main(sp: *const usize) -> ! {
    // SAFETY: the kernel's initial stack: argc, argv[argc] + NULL, envp + NULL.
    let (argc, argv, envp) = unsafe {
        let argc = *sp;
        let argv = sp.add(1) as *const *const u8;
        (argc, argv, argv.add(argc + 1))
    };
    let _ = prctl(PR_SET_NAME, c"isolette-init".as_ptr() as usize);
    // Exec made us dumpable again; a program with our uid must not read or ptrace us.
    let _ = prctl(PR_SET_DUMPABLE, 0);
    // A parked init (argv[0] alone) waits for its request, which brings argv and envp.
    let parked = argc == 1;
    let (argc, argv, envp) = if parked { park() } else { (argc, argv, envp) };
    // The program's argv would show in `ps` (`/proc/1/cmdline`) for the life of the run:
    // move the strings and clear them from where `ps` reads, before the program starts.
    // (A parked init's argv is `argv[0]` alone; its request's strings are not on show.)
    if !parked {
        // SAFETY: argv is the kernel's, with argc >= 1 valid entries.
        unsafe { hide_args(argc, argv as *mut *const u8) };
    }
    // SAFETY: argv has argc valid entries and envp is null-terminated, from the kernel.
    let spec = match unsafe { parse(argc, argv, envp) } {
        Some(spec) => spec,
        None => fail(proto::step::FORK_PROGRAM, 0, EINVAL),
    };
    let mut pipe = [0i32; 2];
    // SAFETY: `pipe` has room for two fds.
    if let Err(e) = check(unsafe { syscall(nr::PIPE2, &[pipe.as_mut_ptr() as usize, O_CLOEXEC]) }) {
        fail(proto::step::FORK_PROGRAM, 0, e);
    }
    let [err_r, err_w] = pipe;
    // vfork-like: no page tables copied, and the program runs at once on this cpu while
    // the init sleeps until its exec (or exit), as posix_spawn does.
    let start = (&spec, err_w);
    let top = core::ptr::addr_of_mut!(PROGRAM_STACK) as usize + core::mem::size_of::<[u64; 8192]>();
    // SAFETY: the child runs `program_entry` on a stack of its own, reads `start` (alive:
    // this process sleeps until the child has exec'd or exited) and ends in execve or exit.
    let cloned =
        unsafe { isolette_clone_on(CLONE_VM | CLONE_VFORK | SIGCHLD, top, program_entry, &start as *const _ as usize) };
    let pid = match check(cloned) {
        Ok(pid) => pid,
        Err(e) => fail(proto::step::FORK_PROGRAM, 0, e),
    };
    PROGRAM.store(pid, Ordering::Relaxed);
    forward_signals();
    for fd in [err_w, 0, 1, 2] {
        raw::close(fd);
    }
    // The program sends the time it reached execve, then either a failure or, by closing
    // the pipe in a successful exec, nothing more.
    let mut exec_at = 0;
    loop {
        let mut buf = [0u8; proto::SIZE];
        match raw::read(err_r, &mut buf) {
            Ok(0) => break,
            Ok(_) => match proto::decode(&buf) {
                (proto::STARTED, _, _, _, at, _) => exec_at = at,
                _ => {
                    let _ = raw::write_all(proto::REPORT_FD, &buf);
                    raw::exit(1)
                }
            },
            Err(e) => fail(proto::step::FORK_PROGRAM, 0, e),
        }
    }
    raw::close(err_r);
    // The cpu time this process used so far is the sandbox's setup (mounts, mostly), which
    // the cgroup counts too: the supervisor subtracts it from the program's.
    let setup_cpu = raw::clock_ns(raw::CLOCK_PROCESS_CPUTIME_ID);
    send(proto::encode(proto::STARTED, 0, 0, 0, exec_at, setup_cpu));
    loop {
        let mut status = 0i32;
        // SAFETY: `status` is writable; no rusage.
        let r = unsafe { syscall(nr::WAIT4, &[usize::MAX, &mut status as *mut i32 as usize, WALL, 0]) };
        match check(r) {
            Ok(p) if p == pid => {
                send(proto::encode(proto::EXITED, 0, 0, status, raw::clock_ns(raw::CLOCK_MONOTONIC), 0));
                raw::exit(0)
            }
            Ok(_) | Err(raw::EINTR) => {}
            Err(_) => raw::exit(1),
        }
    }
}

/// Copies the strings of `argv[1..]` to a private mapping, points `argv` at the copies,
/// and clears the originals, which are what `/proc/1/cmdline` shows. Before the program's
/// clone: the program shares this memory until its exec and must find its strings, and
/// once it runs it could read the originals. A failed mapping fails the start.
///
/// # Safety
/// `argv` must be the kernel's argv array of `argc` entries (writable, on the stack), its
/// strings lying one after another from `argv[1]` to the last one's NUL.
unsafe fn hide_args(argc: usize, argv: *mut *const u8) {
    if argc < 2 {
        return;
    }
    // SAFETY: as the caller vouches; every entry below argc is a string.
    unsafe {
        let first = *argv.add(1);
        let last = *argv.add(argc - 1);
        let len = last.add(c_bytes(last).len() + 1) as usize - first as usize;
        // PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS.
        let copy = match check(raw::syscall6(nr::MMAP, 0, len, 3, 0x22, usize::MAX, 0)) {
            Ok(copy) => copy as *mut u8,
            Err(e) => fail(proto::step::FORK_PROGRAM, 0, e),
        };
        memcpy(copy, first, len);
        for i in 1..argc {
            *argv.add(i) = copy.add(*argv.add(i) as usize - first as usize);
        }
        memset(first as *mut u8, 0, len);
    }
}

/// A parked init's wait (`proto.rs`): receives the request on fd 0, puts the program's
/// stdio at 0 to 2, sets the rlimits, and returns the request's argc, argv and envp, which
/// live in a private mapping of its block for the rest of the process.
fn park() -> (usize, *const *const u8, *const *const u8) {
    const MSG_CMSG_CLOEXEC: usize = 0x4000_0000;
    const SCM_RIGHTS: u32 = 1;
    let mut len = 0u64;
    let iov = [&mut len as *mut u64 as usize, 8];
    // cmsghdr (len: u64, level: i32, type: i32) and the fds, within 8-byte alignment.
    let mut control = [0u64; 2 + proto::PARKED_FDS / 2];
    // struct msghdr: name, namelen, iov, iovlen, control, controllen, flags.
    let mut msg = [0usize, 0, iov.as_ptr() as usize, 1, control.as_mut_ptr() as usize, 8 * control.len(), 0];
    let received = loop {
        // SAFETY: `msg` describes `len` and `control`, both writable and alive across the call.
        let r = unsafe { syscall(nr::RECVMSG, &[0, msg.as_mut_ptr() as usize, MSG_CMSG_CLOEXEC]) };
        match check(r) {
            Err(raw::EINTR) => {}
            Ok(0) => raw::exit(0), // the pool let this sandbox go
            other => break other,
        }
    };
    let [level_type, fds_lo, fds_hi] = [control[1], control[2], control[3]];
    let full = received == Ok(8) && control[0] == 16 + 4 * proto::PARKED_FDS as u64;
    if !full || level_type != u64::from(SCM_RIGHTS) << 32 | 1 {
        fail(proto::step::SYNC, 0, received.err().unwrap_or(EINVAL));
    }
    let fd = |word: u64, high: bool| (if high { word >> 32 } else { word & 0xffff_ffff }) as i32;
    let [stdin, stdout, stderr, block] = [fd(fds_lo, false), fd(fds_lo, true), fd(fds_hi, false), fd(fds_hi, true)];
    for (from, to) in [(stdin, 0), (stdout, 1), (stderr, 2)] {
        // SAFETY: integers; the received fds are ours, 0 to 2 the stand-ins they replace.
        if let Err(e) = check(unsafe { syscall(nr::DUP3, &[from as usize, to, 0]) }) {
            fail(proto::step::STDIO, 0, e);
        }
        raw::close(from);
    }
    let len = len as usize;
    // SAFETY: a new private, writable mapping of the block's memfd; nothing else maps it here.
    let base = unsafe { raw::syscall6(nr::MMAP, 0, len.max(1), 3, 2, block as usize, 0) };
    raw::close(block);
    let base = match check(base) {
        Ok(base) => base as *mut u64,
        Err(e) => fail(proto::step::SYNC, 0, e),
    };
    // SAFETY: `base` maps `len` bytes, readable and writable, for the rest of the process.
    let words = unsafe { core::slice::from_raw_parts_mut(base, len / 8) };
    // SAFETY: as above, the same bytes.
    let bytes = unsafe { core::slice::from_raw_parts(base as *const u8, len) };
    match relocate(words, bytes) {
        Some((argc, argv, envp, rlimits)) => {
            for r in rlimits.chunks(3) {
                // SAFETY: prlimit64 reads a `struct rlimit64` (soft, hard) that lives across the call.
                let set = unsafe { syscall(nr::PRLIMIT64, &[0, r[0] as usize, r[1..].as_ptr() as usize, 0]) };
                if let Err(e) = check(set) {
                    fail(proto::step::RLIMITS, 0, e);
                }
            }
            (argc, argv, envp)
        }
        None => fail(proto::step::SYNC, 0, EINVAL),
    }
}

/// Checks a request block (`proto.rs`) and turns its offsets into pointers, in place: its
/// argc, argv, envp and rlimit words. `None` when anything lies outside the block.
fn relocate(words: &mut [u64], bytes: &[u8]) -> Option<(usize, *const *const u8, *const *const u8, &'static [u64])> {
    let len = bytes.len() as u64;
    if words.len() < proto::PARKED_HEADER || bytes.last() != Some(&0) {
        return None;
    }
    let (argc, envc, nrlimits) = (words[0], words[1], words[2]);
    let limits_at = proto::PARKED_HEADER;
    let argv_at = limits_at.checked_add(usize::try_from(nrlimits).ok()?.checked_mul(3)?)?;
    let envp_at = argv_at.checked_add(usize::try_from(argc).ok()?)?.checked_add(1)?;
    let end = envp_at.checked_add(usize::try_from(envc).ok()?)?.checked_add(1)?;
    if argc < 5 || end > words.len() || words[envp_at - 1] != 0 || words[end - 1] != 0 {
        return None;
    }
    let base = bytes.as_ptr() as u64;
    for i in (argv_at..envp_at - 1).chain(envp_at..end - 1) {
        // A string starts after the words and inside the block (which ends with a NUL).
        if words[i] < 8 * end as u64 || words[i] >= len {
            return None;
        }
        words[i] += base;
    }
    let at = |i: usize| &words[i] as *const u64 as *const *const u8;
    // SAFETY: the mapping lives for the rest of the process, and nothing writes the rlimit
    // words again.
    let rlimits = unsafe { core::slice::from_raw_parts(at(limits_at) as *const u64, argv_at - limits_at) };
    Some((argc as usize, at(argv_at), at(envp_at), rlimits))
}

/// Passes a caught signal on to the program.
extern "C" fn forward(sig: usize) {
    let pid = PROGRAM.load(Ordering::Relaxed);
    if pid != 0 {
        // SAFETY: kill takes integers; it touches nothing the interrupted code uses.
        let _ = unsafe { syscall(nr::KILL, &[pid, sig]) };
    }
}

/// Installs [`forward`] for the signals `proto::FORWARDED_SIGNALS` lists (after the fork:
/// the program starts with none of it).
fn forward_signals() {
    for sig in proto::FORWARDED_SIGNALS {
        // struct kernel_sigaction: handler, flags, restorer, mask (8 bytes).
        let handler = forward as extern "C" fn(usize) as usize;
        let restorer = isolette_sigreturn as unsafe extern "C" fn() as usize;
        let action = [handler, SA_RESTART | SA_RESTORER, restorer, 0];
        // SAFETY: the struct lives across the call; the handler and the restorer are this
        // program's and never return anywhere but through rt_sigreturn.
        let _ = unsafe { syscall(nr::RT_SIGACTION, &[usize::from(sig), action.as_ptr() as usize, 0, 8]) };
    }
}

fn send(message: [u8; proto::SIZE]) {
    let _ = raw::write_all(proto::REPORT_FD, &message);
}

fn fail(step: u8, index: u16, errno: i32) -> ! {
    send(proto::encode(proto::FAILED, step, index, errno, 0, 0));
    raw::exit(1)
}

/// Reads argv as `proto.rs` lays it out.
///
/// # Safety
/// `argv` must hold `argc` NUL-terminated strings followed by NULL, and `envp` be a
/// null-terminated array, as the kernel passes them; both live as long as the process.
unsafe fn parse(argc: usize, argv: *const *const u8, envp: *const *const u8) -> Option<Spec> {
    if argc < 5 {
        return None;
    }
    // SAFETY: indexes below argc are valid entries.
    let arg = |i: usize| unsafe { c_bytes(*argv.add(i)) };
    let mut numbers = [0usize; proto::NUMBERS];
    let mut fields = arg(1).split(|&b| b == b' ');
    for n in numbers.iter_mut() {
        *n = decimal(fields.next()?)?;
    }
    let [uid, gid, setgroups, cap_last_cap, caps, tty, candidates] = numbers;
    let first_candidate = 4;
    let first_arg = first_candidate + candidates;
    if candidates == 0 || first_arg >= argc {
        return None;
    }
    let filter_len = unhex_filter(arg(3))?;
    Some(Spec {
        uid,
        gid,
        setgroups: setgroups != 0,
        cap_last_cap,
        caps,
        tty: tty != 0,
        // SAFETY: entry 2 exists (argc >= 5).
        workdir: unsafe { *argv.add(2) },
        filter_len,
        // SAFETY: entries first_candidate..first_arg exist and live for the process.
        candidates: unsafe { core::slice::from_raw_parts(argv.add(first_candidate), candidates) },
        // SAFETY: entries from first_arg to the NULL at argc are the program's argv.
        argv: unsafe { argv.add(first_arg) },
        envp,
    })
}

/// The bytes of a NUL-terminated string, without the NUL.
///
/// # Safety
/// `s` must point to a NUL-terminated string that lives for the process.
unsafe fn c_bytes(s: *const u8) -> &'static [u8] {
    let mut n = 0;
    // SAFETY: the string is NUL-terminated, so every byte up to the NUL is readable.
    // black_box keeps the compiler from making this a call to strlen, which is not here.
    while unsafe { *s.add(core::hint::black_box(n)) } != 0 {
        n += 1;
    }
    // SAFETY: `n` bytes from `s` are readable and live for the process.
    unsafe { core::slice::from_raw_parts(s, n) }
}

fn decimal(text: &[u8]) -> Option<usize> {
    if text.is_empty() || text.len() > 19 {
        return None;
    }
    text.iter().try_fold(0usize, |n, &b| b.is_ascii_digit().then(|| n * 10 + usize::from(b - b'0')))
}

/// Decodes the hex filter into `FILTER`; its instruction count.
fn unhex_filter(hex: &[u8]) -> Option<usize> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    if !hex.len().is_multiple_of(16) || hex.len() / 16 > 4096 {
        return None;
    }
    // SAFETY: this process is single-threaded and only this function writes FILTER,
    // before the fork.
    let filter = unsafe { &mut *core::ptr::addr_of_mut!(FILTER) };
    for (i, chunk) in hex.chunks(16).enumerate() {
        let mut bytes = [0u8; 8];
        for (j, pair) in chunk.chunks(2).enumerate() {
            bytes[j] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        filter[i] = u64::from_ne_bytes(bytes);
    }
    Some(hex.len() / 16)
}

fn prctl(option: usize, arg: usize) -> Result<usize, i32> {
    // SAFETY: every option used here takes integer arguments (or, for PR_SET_NAME, a
    // pointer to a NUL-terminated string that outlives the call).
    check(unsafe { syscall(nr::PRCTL, &[option, arg, 0, 0, 0]) })
}

/// Where the program's clone starts: `arg` points at the spec and the error pipe.
extern "C" fn program_entry(arg: usize) -> ! {
    // SAFETY: `arg` is the init's `(&Spec, i32)`, alive while the init waits for the exec.
    let (spec, err_w) = unsafe { *(arg as *const (&Spec, i32)) };
    program(spec, err_w)
}

/// The program's last steps before `execve`. Never returns.
fn program(spec: &Spec, err_w: i32) -> ! {
    let fail = |step: u8, index: u16, errno: i32| -> ! {
        let _ = raw::write_all(err_w, &proto::encode(proto::FAILED, step, index, errno, 0, 0));
        raw::exit(126)
    };
    // SAFETY: each call below takes integers or pointers into argv/FILTER, which live on.
    unsafe {
        if let Err(e) = check(syscall(nr::SETSID, &[])) {
            fail(proto::step::SETSID, 0, e);
        }
        // The new session's controlling terminal, so that its input (Ctrl-C, Ctrl-Z) signals
        // the program's process group and `/dev/tty` opens.
        if spec.tty
            && let Err(e) = check(syscall(nr::IOCTL, &[0, TIOCSCTTY, 0]))
        {
            fail(proto::step::STDIO, 0, e);
        }
        // Exactly stdin, stdout and stderr remain (and, until exec, the report pipe).
        let closed = check(syscall(nr::CLOSE_RANGE, &[3, err_w as usize - 1, 0]))
            .and_then(|_| check(syscall(nr::CLOSE_RANGE, &[err_w as usize + 1, u32::MAX as usize, 0])));
        if let Err(e) = closed {
            fail(proto::step::CLOSE_FDS, 0, e);
        }
        if let Err(e) = check(syscall(nr::CHDIR, &[spec.workdir as usize])) {
            fail(proto::step::WORKDIR, 0, e);
        }
        // The bounding set first: dropping it needs CAP_SETPCAP, which the id change removes.
        // What is no longer in it needs no dropping (an init that is not root has no
        // capabilities, and the first process emptied the set before the exec).
        for cap in 0..=spec.cap_last_cap {
            if (cap < 64 && spec.caps & (1 << cap) != 0) || prctl(PR_CAPBSET_READ, cap) != Ok(1) {
                continue;
            }
            if let Err(e) = prctl(PR_CAPBSET_DROP, cap) {
                fail(proto::step::DROP_CAPS, 0, e);
            }
        }
        // Raw calls: they change this process only, which is all there is.
        let ids = (if spec.setgroups { check(syscall(nr::SETGROUPS, &[0, 0])) } else { Ok(0) })
            .and_then(|_| check(syscall(nr::SETRESGID, &[spec.gid, spec.gid, spec.gid])))
            .and_then(|_| check(syscall(nr::SETRESUID, &[spec.uid, spec.uid, spec.uid])));
        if let Err(e) = ids {
            fail(proto::step::SET_IDS, 0, e);
        }
        // What the program keeps (a build step's root only), as its effective and permitted
        // sets: an exec as root then gets the bounding set, which is no more than that.
        let header = [0x2008_0522u32, 0];
        let (low, high) = (spec.caps as u32, (spec.caps as u64 >> 32) as u32);
        let data = [low, low, 0, high, high, 0];
        let caps = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
            .and_then(|_| check(syscall(nr::CAPSET, &[header.as_ptr() as usize, data.as_ptr() as usize])));
        if let Err(e) = caps {
            fail(proto::step::DROP_CAPS, 0, e);
        }
        if let Err(e) = prctl(PR_SET_NO_NEW_PRIVS, 1) {
            fail(proto::step::NO_NEW_PRIVS, 0, e);
        }
        syscall(nr::UMASK, &[0o022]);
        // The run's wall clock starts here, just before the exec (as `time(1)` counts it);
        // the filter below may forbid `write`, so this goes first.
        let now = raw::clock_ns(raw::CLOCK_MONOTONIC);
        let _ = raw::write_all(err_w, &proto::encode(proto::STARTED, 0, 0, 0, now, 0));
        // Last, as bubblewrap does: from here on every call the program makes is filtered.
        if spec.filter_len > 0 {
            let prog: (u16, *const u64) = (spec.filter_len as u16, core::ptr::addr_of!(FILTER) as *const u64);
            let fprog = [prog.0 as usize, prog.1 as usize];
            if let Err(e) = check(syscall(nr::SECCOMP, &[1, 0, fprog.as_ptr() as usize])) {
                fail(proto::step::SECCOMP, 0, e);
            }
        }
        // Try each PATH candidate as execvp(3) does: skip what is missing, remember EACCES.
        let mut denied = None;
        for (i, path) in spec.candidates.iter().enumerate() {
            let r = syscall(nr::EXECVE, &[*path as usize, spec.argv as usize, spec.envp as usize]);
            match check(r) {
                Err(ENOENT | ENOTDIR) => {}
                Err(EACCES) => denied = denied.or(Some(i)),
                Err(e) => fail(proto::step::EXEC, i as u16, e),
                Ok(_) => {}
            }
        }
        match denied {
            Some(i) => fail(proto::step::EXEC, i as u16, EACCES),
            None => fail(proto::step::EXEC, 0, ENOENT),
        }
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    raw::exit(101)
}

/// Never called (panics abort), but the prebuilt `core` refers to it.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

// The memory functions the compiler may call, as there is no libc to provide them. String
// instructions, so the compiler cannot turn them back into calls to themselves.

/// # Safety
/// As C's `memcpy`.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller passes valid, non-overlapping ranges of n bytes.
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
            options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// As C's `memmove`.
#[unsafe(no_mangle)]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize) + n {
        // SAFETY: copying forwards is correct when dst is below src or past its end.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: backwards, from the last byte, with the direction flag set and restored.
    unsafe {
        asm!("std", "rep movsb", "cld", inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _,
            inout("rsi") src.add(n - 1) => _, options(nostack));
    }
    dst
}

/// # Safety
/// As C's `memset`.
#[unsafe(no_mangle)]
unsafe extern "C" fn memset(dst: *mut u8, value: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller passes a valid range of n bytes.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") value as u8,
            options(nostack, preserves_flags));
    }
    dst
}

/// # Safety
/// As C's `memcmp`.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: both ranges hold n readable bytes; black_box keeps this a loop.
        let (x, y) = unsafe { (*a.add(core::hint::black_box(i)), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// As C's `bcmp`.
#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: as for memcmp.
    unsafe { memcmp(a, b, n) }
}
