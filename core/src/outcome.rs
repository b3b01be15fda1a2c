//! [`Outcome`] and [`Status`]: the verdict of a run, the precedence that derives it, and
//! the one shape every surface shows it in ([`Outcome::fields`], [`Outcome::to_json`]).
//!
//! Parent side, pure. `derive` turns what the supervisor saw (the program's wait status
//! and the limit it enforced, if any) into one status.

use std::fmt;
use std::time::Duration;

use base64::Engine;

/// The verdict of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Status {
    /// Exited with code 0.
    Ok,
    /// Exited with a non-zero code.
    RuntimeError,
    /// Died on a signal it caused itself (for example `SIGSEGV`, or `SIGABRT` from `abort()`).
    Signaled,
    /// Used more cpu time than allowed.
    CpuTimeLimit,
    /// Ran longer than the wall-time limit; the sandbox was killed.
    WallTimeLimit,
    /// Hit the memory limit.
    MemoryLimit,
    /// Wrote more than the output limit; the sandbox was killed.
    OutputLimit,
    /// Made a system call the seccomp policy forbids.
    SyscallBlocked,
    /// Stopped by the caller ([`Running::kill`](crate::Running::kill) or a
    /// [`Canceller`](crate::Canceller)); the figures are those measured until then.
    Cancelled,
}

impl Status {
    /// Every status, in the order the docs list them; the bindings' lists are tested
    /// against it.
    pub const ALL: [Status; 9] = [
        Status::Ok,
        Status::RuntimeError,
        Status::Signaled,
        Status::CpuTimeLimit,
        Status::WallTimeLimit,
        Status::MemoryLimit,
        Status::OutputLimit,
        Status::SyscallBlocked,
        Status::Cancelled,
    ];

    /// The snake_case name used in JSON and by the bindings (`ok`, `wall_time_limit`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::RuntimeError => "runtime_error",
            Status::Signaled => "signaled",
            Status::CpuTimeLimit => "cpu_time_limit",
            Status::WallTimeLimit => "wall_time_limit",
            Status::MemoryLimit => "memory_limit",
            Status::OutputLimit => "output_limit",
            Status::SyscallBlocked => "syscall_blocked",
            Status::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = crate::Error;

    /// A status by its name ([`Status::as_str`]).
    fn from_str(name: &str) -> crate::Result<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name).ok_or_else(|| {
            let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            crate::Error::config(format!("unknown status `{name}`; the statuses are: {}", names.join(", ")))
        })
    }
}

/// What a run produced: the verdict and its measurements.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// The verdict.
    pub status: Status,
    /// Exit code, when the program exited.
    pub exit_code: Option<i32>,
    /// Signal number, when the program died on a signal (also when a limit killed it).
    pub signal: Option<i32>,
    /// User + system cpu time of the whole process tree.
    pub cpu_time: Duration,
    /// User cpu time of the whole process tree.
    pub user_time: Duration,
    /// System cpu time of the whole process tree.
    pub system_time: Duration,
    /// Monotonic time from exec to the end of the program.
    pub wall_time: Duration,
    /// Monotonic time from the call that ran it to the program's `execve`: what making the
    /// sandbox cost (zero when the program never started).
    pub setup_time: Duration,
    /// Peak memory in bytes.
    pub memory_peak: u64,
    /// Whether `cpu_time` and `memory_peak` are approximate (no cgroup accounting: cpu from
    /// rusage of reaped processes, memory the largest single process's peak RSS).
    pub approximate: bool,
    /// Captured stdout (empty when redirected).
    pub stdout: Vec<u8>,
    /// Captured stderr (empty when redirected).
    pub stderr: Vec<u8>,
    /// Whether the output cap cut stdout: the program wrote more than `stdout` holds.
    pub stdout_truncated: bool,
    /// Whether the output cap cut stderr.
    pub stderr_truncated: bool,
}

/// The value of one field of an [`Outcome`], typed so that each surface shows it in its
/// own units (the CLI's JSON and Python in seconds, Node in milliseconds) from one list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Field<'a> {
    /// The verdict.
    Status(Status),
    /// A number that may be absent (the exit code, the signal).
    Int(Option<i32>),
    /// A span of time.
    Time(Duration),
    /// A size in bytes.
    Bytes(u64),
    /// A yes or no.
    Flag(bool),
    /// Captured output: bytes, shown as text only where they are valid UTF-8.
    Output(&'a [u8]),
}

impl Outcome {
    /// The names of [`fields`](Outcome::fields) (snake_case), in the order
    /// `isolette run --json` prints them.
    pub const FIELDS: [&'static str; 14] = [
        "status",
        "exit_code",
        "signal",
        "cpu_time",
        "user_time",
        "system_time",
        "wall_time",
        "setup_time",
        "memory_peak",
        "approximate",
        "stdout_truncated",
        "stderr_truncated",
        "stdout",
        "stderr",
    ];

