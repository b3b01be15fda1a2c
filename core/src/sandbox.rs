//! The API: [`Sandbox`] and [`SandboxBuilder`], whose setters fill in a [`Config`] and
//! whose verbs ([`run`](SandboxBuilder::run), [`spawn`](SandboxBuilder::spawn),
//! [`pool`](SandboxBuilder::pool), [`check`](SandboxBuilder::check)) hand it to the
//! lifecycle below; [`pipe`] to join two sandboxes.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cancel::Canceller;
use crate::config::{Config, MountSpec};
use crate::error::Result;
use crate::image::Image;
use crate::network::{EgressRule, Network, Publish};
use crate::outcome::Outcome;
use crate::pool::Pool;
use crate::running::Running;
use crate::seccomp::SeccompPolicy;
use crate::stdio::{Output, SharedFd, Stdin};

/// Runs commands in sandboxes. See [`Sandbox::run`] and [`Sandbox::builder`].
#[derive(Debug)]
pub struct Sandbox {
    _private: (),
}

impl Sandbox {
    /// Runs `cmd` in a new sandbox made from `image`, with the default limits.
    ///
    /// ```no_run
    /// use isolette::{Image, Sandbox, Status};
    /// let image = Image::open("images/python")?;
    /// let out = Sandbox::run(&image, ["python3", "-c", "print(6*7)"])?;
    /// assert_eq!((out.status, &out.stdout[..]), (Status::Ok, &b"42\n"[..]));
    /// # Ok::<(), isolette::Error>(())
    /// ```
    pub fn run<I, S>(image: &Image, cmd: I) -> Result<Outcome>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Sandbox::builder(image).run(cmd)
    }

    /// Starts a builder to set limits, mounts, environment and I/O before running.
    pub fn builder(image: &Image) -> SandboxBuilder {
        SandboxBuilder { image: image.clone(), config: Config::default(), pool: None }
    }
}

/// A pipe, `(read end, write end)`, to join two sandboxes: one's [`Output::Fd`] to the
/// other's [`Stdin::Fd`], as a judge joins a solution and an interactor.
///
/// ```no_run
/// use isolette::{Output, Sandbox, Stdin};
/// # let image = isolette::Image::open("img")?;
/// let (to_solution, from_interactor) = isolette::pipe()?;
/// let (to_interactor, from_solution) = isolette::pipe()?;
/// let solution = Sandbox::builder(&image).stdin_from(Stdin::Fd(to_solution))
///     .stdout(Output::Fd(from_solution)).spawn(["./solution"])?;
/// let interactor = Sandbox::builder(&image).stdin_from(Stdin::Fd(to_interactor))
///     .stdout(Output::Fd(from_interactor)).spawn(["./interactor"])?;
/// let verdict = interactor.wait()?; // its exit code says whether the solution got it right
/// # Ok::<(), isolette::Error>(())
/// ```
pub fn pipe() -> Result<(SharedFd, SharedFd)> {
    let (r, w) = crate::stdio::pipe()?;
    Ok((r.into(), w.into()))
}

/// Sets limits, mounts, environment and I/O of a run; made by [`Sandbox::builder`].
///
/// Every setter takes and returns the builder, so calls chain; nothing is checked until
/// [`run`](SandboxBuilder::run), which refuses a bad config before creating anything.
#[derive(Debug, Clone)]
#[must_use]
pub struct SandboxBuilder {
    image: Image,
    config: Config,
    /// Where runs take a warm sandbox from (see [`Pool::builder`]).
    pool: Option<Pool>,
}

impl SandboxBuilder {
    /// Wall-clock limit, from exec to the end of the run (default 10 s); the whole sandbox is
    /// killed when it passes, with status `wall_time_limit`.
    ///
    /// ```no_run
    /// # let image = isolette::Image::open("img")?;
    /// let out = isolette::Sandbox::builder(&image)
    ///     .wall_time(std::time::Duration::from_millis(1500))
    ///     .run(["/bin/sleep", "5"])?;
    /// assert_eq!(out.status, isolette::Status::WallTimeLimit);
    /// # Ok::<(), isolette::Error>(())
    /// ```
    pub fn wall_time(mut self, limit: Duration) -> Self {
        self.config.wall_time = limit;
        self
    }

