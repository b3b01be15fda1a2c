//! [`Pool`]: sandboxes made ahead of time, so that a request pays only for what depends on
//! it.
//!
//! Parent side. A background thread keeps `size` warm sandboxes: each has its namespaces,
//! its cgroup, its overlay root with `/proc` and `/dev`, and waits before the caller's
//! bind mounts (`spawn::Warm`). A request then sets its limits on the cgroup, hands over
//! its plan and stdio, and the sandbox makes the binds, switches root, execs the init, and
//! the init forks and execs the program. Each warm sandbox serves one request and is
//! gone after it, like any other: nothing of one run is seen by the next. A request the
//! pool's sandboxes do not fit (another image, writable-layer size, user namespace, `/sys`
//! or cgroup setting), or that finds none ready, runs cold, the ordinary way.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::cgroup::{self, Guard};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::plan::Plan;
use crate::run::{self, Started};
use crate::spawn::{self, ChildFds, Warm};
use crate::stdio::{Stdio, pipe};

/// Sandboxes of one image and base settings, kept ready for requests; made by
/// [`SandboxBuilder::pool`](crate::SandboxBuilder::pool). Cheap to clone; the sandboxes
/// and the thread that makes them go when the last clone (and the last builder from
/// [`Pool::builder`]) is dropped.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// What the refill thread and the requests share.
struct Shared {
    image: Image,
    config: Config,
    /// The pool's own plan (for `/bin/true`), which requests are compared with.
    base: Box<Plan>,
    size: usize,
    /// Whether to make parked sandboxes (init exec'd ahead): yes while requests fit them,
    /// as the last one did. Warm sandboxes that are not parked serve every request that
    /// fits the pool, parked ones only those with no mounts, hostname or terminal of
    /// their own; this follows what the caller asks for.
    park: AtomicBool,
    state: Mutex<State>,
    /// Signalled when a sandbox is taken, made, or the pool stops.
    changed: Condvar,
    /// Runs served by a warm sandbox, and runs that went cold.
    warm_runs: AtomicU64,
    cold_runs: AtomicU64,
    /// The refill thread's tid (0 until it runs), and whether it is at idle priority.
    refill_tid: AtomicI32,
    idle: AtomicBool,
}

#[derive(Default)]
struct State {
    ready: VecDeque<WarmSandbox>,
    stop: bool,
    /// Why the last warm sandbox could not be made (requests then run cold and meet the
    /// same error themselves).
    last_error: Option<String>,
}

/// Stops the refill thread when the last handle goes.
struct Inner {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    owner: crate::runtime::Owner,
}

/// A warm sandbox. `child` first: dropping it kills and reaps the sandbox before the plan
/// it reads goes.
struct WarmSandbox {
    child: spawn::Child,
    plan: Box<Plan>,
    /// Its init is exec'd and waits for the request (`spawn::Warm::parked`).
    parked: bool,
    cgroup: Option<Guard>,
    report: OwnedFd,
    ctl: OwnedFd,
}

impl Pool {
    pub(crate) fn new(image: &Image, config: &Config, size: usize) -> Result<Pool> {
        if size == 0 || size > 64 {
            return Err(Error::config("a pool keeps 1 to 64 sandboxes ready"));
        }
        // Refuse what would refuse every request: a bad base config.
        let base = Box::new(Plan::new(image, config, &[OsString::from("/bin/true")])?);
        let shared = Arc::new(Shared {
            image: image.clone(),
            config: config.clone(),
            base,
            size,
            park: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            warm_runs: AtomicU64::new(0),
            cold_runs: AtomicU64::new(0),
            refill_tid: AtomicI32::new(0),
            idle: AtomicBool::new(false),
        });
        let worker = Arc::clone(&shared);
        // The thread that makes the sandboxes is their parent: it lives as long as the pool,
        // and when it ends, the sandboxes still waiting die with it (PR_SET_PDEATHSIG).
        let thread = std::thread::Builder::new()
            .name("isolette-pool".into())
            .spawn(move || refill(&worker))
            .map_err(|e| Error::io("spawn thread", "isolette-pool", e))?;
        Ok(Pool {
            inner: Arc::new(Inner { shared, thread: Mutex::new(Some(thread)), owner: crate::runtime::Owner::here() }),
        })
    }

    /// The image the pool's sandboxes are made from.
    pub(crate) fn image(&self) -> &Image {
        &self.inner.shared.image
    }

    /// The settings the pool was made with.
    pub(crate) fn config(&self) -> &Config {
        &self.inner.shared.config
    }

    /// How many sandboxes are ready now.
    pub fn ready(&self) -> usize {
        if !self.inner.owner.is_here() {
            return 0; // a fork's copy: the sandboxes are the parent's
        }
        self.inner.shared.lock().ready.len()
    }

