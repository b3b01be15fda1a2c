//! Creating the sandbox: `clone3` into new namespaces, the child's setup, the init.
//!
//! This is the only module with `unsafe` code. A sandbox starts as a `clone3` with
//! `CLONE_VM`: its first process shares the caller's memory, on a stack of its own, so
//! the caller's page tables are never copied, however much memory it holds (a Python or
//! Node process: hundreds of megabytes). That process runs `child.rs` (the mounts), then
//! execs the init binary (`init/main.rs`, built by `build.rs`, carried in a sealed memfd:
//! `exe.rs`), which forks the program from a few pages of its own.
//!
//! Everything that runs between the clone and that exec lives in `child.rs` and must be
//! async-signal-safe and more: the caller may have many threads and shares its memory
//! with the child, so there is no allocation, no lock, no `std::fs`, no `format!`, no
//! panic and no thread-local storage (no libc); only `&CStr`, `RawFd` and integers taken
//! from the [`Plan`], ending in `execveat` or `exit`.

mod child;
mod exe;
// Shared with the init binary, which uses what the library does not.
#[allow(dead_code)]
pub(crate) mod proto;
#[allow(dead_code)]
mod raw;
pub(crate) mod report;
mod stack;
mod sys;

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub(crate) use sys::{MOUNT_ATTR_NODEV, MOUNT_ATTR_NOSUID, MOUNT_ATTR_RDONLY, loopback_up, monotonic_ns};

use nix::errno::Errno;

use crate::error::{Error, Result, Step};
use crate::plan::Plan;

/// The fds the child keeps, by number; everything else it closes first thing.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildFds {
    /// Read end of the sync pipe: one byte from the parent means "go".
    pub sync_r: RawFd,
    /// Write end of the report pipe.
    pub report_w: RawFd,
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// The init binary's memfd (filled in by [`clone_sandbox`]).
    pub init: RawFd,
}

impl ChildFds {
    /// The program's stdio and the report pipe; the sync pipe and the init are filled in
    /// by `run::start` and [`clone_sandbox`].
    pub(crate) fn new(stdio: &crate::stdio::Stdio, report_w: &OwnedFd) -> ChildFds {
        ChildFds {
            sync_r: -1,
            report_w: report_w.as_raw_fd(),
            stdin: stdio.child_stdin.as_raw_fd(),
            stdout: stdio.child_stdout.as_raw_fd(),
            stderr: stdio.child_stderr.as_raw_fd(),
            init: -1,
        }
    }

    fn all(&self) -> [RawFd; 6] {
        [self.sync_r, self.report_w, self.stdin, self.stdout, self.stderr, self.init]
    }
}

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

/// Makes a sandbox warm (`pool.rs`): it runs the first `split` mount ops of its plan (the
/// rootfs, /proc, /dev: all that does not depend on a request), then waits on `ctl`, a
/// socket, for a request's stdio; the request's plan, which [`Child::request`] hands
/// over, gives the rest. A `parked` one goes further: it runs all of its own plan, execs
/// the init, and the init waits for the request ([`Child::request_parked`]), so only the
/// program's fork and exec are left for it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Warm {
    pub split: usize,
    pub ctl: RawFd,
    pub parked: bool,
}

/// What the child starts from: read through a pointer, so it lives in the [`Child`].
struct Start {
    plan: *const Plan,
    fds: ChildFds,
    /// A network namespace made ahead (`network/spare.rs`) to join instead of a new one,
    /// or -1.
    netns: RawFd,
    warm: Option<Warm>,
    /// The request's plan, for a warm sandbox: stored before its stdio is sent.
    request: std::sync::atomic::AtomicPtr<Plan>,
    /// The child's cpu time (ns) when it moved itself into its v1 cgroups: what the
    /// cgroup did not count of the setup.
    joined_cpu: std::sync::atomic::AtomicU64,
}

/// Lowest fd number the child may be handed: it moves fds into 0 to 4 for the init, so
/// none it still needs may sit there (`child::exec_init`).
pub(crate) const MIN_FD: RawFd = 5;

/// The sandbox's init as the parent sees it. Dropping it kills and reaps the sandbox, so a
/// panic or an early return never leaves it running.
#[derive(Debug)]
pub(crate) struct Child {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    reaped: bool,
    /// The child's stack and start, which it may use until it execs the init: dropped
    /// (after the kill and reap in `drop`) only once it cannot.
    _stack: stack::Stack,
    start: Box<Start>,
    owner: crate::forked::Owner,
    /// The sandbox's mount namespace, held so that the init's exit does not unmount its
    /// tree (an expedited RCU grace period) before the init can be reaped; released on
    /// the background thread after the reap (`cgroup::release_namespace`).
    mnt_ns: Option<Held>,
}