    /// Cpu-time limit (user + system) of the whole process tree; status `cpu_time_limit`
    /// when passed. Off by default (the wall-time limit bounds a run anyway).
    ///
    /// ```no_run
    /// # let image = isolette::Image::open("img")?;
    /// let out = isolette::Sandbox::builder(&image)
    ///     .cpu_time(std::time::Duration::from_millis(500))
    ///     .run(["/usr/local/bin/isolette-probe", "spin"])?;
    /// assert_eq!(out.status, isolette::Status::CpuTimeLimit);
    /// # Ok::<(), isolette::Error>(())
    /// ```
    pub fn cpu_time(mut self, limit: Duration) -> Self {
        self.config.cpu_time = Some(limit);
        self
    }

    /// Memory limit in bytes of the whole process tree, swap off (default 512 MiB); the
    /// kernel's OOM kill inside gives status `memory_limit`.
    ///
    /// ```
    /// # fn f(image: &isolette::Image) {
    /// let b = isolette::Sandbox::builder(image).memory(256 << 20);
    /// # }
    /// ```
    pub fn memory(mut self, bytes: u64) -> Self {
        self.config.memory = Some(bytes);
        self
    }

    /// Limit on processes and threads of the program's tree (default 128); past it,
    /// `fork` and `clone` fail with `EAGAIN` inside and the run goes on.
    pub fn pids(mut self, max: u64) -> Self {
        self.config.pids = Some(max);
        self
    }

    /// Largest file the program may write (`RLIMIT_FSIZE`); a program killed by `SIGXFSZ`
    /// gets status `output_limit`.
    pub fn fsize(mut self, bytes: u64) -> Self {
        self.config.fsize = Some(bytes);
        self
    }

    /// Hard limit on open files (default 256); the program cannot raise it.
    pub fn nofile(mut self, max: u64) -> Self {
        self.config.nofile = max;
        self
    }

    /// Stack size limit (`RLIMIT_STACK`); the caller's own limit by default.
    pub fn stack(mut self, bytes: u64) -> Self {
        self.config.stack = Some(bytes);
        self
    }

    /// Cpu bandwidth in cores (`1.5` = one and a half cores), through the cgroup cpu quota.
    pub fn cpus(mut self, cores: f64) -> Self {
        self.config.cpus = Some(cores);
        self
    }

    /// Cpus the program may run on, as a cpuset list (`"0"`, `"0-1"`, `"0,2"`).
    pub fn cpuset(mut self, cpus: impl Into<String>) -> Self {
        self.config.cpuset = Some(cpus.into());
        self
    }

    /// The system call policy (default: [`SeccompPolicy::default_deny`], killing the
    /// process, status `syscall_blocked`).
    ///
    /// ```
    /// use isolette::{SeccompAction, SeccompPolicy};
    /// # fn f(image: &isolette::Image) {
    /// let b = isolette::Sandbox::builder(image).seccomp(SeccompPolicy::default_deny().with_action(SeccompAction::Errno));
    /// # }
    /// ```
    pub fn seccomp(mut self, policy: SeccompPolicy) -> Self {
        self.config.seccomp = policy;
        self
    }

    /// Whether to use a cgroup (default: yes, where the host allows). Without one there are
    /// no pids limit or cpu quota, memory is limited per process (`RLIMIT_AS`), cpu time per
    /// process in whole seconds (`RLIMIT_CPU`), and the figures are approximate (rusage).
    pub fn cgroup(mut self, on: bool) -> Self {
        self.config.cgroup = on;
        self
    }

    /// Mounts a fresh read-only `/sys` (off by default: a judged program rarely needs it,
    /// and it shows the host's hardware).
    pub fn sys(mut self, on: bool) -> Self {
        self.config.sys = on;
        self
    }