    /// Every field with its name ([`FIELDS`](Outcome::FIELDS)): what the bindings'
    /// `Outcome` types, `to_dict` and `toJSON` are made from, so a new field is one edit
    /// here (and the type stubs).
    pub fn fields(&self) -> [(&'static str, Field<'_>); 14] {
        let values = [
            Field::Status(self.status),
            Field::Int(self.exit_code),
            Field::Int(self.signal),
            Field::Time(self.cpu_time),
            Field::Time(self.user_time),
            Field::Time(self.system_time),
            Field::Time(self.wall_time),
            Field::Time(self.setup_time),
            Field::Bytes(self.memory_peak),
            Field::Flag(self.approximate),
            Field::Flag(self.stdout_truncated),
            Field::Flag(self.stderr_truncated),
            Field::Output(&self.stdout),
            Field::Output(&self.stderr),
        ];
        let mut names = Outcome::FIELDS.into_iter();
        values.map(|value| (names.next().unwrap_or_default(), value))
    }

    /// The outcome as `isolette run --json` prints it: times in seconds, the status by
    /// name, and each output as text when it is valid UTF-8, else (never lossily) as
    /// base64 under `stdout_base64` / `stderr_base64`.
    ///
    /// ```
    /// # fn show(out: &isolette::Outcome) {
    /// let json = out.to_json();
    /// assert!(json["status"].is_string() && json["wall_time"].is_f64());
    /// # }
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (name, field) in self.fields() {
            match field {
                Field::Output(bytes) => match std::str::from_utf8(bytes) {
                    Ok(text) => map.insert(name.into(), text.into()),
                    Err(_) => map.insert(format!("{name}_base64"), output_base64(bytes).into()),
                },
                Field::Status(status) => map.insert(name.into(), status.as_str().into()),
                Field::Int(n) => map.insert(name.into(), n.into()),
                Field::Time(d) => map.insert(name.into(), d.as_secs_f64().into()),
                Field::Bytes(n) => map.insert(name.into(), n.into()),
                Field::Flag(on) => map.insert(name.into(), on.into()),
            };
        }
        serde_json::Value::Object(map)
    }
}

/// Output that is not text, as [`Outcome::to_json`] shows it (standard base64, padded).
fn output_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A limit the supervisor enforced by killing the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enforced {
    WallTime,
    CpuTime,
    Output,
    /// The caller cancelled the run.
    Cancelled,
}

/// How the program ended, as its init saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Exited(i32),
    Signaled(i32),
    /// Killed before the program reported an ending (the sandbox was torn down).
    Killed,
}

/// Everything a verdict depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Evidence {
    pub ending: Ending,
    pub enforced: Option<Enforced>,
    /// OOM kills in the run's cgroup.
    pub oom_kills: u64,
    /// Times the run's cgroup hit its memory limit.
    pub memory_limit_hits: u64,
    /// The whole tree used more cpu than allowed, even if it ended before being stopped.
    pub cpu_exceeded: bool,
    /// Forbidden system calls kill the process, so a death by `SIGSYS` is the filter's.
    pub seccomp_kills: bool,
}