    /// Waits up to `timeout` until all the pool's sandboxes are ready; whether they are.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        if !self.inner.owner.is_here() {
            return false;
        }
        let shared = &self.inner.shared;
        let (state, _) = shared
            .changed
            .wait_timeout_while(shared.lock(), timeout, |s| s.ready.len() < shared.size && !s.stop)
            .unwrap_or_else(|e| e.into_inner());
        state.ready.len() >= shared.size
    }

    /// How many runs were served by a warm sandbox, and how many ran cold (none was ready,
    /// or the request did not fit).
    pub fn served(&self) -> (u64, u64) {
        let shared = &self.inner.shared;
        (shared.warm_runs.load(Ordering::Relaxed), shared.cold_runs.load(Ordering::Relaxed))
    }

    /// Starts `argv` with `config` in a warm sandbox when one fits, else cold.
    pub(crate) fn begin(&self, image: &Image, config: &Config, argv: &[OsString]) -> Result<Started> {
        let called = crate::sys::monotonic_ns();
        let mut plan = Box::new(Plan::new(image, config, argv)?);
        let shared = &self.inner.shared;
        let parks = parks(&shared.base, &plan);
        shared.park.store(parks, Ordering::Relaxed);
        let mut stale = None;
        let Some(warm) = self.take(&plan, config, parks, &mut stale) else {
            shared.cold_runs.fetch_add(1, Ordering::Relaxed);
            let started = run::begin_planned(plan, config, called);
            // After the start: ending a sandbox waits for it.
            drop(stale);
            return started;
        };
        shared.warm_runs.fetch_add(1, Ordering::Relaxed);
        let WarmSandbox { child, plan: base, parked, cgroup, report, ctl } = warm;
        if nix::unistd::geteuid().is_root() {
            child.normal_priority()?;
        }
        // The sandbox's cgroup has the pool's limits; a request with others sets its own.
        if let Some(cg) = &cgroup
            && plan.cgroup_limits != base.cgroup_limits
        {
            cg.apply(&plan.cgroup_limits)?;
        }
        run::add_rlimits(&mut plan, config, cgroup.is_some());
        let stdio = Stdio::open(&config.stdin, &config.stdout, &config.stderr, config.tty.is_some())?;
        let stdin_out_err =
            [stdio.child_stdin.as_raw_fd(), stdio.child_stdout.as_raw_fd(), stdio.child_stderr.as_raw_fd()];
        if parked {
            child.request_parked(&plan, &ctl, stdin_out_err)?;
        } else {
            child.request(&plan, &ctl, stdin_out_err)?;
        }
        drop(ctl);
        Ok(Started {
            base: Some(base),
            pool: Some(Box::new(self.clone())),
            ..Started::new(child, plan, cgroup, report, stdio, called, config)?
        })
    }

    /// A ready sandbox that fits `plan` (`parks`: whether a parked one does), if any;
    /// wakes the refill thread. When all that are ready are parked and the request does
    /// not fit them, one goes into `stale`, for the caller to end, and the refill makes
    /// the kind the request needs in its place.
    fn take(&self, plan: &Plan, config: &Config, parks: bool, stale: &mut Option<WarmSandbox>) -> Option<WarmSandbox> {
        let shared = &self.inner.shared;
        // In a child of fork, the pool is its parent's: every run goes cold.
        if !self.inner.owner.is_here() || !fits(&shared.config, config, plan) {
            return None;
        }
        let mut state = shared.lock();
        let warm = match state.ready.iter().position(|w| parks || !w.parked) {
            Some(at) => state.ready.remove(at),
            None => {
                *stale = state.ready.pop_front();
                None
            }
        };
        if warm.is_none() {
            // This request runs cold: the refill is behind. Under the lock the refill
            // thread decides to idle under, so it cannot go idle again before it has
            // filled the pool.
            shared.boost();
        }
        drop(state);
        shared.changed.notify_all();
        warm.filter(|w| w.plan.ops[..w.plan.split] == plan.ops[..plan.split])
    }
}

/// Whether a request with `config` (planned as `plan`) can use a sandbox made for `base`:
/// the same namespaces and ids, the same cgroup controllers, and (checked against the
/// sandbox's own plan) the same ops up to the split.
fn fits(base: &Config, config: &Config, plan: &Plan) -> bool {
    let shape = |c: &Config| (c.cgroup, c.cpus.is_some(), c.cpuset.is_some(), c.memory.is_some(), c.pids.is_some());
    shape(base) == shape(config)
        && base.user_namespace == config.user_namespace
        && base.tmpfs_size == config.tmpfs_size
        && base.writable_layer.is_none()
        && config.writable_layer.is_none()
        && base.sys == config.sys
        && plan.network.is_none()
        && plan.split > 0
}