// SAFETY: `Start` holds a pointer to the plan only for the child's use; the parent never
// reads through it, so a `Child` may move to another thread like any other value.
unsafe impl Send for Child {}

impl std::fmt::Debug for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Start").field("fds", &self.fds).finish_non_exhaustive()
    }
}

/// The resources the init and the whole tree it reaped used.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reaped {
    pub usage: libc::rusage,
}

impl Child {
    pub(crate) fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Gives the sandbox the ordinary scheduling policy (`SCHED_OTHER`, nice 0), which a
    /// warm one made by an idle-priority thread did not have (see [`idle_priority`]).
    pub(crate) fn normal_priority(&self) -> Result<()> {
        if !set_scheduler(self.pid, libc::SCHED_OTHER) {
            return Err(Error::setup(Step::Sync, Errno::last()));
        }
        Ok(())
    }

    /// Hands a warm sandbox its request: `plan`, which must outlive this `Child` and share
    /// the first `split` mount ops with the sandbox's own plan, and the program's stdio,
    /// sent over `ctl` (the sandbox's cue to go on).
    pub(crate) fn request(&self, plan: &Plan, ctl: &OwnedFd, stdio: [RawFd; 3]) -> Result<()> {
        use std::sync::atomic::Ordering;
        self.start.request.store(plan as *const Plan as *mut Plan, Ordering::Release);
        let fds = [nix::sys::socket::ControlMessage::ScmRights(&stdio)];
        let byte = [std::io::IoSlice::new(&[1])];
        nix::sys::socket::sendmsg::<()>(ctl.as_raw_fd(), &byte, &fds, nix::sys::socket::MsgFlags::MSG_NOSIGNAL, None)
            .map(drop)
            .map_err(|e| Error::setup(Step::Sync, e))
    }

    /// Hands a parked sandbox (`Warm::parked`) its request: the program's stdio and a
    /// memfd with `plan`'s init argv, environment and rlimits (`proto.rs` lays it out),
    /// sent over `ctl`. The plan must match the sandbox's own in everything else (mounts,
    /// hostname, no terminal), which the pool checks.
    pub(crate) fn request_parked(&self, plan: &Plan, ctl: &OwnedFd, stdio: [RawFd; 3]) -> Result<()> {
        let block = parked_block(plan);
        let memfd = exe::filled_memfd(c"isolette-request", 0, &block).map_err(|e| Error::setup(Step::Sync, e))?;
        let fds = [stdio[0], stdio[1], stdio[2], memfd.as_raw_fd()];
        let cmsg = [nix::sys::socket::ControlMessage::ScmRights(&fds)];
        let len = (block.len() as u64).to_ne_bytes();
        let data = [std::io::IoSlice::new(&len)];
        nix::sys::socket::sendmsg::<()>(ctl.as_raw_fd(), &data, &cmsg, nix::sys::socket::MsgFlags::MSG_NOSIGNAL, None)
            .map(drop)
            .map_err(|e| Error::setup(Step::Sync, e))
    }

    /// The sandbox's cpu time (ns) before it joined its v1 cgroups (0 on v2, where it is
    /// cloned into its cgroup): the part of the init's setup cpu the cgroup did not count.
    pub(crate) fn joined_cpu(&self) -> u64 {
        self.start.joined_cpu.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Readable once the init has exited.
    pub(crate) fn pidfd(&self) -> BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.pidfd.as_fd()
    }

    /// Sends `signal` to the init (which passes the usual ones on to the program).
    pub(crate) fn signal(&self, signal: i32) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), signal);
    }

    /// SIGKILLs the init, which takes every process of the sandbox down with it.
    pub(crate) fn kill(&self) {
        let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
    }

    /// Waits for the init to exit (after which the namespace is empty) and reaps it.
    pub(crate) fn reap(&mut self) -> Result<Reaped> {
        let (_, _, usage) = sys::wait4(self.pid, libc::__WALL).map_err(|e| Error::setup(Step::Clone, e))?;
        self.reaped = true;
        if let Some(fd) = self.mnt_ns.take() {
            crate::cgroup::release_namespace(fd);
        }
        Ok(Reaped { usage })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.owner.is_here() {
            // A fork's copy: the sandbox is the parent's to end, and its stack and start
            // may still be in use there (in this process they are copies: let them be).
            std::mem::forget(std::mem::replace(&mut self._stack, stack::Stack::none()));
            // The fork handler closed this copy's fd already; its number may be another's now.
            std::mem::forget(self.mnt_ns.take());
            return;
        }
        if !self.reaped {
            self.kill();
            let _ = self.reap();
        }
    }
}