/// The precedence table of DESIGN.md: a limit the supervisor enforced, then the kernel's
/// OOM kill, win over the signal or exit code they caused; then the signals the rlimits
/// send (`SIGXCPU`, `SIGXFSZ`); then a failure after the memory limit was hit; then the
/// signal; then the exit code.
pub(crate) fn derive(e: Evidence) -> (Status, Option<i32>, Option<i32>) {
    let (code, signal) = match e.ending {
        Ending::Exited(c) => (Some(c), None),
        Ending::Signaled(s) => (None, Some(s)),
        Ending::Killed => (None, Some(libc::SIGKILL)),
    };
    let status = match (e.enforced, e.ending) {
        (Some(Enforced::WallTime), _) => Status::WallTimeLimit,
        (Some(Enforced::CpuTime), _) => Status::CpuTimeLimit,
        (Some(Enforced::Output), _) => Status::OutputLimit,
        (Some(Enforced::Cancelled), _) => Status::Cancelled,
        _ if e.oom_kills > 0 => Status::MemoryLimit,
        _ if e.cpu_exceeded => Status::CpuTimeLimit,
        (None, Ending::Signaled(libc::SIGXCPU)) => Status::CpuTimeLimit,
        (None, Ending::Signaled(libc::SIGXFSZ)) => Status::OutputLimit,
        (None, Ending::Signaled(libc::SIGSYS)) if e.seccomp_kills => Status::SyscallBlocked,
        (None, ending) if e.memory_limit_hits > 0 && ending != Ending::Exited(0) => Status::MemoryLimit,
        (None, Ending::Signaled(_) | Ending::Killed) => Status::Signaled,
        (None, Ending::Exited(0)) => Status::Ok,
        (None, Ending::Exited(_)) => Status::RuntimeError,
    };
    (status, code, signal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_table() {
        use Ending::*;
        use Enforced::*;
        let e = |ending, enforced, oom_kills, memory_limit_hits, cpu_exceeded| Evidence {
            ending,
            enforced,
            oom_kills,
            memory_limit_hits,
            cpu_exceeded,
            seccomp_kills: true,
        };
        // One row per status at least; the later columns are what derive() must answer.
        let rows = [
            (e(Exited(0), None, 0, 0, false), Status::Ok, Some(0), None),
            (e(Exited(3), None, 0, 0, false), Status::RuntimeError, Some(3), None),
            (e(Signaled(6), None, 0, 0, false), Status::Signaled, None, Some(6)),
            (e(Killed, None, 0, 0, false), Status::Signaled, None, Some(9)),
            (e(Signaled(9), Some(WallTime), 0, 0, false), Status::WallTimeLimit, None, Some(9)),
            (e(Killed, Some(WallTime), 1, 0, true), Status::WallTimeLimit, None, Some(9)),
            (e(Exited(0), Some(WallTime), 0, 0, false), Status::WallTimeLimit, Some(0), None),
            (e(Signaled(9), Some(CpuTime), 0, 0, true), Status::CpuTimeLimit, None, Some(9)),
            (e(Signaled(13), Some(Output), 0, 0, false), Status::OutputLimit, None, Some(13)),
            (e(Signaled(9), None, 1, 1, false), Status::MemoryLimit, None, Some(9)),
            (e(Exited(0), None, 1, 0, false), Status::MemoryLimit, Some(0), None),
            (e(Exited(0), None, 0, 0, true), Status::CpuTimeLimit, Some(0), None),
            (e(Signaled(libc::SIGXCPU), None, 0, 0, false), Status::CpuTimeLimit, None, Some(libc::SIGXCPU)),
            (e(Signaled(libc::SIGXFSZ), None, 0, 0, false), Status::OutputLimit, None, Some(libc::SIGXFSZ)),
            (e(Exited(3), None, 0, 5, false), Status::MemoryLimit, Some(3), None),
            (e(Signaled(6), None, 0, 5, false), Status::MemoryLimit, None, Some(6)),
            (e(Exited(0), None, 0, 5, false), Status::Ok, Some(0), None),
            (e(Signaled(libc::SIGSYS), None, 0, 0, false), Status::SyscallBlocked, None, Some(libc::SIGSYS)),
            (e(Signaled(libc::SIGSYS), Some(WallTime), 0, 0, false), Status::WallTimeLimit, None, Some(libc::SIGSYS)),
            (e(Killed, Some(Cancelled), 1, 1, true), Status::Cancelled, None, Some(9)),
        ];
        let no_kill = Evidence { seccomp_kills: false, ..e(Signaled(libc::SIGSYS), None, 0, 0, false) };
        assert_eq!(derive(no_kill).0, Status::Signaled, "SIGSYS the program raised itself");
        for (evidence, status, code, signal) in rows {
            assert_eq!(derive(evidence), (status, code, signal), "{evidence:?}");
        }
    }

    #[test]
    fn names_are_snake_case() {
        assert_eq!(Status::WallTimeLimit.to_string(), "wall_time_limit");
        assert_eq!(Status::Ok.as_str(), "ok");
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
        }
        assert!("fine".parse::<Status>().is_err());
    }

    #[test]
    fn json_shows_text_as_text_and_other_bytes_as_base64() {
        let out = Outcome {
            status: Status::RuntimeError,
            exit_code: Some(3),
            signal: None,
            cpu_time: Duration::from_millis(1500),
            user_time: Duration::from_millis(1000),
            system_time: Duration::from_millis(500),
            wall_time: Duration::from_millis(2250),
            setup_time: Duration::from_micros(1250),
            memory_peak: 4096,
            approximate: false,
            stdout: "héllo\n".into(),
            stderr: vec![0xff, 0x00, 0x80],
            stdout_truncated: true,
            stderr_truncated: false,
        };
        let json = out.to_json();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        // Core's order, the output that is not text under its base64 name.
        let mut expected = Outcome::FIELDS.to_vec();
        *expected.last_mut().unwrap() = "stderr_base64";
        assert_eq!(keys, expected);
        assert_eq!(json["status"], "runtime_error");
        assert_eq!(json["exit_code"], 3);
        assert!(json["signal"].is_null());
        assert_eq!(json["cpu_time"], 1.5);
        assert_eq!(json["setup_time"], 0.00125);
        assert_eq!(json["memory_peak"], 4096);
        assert_eq!(json["stdout"], "héllo\n");
        assert_eq!(json["stderr_base64"], "/wCA");
        assert_eq!(json["stdout_truncated"], true);
    }
}