    /// Cap on captured stdout + stderr bytes (default 64 MiB); past it the run is killed
    /// with status `output_limit` and the captured output is exactly this long.
    pub fn output_limit(mut self, bytes: u64) -> Self {
        self.config.output_limit = bytes;
        self
    }

    /// Size of the per-run writable layer, shared with `/tmp` and `/dev/shm` (default
    /// 256 MiB); writes past it fail with `ENOSPC` inside.
    pub fn tmpfs_size(mut self, bytes: u64) -> Self {
        self.config.tmpfs_size = bytes;
        self
    }

    /// Keeps the writable layer in the host directory `dir` instead of a tmpfs: overlayfs's
    /// upper directory is `dir/upper` and its work directory `dir/work` (made when
    /// missing). What the program changed stays there after the run, a deletion as
    /// overlayfs marks it (a character device 0/0), which is what
    /// [`build::write_layer`](crate::build::write_layer) makes an image layer of: a build
    /// step's layer. `dir` must be an absolute path to a directory on a filesystem
    /// overlayfs can write to (not an overlay itself); [`tmpfs_size`](Self::tmpfs_size)
    /// then limits only `/tmp` and `/dev/shm`. With a user namespace, the namespace's root
    /// must be able to write in `dir`. The files the sandbox gets in `/etc` (`hosts`,
    /// `resolv.conf` with a network) and its mount points (`/proc`, `/dev`, `/tmp`) go in
    /// `dir/init`, a layer below the writable one, as Docker's init layer: the writable
    /// layer holds only what the program changed. A run with one never takes a warm
    /// sandbox from a pool.
    pub fn writable_layer(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.writable_layer = Some(dir.into());
        self
    }

    /// Adds an environment variable. The program sees only these, plus a default `PATH`
    /// when none is given. Names and values are bytes (`&str`, `OsStr`, `String`, ...),
    /// passed as they are; a name may not be empty or hold `=`, and neither may hold NUL.
    ///
    /// ```
    /// # fn f(image: &isolette::Image) {
    /// let b = isolette::Sandbox::builder(image).env("LANG", "C.UTF-8");
    /// # }
    /// ```
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.config.env.push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Working directory inside the sandbox (default: the image's, else `/`); it must exist
    /// in the image or be a mount target.
    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.workdir = Some(dir.into());
        self
    }

    /// Binds a host file or directory read-only at `target` inside the sandbox.
    ///
    /// ```
    /// # fn f(image: &isolette::Image) {
    /// let b = isolette::Sandbox::builder(image).mount_ro("/srv/tests/17", "/data");
    /// # }
    /// ```
    pub fn mount_ro(self, source: impl AsRef<Path>, target: impl AsRef<Path>) -> Self {
        self.mount(MountSpec { source: source.as_ref().into(), target: target.as_ref().into(), writable: false })
    }

    /// Binds a host file or directory writable at `target` inside the sandbox.
    pub fn mount_rw(self, source: impl AsRef<Path>, target: impl AsRef<Path>) -> Self {
        self.mount(MountSpec { source: source.as_ref().into(), target: target.as_ref().into(), writable: true })
    }

    /// Adds a bind mount (see [`MountSpec::parse`] for the `SRC:DST[:rw]` form).
    pub fn mount(mut self, spec: MountSpec) -> Self {
        self.config.mounts.push(spec);
        self
    }

    /// Binds a named volume of the store ([`Store::volume`](crate::Store::volume)) at
    /// `target`: its files outlive the run, and it cannot be removed while this builder,
    /// or a run started from it, lives.
    ///
    /// ```no_run
    /// let store = isolette::Store::open_default()?;
    /// let image = store.image("python:3.12")?;
    /// let data = store.volume("scratch")?;
    /// isolette::Sandbox::builder(&image).volume(&data, "/data", true).run(["sh", "-c", "date >> /data/log"])?;
    /// # Ok::<(), isolette::Error>(())
    /// ```
    #[cfg(feature = "store")]
    pub fn volume(mut self, volume: &crate::Volume, target: impl AsRef<Path>, writable: bool) -> Self {
        self.config.leases.push(volume.lease());
        self.mount(MountSpec { source: volume.path().into(), target: target.as_ref().into(), writable })
    }