/// The request block of a parked init, as `proto.rs` lays it out.
pub(crate) fn parked_block(plan: &Plan) -> Vec<u8> {
    let argv = plan.program.init_argv.strings();
    let envp = plan.program.init_envp.strings();
    let words = proto::PARKED_HEADER + 3 * plan.rlimits.len() + argv.len() + 1 + envp.len() + 1;
    let mut head: Vec<u64> = Vec::with_capacity(words);
    head.extend([argv.len() as u64, envp.len() as u64, plan.rlimits.len() as u64]);
    head.extend(plan.rlimits.iter().flat_map(|r| [u64::from(r.resource), r.soft, r.hard]));
    let mut strings = Vec::new();
    let mut offsets = |list: &[std::ffi::CString], head: &mut Vec<u64>| {
        for s in list {
            head.push((8 * words + strings.len()) as u64);
            strings.extend_from_slice(s.as_bytes_with_nul());
        }
        head.push(0);
    };
    offsets(argv, &mut head);
    offsets(envp, &mut head);
    debug_assert_eq!(head.len(), words);
    let mut block: Vec<u8> = head.iter().flat_map(|w| w.to_ne_bytes()).collect();
    block.extend_from_slice(&strings);
    block
}

/// Mount namespaces held past their run ([`Child`]'s `mnt_ns`), by fd number, -1 for a free
/// slot: a child of `fork` closes its copies at once ([`close_held_after_fork`]), so that a
/// prefork worker never keeps a finished sandbox's mounts alive.
static HELD: [std::sync::atomic::AtomicI32; 64] = [const { std::sync::atomic::AtomicI32::new(-1) }; 64];

/// A held namespace fd (a finished run's mount namespace, a spare network namespace), in a
/// [`HELD`] slot while it is open.
#[derive(Debug)]
pub(crate) struct Held {
    slot: usize,
    /// Open while held; closed when dropped.
    fd: OwnedFd,
}

impl Held {
    /// `None` (and `fd` closed) when every slot is taken.
    pub(crate) fn new(fd: OwnedFd) -> Option<Held> {
        use std::sync::atomic::Ordering;
        let slot = HELD
            .iter()
            .position(|s| s.compare_exchange(-1, fd.as_raw_fd(), Ordering::SeqCst, Ordering::SeqCst).is_ok())?;
        Some(Held { slot, fd })
    }

