//! One run, end to end: plan, clone, release, supervise, derive the outcome.
//!
//! Parent side. Every resource is owned by a guard, so an error or a panic at any point
//! kills and reaps the sandbox and closes every fd.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;

use crate::cgroup::{self, Acquired, Cgroup, Stats};
use crate::config::Config;
use crate::error::{Error, Result, Step};
use crate::image::Image;
use crate::limits;
use crate::network::Attached;
use crate::network::spare;
use crate::outcome::{self, Evidence, Outcome};
use crate::plan::Plan;
use crate::runtime::Held;
use crate::spawn::{self, ChildFds, report::Failure};
use crate::stdio::{Handles, Stdio, pipe};
use crate::supervise::{self, Enforce, Leftover, Pipes, TtyInput};

/// Starts a sandbox the ordinary (cold) way: plan, cgroup, clone.
pub(crate) fn begin(image: &Image, config: &Config, argv: &[std::ffi::OsString]) -> Result<Started> {
    let called = crate::sys::monotonic_ns();
    begin_planned(Box::new(Plan::new(image, config, argv)?), config, called)
}

/// [`begin`] with the plan made already (`called`: when the caller asked).
pub(crate) fn begin_planned(mut plan: Box<Plan>, config: &Config, called: u64) -> Result<Started> {
    let userns = plan.id_maps.is_some();
    let (ready, later) =
        match config.cgroup.then(|| cgroup::acquire_or_defer(&plan.cgroup_limits, userns)).transpose()? {
            Some(Some(Acquired::Ready(guard))) => (Some(guard), None),
            Some(Some(Acquired::Later(pending))) => (None, Some(pending)),
            Some(None) | None => (None, None),
        };
    add_rlimits(&mut plan, config, ready.is_some() || later.is_some());
    if let Some(pending) = &later {
        plan.join_cgroup_late(&pending.join_files())?;
    }
    let stdio = Stdio::open(&config.stdin, &config.stdout, &config.stderr, config.tty.is_some())?;
    let (report_r, report_w) = pipe()?;
    let fds = ChildFds::new(&stdio, &report_w);
    let (child, network, sync_w) = start(&mut plan, fds, ready.as_deref(), None)?;
    drop(report_w);
    // Made while the sandbox makes its mounts; it joins once told (a failure drops the
    // child, which kills it).
    let cgroup = match later {
        Some(pending) => {
            let guard = pending.make()?;
            spawn::release(&sync_w)?;
            Some(guard)
        }
        None => ready,
    };
    drop(sync_w);
    Ok(Started { network, ..Started::new(child, plan, cgroup, report_r, stdio, called, config)? })
}

/// The rlimits that stand in for, or back up, the cgroup's limits.
pub(crate) fn add_rlimits(plan: &mut Plan, config: &Config, with_cgroup: bool) {
    if let Some(limit) = config.cpu_time {
        plan.rlimits.push(limits::cpu(limit, with_cgroup));
    }
    if let (false, Some(bytes)) = (with_cgroup, config.memory) {
        plan.rlimits.push(limits::memory_fallback(bytes));
    }
}

/// Clones the sandbox for `plan` (joining `cgroup`), writes its id maps, connects its
/// network when the plan has one, and lets it go; gives back the sync pipe, for a second
/// go-ahead to a sandbox that joins its cgroup late (`Plan::join_late`). `warm` makes it
/// stop after its first `warm.split` mount ops and wait for a request (`pool.rs`).
pub(crate) fn start(
    plan: &mut Plan,
    fds: ChildFds,
    cgroup: Option<&dyn Cgroup>,
    warm: Option<spawn::Warm>,
) -> Result<(spawn::Child, Option<Attached>, OwnedFd)> {
    let cgroup_fd = cgroup.and_then(|c| c.dir_fd());
    if let Some(cg) = cgroup
        && cgroup_fd.is_none()
    {
        plan.join_cgroup(&cg.join_files())?;
    }
    let (sync_r, sync_w) = pipe()?;
    // Another sandbox's network namespace when the plan shares one; else one made ahead,
    // when the sandbox may use one (`network/spare.rs`).
    let netns = match &plan.shared_network {
        Some(_) if warm.is_some() => {
            return Err(Error::config("a warm pool's sandboxes cannot share another sandbox's network"));
        }
        Some(shared) => Some(shared_netns(shared)?),
        None => (warm.is_none() && spare::fits(plan.clone_flags, plan.network.is_some())).then(spare::take).flatten(),
    };
    let child =
        spawn::clone_sandbox(plan, &ChildFds { sync_r: sync_r.as_raw_fd(), ..fds }, cgroup_fd, warm, netns.as_ref())?;
    // The sandbox has its own copy of the spare's fd; ours goes.
    drop((sync_r, netns));
    if let Some(maps) = &plan.id_maps {
        maps.write(child.pid())?;
    }
    let network = plan.network.as_ref().map(|n| n.attach(child.pid(), plan.id_maps.is_some())).transpose()?;
    spawn::release(&sync_w)?;
    Ok((child, network, sync_w))
}