/// Whether a request planned as `plan` can use a parked sandbox made from `base`: nothing
/// after the split (mounts, the root switch) nor the hostname differs, and neither has a
/// terminal; what `fits` checks besides.
fn parks(base: &Plan, plan: &Plan) -> bool {
    plan.ops[plan.split..] == base.ops[base.split..]
        && plan.hostname == base.hostname
        && plan.tty.is_none()
        && base.tty.is_none()
        && plan.drop_bounding_set == base.drop_bounding_set
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request found no sandbox ready: the refill thread gets the ordinary priority until
    /// the pool is full again. At idle priority it starves while every cpu is busy, exactly
    /// when requests need it; worse, a cold request then waits for whatever kernel lock
    /// (cgroup, mount namespace) the starved thread holds, and runs slower than a cold run
    /// without a pool. While the pool keeps up, the refill stays idle, so that making the
    /// next sandbox never takes a cpu from a request's own setup.
    fn boost(&self) {
        let tid = self.refill_tid.load(Ordering::Acquire);
        if tid != 0 && self.idle.swap(false, Ordering::AcqRel) {
            crate::sys::set_scheduler(tid, libc::SCHED_OTHER);
        }
    }
}

/// The refill thread: keeps `size` sandboxes ready until the pool stops. For root it runs
/// at idle priority, so that making sandboxes ahead never takes a cpu from a run, except
/// from a request that found the pool empty until it is full again ([`Shared::boost`]); a
/// request gives its own sandbox the ordinary priority back (which only root may).
fn refill(shared: &Shared) {
    let root = nix::unistd::geteuid().is_root();
    shared.refill_tid.store(nix::unistd::gettid().as_raw(), Ordering::Release);
    loop {
        {
            let mut state = shared.lock();
            if root && state.ready.len() >= shared.size && !shared.idle.swap(true, Ordering::AcqRel) {
                crate::sys::idle_priority();
            }
            while !state.stop && state.ready.len() >= shared.size {
                state = shared.changed.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            if state.stop {
                break;
            }
        }
        match make(&shared.image, &shared.config, shared.park.load(Ordering::Relaxed)) {
            Ok(warm) => {
                let mut state = shared.lock();
                state.ready.push_back(warm);
                state.last_error = None;
                shared.changed.notify_all();
            }
            Err(e) => {
                let mut state = shared.lock();
                state.last_error = Some(e.to_string());
                // Not in a tight loop: the host may be out of something for a while.
                let _ = shared.changed.wait_timeout(state, Duration::from_millis(200));
            }
        }
    }
    // The sandboxes still waiting go with the thread that made them.
    let ready = std::mem::take(&mut shared.lock().ready);
    drop(ready);
}

/// Makes one warm sandbox of `image` with `config`'s base settings; `parked`, with its
/// init exec'd and waiting.
fn make(image: &Image, config: &Config, parked: bool) -> Result<WarmSandbox> {
    let mut plan = Box::new(Plan::new(image, config, &[OsString::from("/bin/true")])?);
    let cgroup = if config.cgroup { cgroup::acquire(&plan.cgroup_limits)? } else { None };
    let (report, report_w) = pipe()?;
    let (ctl, ctl_child) = crate::sys::socket_pair()?;
    // Until the request's stdio arrives, the report pipe stands in for it.
    let w = report_w.as_raw_fd();
    let fds = ChildFds { sync_r: -1, report_w: w, stdin: w, stdout: w, stderr: w, init: -1 };
    let warm = Warm { split: plan.split, ctl: ctl_child.as_raw_fd(), parked };
    // Warm sandboxes have loopback only; a request with a network runs cold (`fits`).
    plan.network = None;
    let (child, _, _) = run::start(&mut plan, fds, cgroup.as_deref(), Some(warm))?;
    drop((report_w, ctl_child));
    Ok(WarmSandbox { child, plan, parked, cgroup, report, ctl })
}

impl Drop for Inner {
    fn drop(&mut self) {
        if !self.owner.is_here() {
            // A fork's copy: its thread and sandboxes are the parent's, and a lock that
            // thread held at the fork stays held here. Leave it all be.
            std::mem::forget(Arc::clone(&self.shared));
            std::mem::forget(self.thread.get_mut().ok().and_then(Option::take));
            return;
        }
        self.shared.lock().stop = true;
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.inner.owner.is_here() {
            return f.write_str("Pool { (the parent process's) }");
        }
        let state = self.inner.shared.lock();
        f.debug_struct("Pool")
            .field("size", &self.inner.shared.size)
            .field("ready", &state.ready.len())
            .field("last_error", &state.last_error)
            .finish()
    }
}