    pub(crate) fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // The slot first: a fork between the two steps leaks a copy of the fd into the
        // child, rather than have the child close a number another fd took since.
        // The fd itself closes when the field drops, right after this.
        HELD[self.slot].store(-1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Set while a namespace fd may be open outside [`HELD`] (between its `open` and its
/// [`Held`], and while a spare is made): a `fork` waits for it to clear ([`before_fork`]),
/// so that no child gets a copy that nothing would close.
static OPENING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn acquire_opening() {
    use std::sync::atomic::Ordering;
    while OPENING.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        std::thread::yield_now();
    }
}

/// Runs `f`, which opens namespace fds and puts them in [`Held`]s, with forks held off.
pub(crate) fn opening<T>(f: impl FnOnce() -> T) -> T {
    acquire_opening();
    let result = f();
    OPENING.store(false, std::sync::atomic::Ordering::Release);
    result
}

/// `pthread_atfork`'s prepare handler (`forked.rs`): waits until no namespace fd is open
/// outside [`HELD`], and keeps it so until [`after_fork`].
pub(crate) fn before_fork() {
    acquire_opening();
}

/// `pthread_atfork`'s parent and child handlers: lets [`opening`] go on.
pub(crate) fn after_fork() {
    OPENING.store(false, std::sync::atomic::Ordering::Release);
}

/// For the child of a `fork` (`forked.rs`'s handler): closes its copies of the held
/// namespace fds. Async-signal-safe: atomics and `close` only.
pub(crate) fn close_held_after_fork() {
    for slot in &HELD {
        let fd = slot.swap(-1, std::sync::atomic::Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: this process's copy of an fd the parent held; nothing here uses it.
            unsafe { libc::close(fd) };
        }
    }
}

/// `CLONE_INTO_CGROUP`: the child starts in the cgroup whose directory fd is `args.cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Clones the sandbox's first process into its new namespaces (and straight into
/// `cgroup_fd`, a v2 cgroup directory, when given), sharing the caller's memory until it
/// execs the init; it waits for [`release`]. `plan` must outlive the returned [`Child`].
/// Every fd in `fds` must be at least [`MIN_FD`]. With `netns`, a network namespace
/// made ahead, the sandbox joins that one instead of making its own.
pub(crate) fn clone_sandbox(
    plan: &Plan,
    fds: &ChildFds,
    cgroup_fd: Option<RawFd>,
    warm: Option<Warm>,
    netns: Option<&Held>,
) -> Result<Child> {
    let init = exe::init_fd()?;
    let start = Box::new(Start {
        plan,
        fds: ChildFds { init, ..*fds },
        netns: netns.map_or(-1, Held::as_raw_fd),
        warm,
        request: std::sync::atomic::AtomicPtr::new(std::ptr::null_mut()),
        joined_cpu: std::sync::atomic::AtomicU64::new(0),
    });
    debug_assert!(warm.is_none_or(|w| w.ctl >= MIN_FD));
    debug_assert!(start.netns < 0 || start.netns >= MIN_FD);
    let ns_flags = if netns.is_some() { plan.clone_flags & !(libc::CLONE_NEWNET as u64) } else { plan.clone_flags };
    debug_assert!(start.fds.all().iter().all(|&fd| fd >= MIN_FD), "{:?}", start.fds);
    let stack = stack::Stack::take().map_err(|e| Error::setup(Step::Clone, e))?;
    let mut pidfd: RawFd = -1;
    let mut args = sys::CloneArgs {
        flags: ns_flags | libc::CLONE_VM as u64 | cgroup_fd.map_or(0, |_| CLONE_INTO_CGROUP),
        cgroup: cgroup_fd.map_or(0, |fd| fd as u64),
        pidfd: &mut pidfd as *mut RawFd as u64,
        // No exit signal: the caller's SIGCHLD handler and waitpid(-1) never see the sandbox.
        exit_signal: 0,
        stack: stack.base() as u64,
        stack_size: stack.size() as u64,
        ..Default::default()
    };
    // No handler of the caller may run in the child before it resets them.
    let old_mask = sys::block_all_signals();
    // SAFETY: `stack` is a mapped stack for the child alone; `child::entry` follows the
    // CLONE_VM rules (no TLS, no allocation, no locks, ends in execveat or exit); `start`
    // and the plan it points to stay alive and unchanged until after the child is reaped
    // (the `Child` owns the stack and `start`; the caller keeps the plan).
    let result = unsafe { sys::clone3_on_stack(&mut args, child::entry, &*start as *const Start as usize) };
    sys::set_signal_mask(&old_mask);
    let pid = result.map_err(|e| Error::from_clone(e, nix::unistd::geteuid().is_root()))?;
    // SAFETY: clone3 succeeded with CLONE_PIDFD, so `pidfd` is a new fd that we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // Best effort (O_CLOEXEC by std): without it the init's exit unmounts, as it would anyway.
    let path = format!("/proc/{pid}/ns/mnt");
    let mnt_ns = crate::cgroup::defers_namespaces()
        .then(|| opening(|| std::fs::File::open(&path).ok().and_then(|f| Held::new(f.into()))))
        .flatten();
    Ok(Child { pid, pidfd, reaped: false, _stack: stack, start, owner: crate::forked::Owner::here(), mnt_ns })
}

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
/// for. Its sandboxes inherit the policy until [`Child::normal_priority`]. Whether it took.
pub(crate) fn idle_priority() -> bool {
    set_scheduler(0, libc::SCHED_IDLE)
}

/// `sched_setscheduler` with priority 0, by its system call: musl's wrapper (the static
/// CLI's libc) is a stub that fails with ENOSYS. Whether it took; errno says why not.
fn set_scheduler(pid: libc::pid_t, policy: libc::c_int) -> bool {
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

/// Lets the child go on past its sync point.
pub(crate) fn release(sync_w: &OwnedFd) -> Result<()> {
    sys::write_all(sync_w.as_raw_fd(), &[1]).map_err(|e| Error::setup(Step::Sync, e))
}