/// A copy of `shared`'s fd where the sandbox's first process can take it.
fn shared_netns(shared: &crate::network::SharedNetwork) -> Result<Held> {
    crate::runtime::opening(|| {
        let fd = shared.fd().try_clone_to_owned().map_err(|e| Error::io("dup", "network namespace", e))?;
        let fd = crate::sys::high_fd(fd)?;
        Held::new(fd).ok_or_else(|| Error::io("hold", "network namespace", std::io::Error::other("no free slot")))
    })
}

/// A sandbox under way, with what the supervisor needs. `child` comes first: it is dropped
/// (killed and reaped) before the plans it reads.
pub(crate) struct Started {
    pub child: spawn::Child,
    /// slirp4netns serving the sandbox's network, if any: stopped once the sandbox is gone.
    pub network: Option<Attached>,
    /// A warm sandbox's own plan, which it read before its request (`pool.rs`).
    pub base: Option<Box<Plan>>,
    /// The pool a warm sandbox came from (`pool.rs`), type-erased so that this module
    /// does not import the one above it: its thread made the sandbox, which dies with that
    /// thread, so the pool lives at least as long as the run.
    pub pool: Option<Box<dyn std::any::Any + Send>>,
    /// The plan the run follows; it names what failed.
    pub plan: Box<Plan>,
    pub cgroup: Option<cgroup::Guard>,
    pub report: OwnedFd,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
    /// Readable when the caller cancels the run (`Running::canceller`).
    pub cancel: Option<OwnedFd>,
    /// Signals to pass on to the program (`Running::signal`).
    pub signals: Option<OwnedFd>,
    /// The caller's ends of piped stdio ([`crate::Stdin::Pipe`], [`crate::Output::Pipe`]):
    /// `spawn()` hands them to the caller, `run()` drops them.
    pub caller: Handles,
    /// The supervisor's ends of the output relays.
    pub relays: [Option<OwnedFd>; 2],
    /// The program's terminal, to type into.
    pub tty: Option<TtyInput>,
    /// When the caller asked for the run (`CLOCK_MONOTONIC`, ns).
    pub called: u64,
}

impl Started {
    /// A started sandbox and what it needs; drops our copies of the child's stdio fds (the
    /// child has its own; ours would keep the pipes from reaching end of file). With a
    /// terminal, waits (up to the wall time) for its master side, which the sandbox sends
    /// once its mounts are made: what the terminal shows is then read as stdout. The
    /// config's canceller, if any, is watched from the start.
    pub(crate) fn new(
        child: spawn::Child,
        plan: Box<Plan>,
        cgroup: Option<cgroup::Guard>,
        report: OwnedFd,
        stdio: Stdio,
        called: u64,
        config: &Config,
    ) -> Result<Started> {
        drop((stdio.child_stdin, stdio.child_stdout, stdio.child_stderr));
        let mut started = Started {
            child,
            network: None,
            base: None,
            pool: None,
            plan,
            cgroup,
            report,
            stdout: stdio.capture_stdout,
            stderr: stdio.capture_stderr,
            cancel: config.canceller.as_ref().map(crate::Canceller::watch).transpose()?,
            signals: None,
            caller: stdio.caller,
            relays: stdio.relays,
            tty: None,
            called,
        };
        if let Some(setup) = stdio.tty
            && let Some(master) = setup.receive(config.wall_time)?
        {
            let copy = |fd: &OwnedFd| fd.try_clone().map_err(|e| Error::io("dup", "terminal", e));
            started.stdout = Some(copy(&master)?);
            started.caller.tty = Some(copy(&master)?);
            started.tty = Some(TtyInput::new(master, setup.input, setup.typed));
        }
        Ok(started)
    }
}

/// Supervises the run to its end and derives the outcome; output relayed to a caller who
/// has not read it all yet is dropped (see [`finish_relaying`]).
pub(crate) fn finish(config: &Config, started: Started) -> Result<Outcome> {
    finish_relaying(config, started).0
}