    /// Feeds these bytes to the program's stdin, then end of file.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.config.stdin = Stdin::Bytes(input.into());
        self
    }

    /// Sets where stdin comes from.
    pub fn stdin_from(mut self, stdin: Stdin) -> Self {
        self.config.stdin = stdin;
        self
    }

    /// Sets where stdout goes (captured by default).
    pub fn stdout(mut self, out: Output) -> Self {
        self.config.stdout = out;
        self
    }

    /// Sets where stderr goes (captured by default).
    pub fn stderr(mut self, out: Output) -> Self {
        self.config.stderr = out;
        self
    }

    /// Gives the program a new terminal (24 rows, 80 columns) as stdin, stdout and stderr,
    /// as `docker run -t` does: a pseudo-terminal of the sandbox's own devpts (the host's
    /// terminals stay out of sight), with the program as session leader and the terminal
    /// as its controlling one, so a shell's job control, a REPL's line editing and Ctrl-C
    /// (byte 3) work. Terminal injection (`TIOCSTI`) is still refused.
    ///
    /// What the terminal shows is stdout: captured (counted against the output limit) or,
    /// with [`Output::Pipe`], streamed ([`Running::take_stdout`]); stderr goes there too
    /// and must stay [`Output::Capture`]. What is typed comes from stdin: [`Stdin::Null`]
    /// (nothing), [`Stdin::Bytes`] (typed at the start; a line starting with byte 4 is end
    /// of file) or [`Stdin::Pipe`] ([`Running::take_stdin`]). Other settings are refused.
    ///
    /// ```no_run
    /// # let image = isolette::Image::open("img")?;
    /// let out = isolette::Sandbox::builder(&image).tty(true).run(["/bin/sh", "-c", "tty"])?;
    /// assert_eq!(out.stdout, b"/dev/pts/0\r\n"); // a terminal ends lines with CR LF
    /// # Ok::<(), isolette::Error>(())
    /// ```
    ///
    /// [`Running::take_stdout`]: crate::Running::take_stdout
    /// [`Running::take_stdin`]: crate::Running::take_stdin
    pub fn tty(mut self, on: bool) -> Self {
        self.config.tty = on.then_some(self.config.tty.unwrap_or((24, 80)));
        self
    }

    /// A terminal as [`tty`](SandboxBuilder::tty), of `rows` by `cols` characters; a
    /// running one is resized with [`Running::resize`](crate::Running::resize).
    pub fn tty_size(mut self, rows: u16, cols: u16) -> Self {
        self.config.tty = Some((rows, cols));
        self
    }

    /// Runs started from this builder end `cancelled` when `canceller` is cancelled, from
    /// any thread, whether they were started with [`run`](SandboxBuilder::run) (on the
    /// caller's thread) or [`spawn`](SandboxBuilder::spawn).
    ///
    /// ```no_run
    /// # let image = isolette::Image::open("img")?;
    /// let stop = isolette::Canceller::new()?;
    /// let on_timeout = stop.clone();
    /// std::thread::spawn(move || on_timeout.cancel());
    /// let out = isolette::Sandbox::builder(&image).canceller(&stop).run(["/bin/sleep", "60"])?;
    /// # Ok::<(), isolette::Error>(())
    /// ```
    pub fn canceller(mut self, canceller: &Canceller) -> Self {
        self.config.canceller = Some(canceller.clone());
        self
    }

    /// How the sandbox reaches the network: [`Network::None`](Network::None) (the
    /// default: its own loopback, up, and nothing else) or
    /// [`Network::Outbound`](Network::Outbound) (the internet, through `slirp4netns`).
    pub fn network(mut self, network: Network) -> Self {
        self.config.net.network = network;
        self
    }

    /// Publishes a sandbox port on the host, as `docker run -p` does. The mapping lives
    /// exactly as long as the sandbox; a host port in use is an error before anything
    /// starts; host port 0 takes a free one ([`Running::ports`](crate::Running::ports)
    /// tells which). With [`Network::None`](Network::None), the published ports are
    /// all the sandbox has: it still reaches nothing outside (egress rules deny it all).
    ///
    /// ```no_run
    /// # let image = isolette::Image::open("images/python")?;
    /// use isolette::Publish;
    /// let server = isolette::Sandbox::builder(&image)
    ///     .publish(Publish::tcp([127, 0, 0, 1].into(), 0, 8000))
    ///     .spawn(["python3", "-m", "http.server", "8000"])?;
    /// println!("listening on {}", server.ports()[0]);
    /// # Ok::<(), isolette::Error>(())
    /// ```
    pub fn publish(mut self, publish: Publish) -> Self {
        self.config.net.publish.push(publish);
        self
    }

    /// Lets an outbound sandbox reach services on the host's loopback (at the address of
    /// its default gateway). Off by default.
    pub fn host_loopback(mut self, allow: bool) -> Self {
        self.config.net.host_loopback = allow;
        self
    }

    /// Adds an egress rule for an outbound sandbox ([`EgressRule`](EgressRule)):
    /// the rules are matched in order and the first match decides; what none matches is
    /// allowed, unless there is an allow rule, and then refused. Loaded into the sandbox's
    /// own network namespace (with `nft`) before the program starts.
    ///
    /// ```no_run
    /// # let image = isolette::Image::open("images/python")?;
    /// use isolette::{EgressRule, Network};
    /// let only_dns_and_https = isolette::Sandbox::builder(&image)
    ///     .network(Network::Outbound)
    ///     .egress(EgressRule::parse(true, "0.0.0.0/0:53")?)
    ///     .egress(EgressRule::parse(true, "0.0.0.0/0:443")?);
    /// # Ok::<(), isolette::Error>(())
    /// ```
    pub fn egress(mut self, rule: EgressRule) -> Self {
        self.config.net.egress.push(rule);
        self
    }

    /// Hostname inside the sandbox (default `isolette`).
    pub fn hostname(mut self, name: impl Into<String>) -> Self {
        self.config.hostname = name.into();
        self
    }

    /// A build step's run: a user namespace whose ids are the host's, in which
    /// [`user`](Self::user) may be 0 and root keeps Docker's default capabilities.
    pub(crate) fn build_root(mut self) -> Self {
        self.config.build_root = true;
        self
    }

    /// Whether to use a user namespace. Callers that are not root always get one; for
    /// root it is off by default and the program runs as a dedicated host uid instead.
    pub fn user_namespace(mut self, on: bool) -> Self {
        self.config.user_namespace = Some(on);
        self
    }

    /// The program's uid and gid inside the sandbox (default: the image's user, else
    /// 60000:60000); never 0.
    pub fn user(mut self, uid: u32, gid: u32) -> Self {
        self.config.user = Some((uid, gid));
        self
    }

    /// Replaces the image's entrypoint (`docker run --entrypoint`); an empty list runs the
    /// command as given.
    pub fn entrypoint<I, S>(mut self, entrypoint: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.config.entrypoint = Some(entrypoint.into_iter().map(|s| s.as_ref().to_owned()).collect());
        self
    }

    /// Validates the config for `cmd` exactly as [`run`](SandboxBuilder::run) would, and
    /// creates nothing: a way to refuse a bad request before queueing it.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let image = isolette::Image::open(dir.path())?;
    /// let b = isolette::Sandbox::builder(&image);
    /// assert!(b.check(["python3", "sol.py"]).is_ok());
    /// assert!(b.clone().env("BAD", "nul\0").check(["python3"]).is_err());
    /// # Ok::<(), isolette::Error>(())
    /// ```
    pub fn check<I, S>(&self, cmd: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let argv = argv(cmd);
        crate::plan::Plan::new(&self.image, &self.config, &argv).map(drop)
    }

    /// Keeps `size` sandboxes of this builder's image and settings ready ahead of requests
    /// (namespaces, cgroup, overlay root, `/proc` and `/dev` made; the first process
    /// waiting before the bind mounts), made again in the background as they are used. Runs
    /// through [`Pool::builder`] then pay only for their own bind mounts, the switch of root,
    /// and the exec of the program; each sandbox serves one run only. A request whose
    /// writable-layer size, user namespace, `/sys` or cgroup settings differ from this
    /// builder's runs cold, the ordinary way.
    ///
    /// ```no_run
    /// # let image = isolette::Image::open("img")?;
    /// let pool = isolette::Sandbox::builder(&image).pool(2)?;
    /// let out = pool.builder().wall_time(std::time::Duration::from_secs(1)).run(["/bin/true"])?;
    /// # Ok::<(), isolette::Error>(())
    /// ```
    pub fn pool(&self, size: usize) -> Result<Pool> {
        Pool::new(&self.image, &self.config, size)
    }

    /// Validates the config, runs `cmd` and returns its outcome.
    ///
    /// The arguments are bytes (`&str`, `OsStr`, `String`, `OsString`, paths), passed to
    /// `execve` exactly as given. A bad config, an unusable image, a command missing from
    /// the image or a failed setup step is an `Err`; whatever the program does is an
    /// [`Outcome`].
    pub fn run<I, S>(&self, cmd: I) -> Result<Outcome>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        crate::run::finish(&self.config, self.begin(&argv(cmd))?)
    }

    /// Starts `cmd` and returns, once the sandbox is made, with a [`Running`] handle: wait
    /// for the outcome, stop the run, or hand a [`Canceller`](Canceller) to another
    /// thread. The limits hold whether or not anyone waits (the sandbox is supervised on a
    /// thread of its own, and dies with that thread, not with the caller's); dropping the
    /// handle stops the run. A bad config is an `Err` here; a failure inside the sandbox
    /// (a command missing from the image) comes from [`Running::wait`].
    ///
    /// ```no_run
    /// # let image = isolette::Image::open("img")?;
    /// let mut running = isolette::Sandbox::builder(&image).spawn(["./solution"])?;
    /// match running.wait_timeout(std::time::Duration::from_secs(1))? {
    ///     Some(outcome) => println!("{}", outcome.status),
    ///     None => running.kill(), // and drop it, or wait() for the figures so far
    /// }
    /// # Ok::<(), isolette::Error>(())
    /// ```
    pub fn spawn<I, S>(&self, cmd: I) -> Result<Running>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let (builder, argv) = (self.clone(), argv(cmd));
        Running::spawn(self.config.clone(), move || builder.begin(&argv))
    }

    /// Starts a sandbox, warm from the pool when there is one that fits, else cold.
    fn begin(&self, argv: &[OsString]) -> Result<crate::run::Started> {
        match &self.pool {
            Some(pool) => pool.begin(&self.image, &self.config, argv),
            None => crate::run::begin(&self.image, &self.config, argv),
        }
    }
}

fn argv<I, S>(cmd: I) -> Vec<OsString>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    cmd.into_iter().map(|s| s.as_ref().to_owned()).collect()
}

impl Pool {
    /// A builder whose runs take a warm sandbox from this pool when one fits, with the
    /// pool's image and settings to start from.
    ///
    /// ```no_run
    /// # let image = isolette::Image::open("img")?;
    /// let pool = isolette::Sandbox::builder(&image).pool(4)?;
    /// let out = pool.builder().memory(256 << 20).stdin("21\n").run(["./solution"])?;
    /// # Ok::<(), isolette::Error>(())
    /// ```
    pub fn builder(&self) -> SandboxBuilder {
        SandboxBuilder { image: self.image().clone(), config: self.config().clone(), pool: Some(self.clone()) }
    }
}
