//! The wire between the library and its init binary: where the init finds its fds, how its
//! argv is laid out, and the fixed-size report messages it sends. Pure `core`, shared by
//! `spawn/report.rs`, `plan.rs` and the init binary (`spawn/init/main.rs`, by path).

/// The init's fds: the program's stdin, stdout and stderr at 0, 1 and 2 (the init itself
/// never uses them), the report pipe to the supervisor here.
pub const REPORT_FD: i32 = 3;

/// Bytes in one report message: one `write(2)`, below `PIPE_BUF`, so never torn.
pub const SIZE: usize = 24;

/// Message kinds.
pub const FAILED: u8 = 1;
pub const STARTED: u8 = 2;
pub const EXITED: u8 = 3;

/// `kind, step, index (u16), value (i32), time (u64), extra (u64)`, native endian.
pub fn encode(kind: u8, step: u8, index: u16, value: i32, time: u64, extra: u64) -> [u8; SIZE] {
    let mut b = [0u8; SIZE];
    b[0] = kind;
    b[1] = step;
    b[2..4].copy_from_slice(&index.to_ne_bytes());
    b[4..8].copy_from_slice(&value.to_ne_bytes());
    b[8..16].copy_from_slice(&time.to_ne_bytes());
    b[16..24].copy_from_slice(&extra.to_ne_bytes());
    b
}

/// The fields [`encode`] packed.
pub fn decode(b: &[u8; SIZE]) -> (u8, u8, u16, i32, u64, u64) {
    let word = |at: usize| {
        u64::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5], b[at + 6], b[at + 7]])
    };
    (b[0], b[1], u16::from_ne_bytes([b[2], b[3]]), i32::from_ne_bytes([b[4], b[5], b[6], b[7]]), word(8), word(16))
}

/// Signals the init passes on to the program, as Docker's init does, so that the host can
/// stop the program gracefully (`Running::signal`): a pid namespace's init gets only the
/// signals it has a handler for. Not the ones a fault of the init's own raises (SIGILL,
/// SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV, SIGSYS), nor SIGPIPE, SIGXCPU and SIGXFSZ,
/// which are about the init itself, nor SIGCHLD, SIGKILL and SIGSTOP.
pub const FORWARDED_SIGNALS: [u8; 17] = [1, 2, 3, 10, 12, 14, 15, 18, 20, 21, 22, 23, 26, 27, 28, 29, 30];

/// Numbers of the steps the init runs, as `crate::error::Step` numbers them (a unit test
/// keeps the two in step).
pub mod step {
    pub const SYNC: u8 = 3;
    pub const CLOSE_FDS: u8 = 4;
    pub const RLIMITS: u8 = 22;
    pub const FORK_PROGRAM: u8 = 24;
    pub const SETSID: u8 = 25;
    pub const STDIO: u8 = 26;
    pub const WORKDIR: u8 = 27;
    pub const SET_IDS: u8 = 28;
    pub const DROP_CAPS: u8 = 29;
    pub const NO_NEW_PRIVS: u8 = 30;
    pub const SECCOMP: u8 = 31;
    pub const EXEC: u8 = 32;
}

/// The init's argv, after `argv[0]`:
/// 1. the numbers `uid gid setgroups cap_last_cap caps tty candidates`, in decimal, space
///    separated (`setgroups` and `tty` are 0 or 1, `caps` the capabilities the program
///    keeps as a bit mask, 0 but for a build step run as root, `candidates` how many
///    exec paths follow; with `tty`, fds 0 to 2 are a terminal the program makes its
///    controlling one);
/// 2. the working directory;
/// 3. the seccomp filter as hex of its `sock_filter` bytes (empty for none);
/// 4. the `candidates` paths to try with `execve`, in order;
/// 5. the program's argv (at least one string).
///
/// The environment is the program's. Everything the program gets comes through `execve`
/// from here, so no string is copied twice and the init allocates nothing.
pub const ARGV0: &str = "isolette-init";

/// Fields in argv[1].
pub const NUMBERS: usize = 7;

/// A parked init: a warm sandbox's, exec'd before its request came (`pool.rs`). Its argv
/// is [`ARGV0`] alone; fd 0 is the pool's control socket, fds 1 and 2 stand in for the
/// program's stdout and stderr (they are the report pipe), fd 3 is the report pipe.
///
/// The request is one message on fd 0: eight bytes, the length of a request block, with
/// four fds (`SCM_RIGHTS`): the program's stdin, stdout and stderr, and a memfd holding
/// the block. End of file instead means the pool let the sandbox go. The block is u64
/// words, native endian, then strings:
/// 1. `argc`, `envc`, `nrlimits`;
/// 2. `nrlimits` triples `resource, soft, hard`, set on the init before the fork;
/// 3. `argc` offsets of the init's argv strings, `argv[0]` first, laid out as above
///    (numbers, working directory, filter, candidates, the program's argv), then 0;
/// 4. `envc` offsets of the program's environment strings, then 0;
/// 5. the NUL-terminated strings, which the offsets (from the block's start) point at.
///
/// The block's last byte is a NUL, so every string ends inside it.
pub const PARKED_FDS: usize = 4;

/// Words before the rlimit triples.
pub const PARKED_HEADER: usize = 3;