/// Supervises the run to its end and derives the outcome, and gives back what relayed
/// output the caller has not taken yet. The one supervisor of every run: `run()` calls it
/// on the caller's thread, `spawn()` on a thread of its own.
pub(crate) fn finish_relaying(config: &Config, started: Started) -> (Result<Outcome>, Leftover) {
    let Started {
        mut child,
        network,
        base,
        pool,
        plan,
        cgroup,
        report,
        stdout,
        stderr,
        cancel,
        signals,
        caller,
        relays,
        tty,
        called,
    } = started;
    // The caller's ends are the caller's: without one (run()), stdin reads end of file.
    drop(caller);
    let limits = Enforce { wall_time: config.wall_time, cpu_time: config.cpu_time, output_limit: config.output_limit };
    let cg: Option<&dyn Cgroup> = cgroup.as_deref();
    let pipes = Pipes { report, stdout, stderr, relays, cancel, signals, tty };
    let watched = supervise::watch(&mut child, cg, pipes, limits);
    // The sandbox is reaped (or killed and reaped here): nothing reads the plans any more,
    // and the pool's thread may go.
    drop(child);
    drop((network, base, pool));
    let (watched, leftover) = match watched {
        Ok(pair) => pair,
        Err(e) => return (Err(e), Leftover::default()),
    };
    let outcome = watched
        .map_err(|failure| failure_error(&plan, failure))
        .and_then(|watched| outcome(config, &plan, cgroup.as_deref(), watched, called));
    (outcome, leftover)
}

/// The outcome from what the supervisor saw and the cgroup's (or rusage's) figures.
fn outcome(
    config: &Config,
    plan: &Plan,
    cgroup: Option<&dyn Cgroup>,
    watched: supervise::Watched,
    called: u64,
) -> Result<Outcome> {
    // Whole-tree figures from the cgroup; without one, rusage of the reaped tree.
    let usage = watched.reaped.usage;
    let mut stats = match cgroup {
        Some(cg) => cg.stats()?,
        None => Stats {
            user: timeval(usage.ru_utime),
            system: timeval(usage.ru_stime),
            cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
            memory_peak: (usage.ru_maxrss.max(0) as u64) * 1024,
            ..Stats::default()
        },
    };
    // The init's setup (mounts, mostly kernel time) is ours, not the program's.
    stats.cpu = stats.cpu.saturating_sub(watched.cpu_base);
    stats.system = stats.system.saturating_sub(watched.cpu_base);
    let (status, exit_code, signal) = outcome::derive(Evidence {
        ending: watched.ending,
        enforced: watched.enforced,
        oom_kills: stats.oom_kills,
        memory_limit_hits: stats.memory_limit_hits,
        cpu_exceeded: config.cpu_time.is_some_and(|limit| stats.cpu > limit),
        seccomp_kills: plan.program.seccomp_kills,
    });
    Ok(Outcome {
        status,
        exit_code,
        signal,
        cpu_time: stats.cpu,
        user_time: stats.user,
        system_time: stats.system,
        wall_time: watched.wall_time,
        setup_time: Duration::from_nanos(watched.started_at.map_or(0, |at| at.saturating_sub(called))),
        memory_peak: stats.memory_peak,
        approximate: cgroup.is_none(),
        stdout: watched.stdout,
        stderr: watched.stderr,
        stdout_truncated: watched.truncated[0],
        stderr_truncated: watched.truncated[1],
    })
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec.max(0) as u64) + Duration::from_micros(tv.tv_usec.max(0) as u64)
}

/// Turns the child's (step, index, errno) into an error naming the object it worked on.
fn failure_error(plan: &Plan, f: Failure) -> Error {
    let index = usize::from(f.index);
    match f.step {
        Step::Exec if f.errno == Errno::ENOENT => {
            Error::CommandNotFound { command: plan.program.command.clone(), searched: plan.program.searched() }
        }
        Step::Exec => Error::Setup {
            step: f.step,
            errno: f.errno,
            path: plan.program.candidates.get(index).map(|c| c.to_string_lossy().into_owned().into()),
        },
        Step::CgroupJoin => Error::Setup {
            step: f.step,
            errno: f.errno,
            path: plan.cgroup_join.get(index).map(|c| c.to_string_lossy().into_owned().into()),
        },
        Step::Workdir => Error::Setup {
            step: f.step,
            errno: f.errno,
            path: Some(plan.program.workdir.to_string_lossy().into_owned().into()),
        },
        Step::Overlay if f.errno == Errno::ENODEV => Error::overlay_missing(),
        step => {
            // Mount ops report their index; other steps report 0, so check the step matches.
            let path = plan.ops.get(index).filter(|op| op.step() == step).and_then(|_| plan.labels.get(index)).cloned();
            Error::Setup { step, errno: f.errno, path }
        }
    }
}
