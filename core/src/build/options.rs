//! What a build is asked to do ([`BuildOptions`]) and what it tells its caller as it goes
//! ([`BuildEvent`]), with the one JSON shape every surface prints.

use std::path::PathBuf;
use std::time::Duration;

/// The network of a build's `RUN` steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BuildNetwork {
    /// Outbound access, as Docker gives a build (the default).
    #[default]
    Outbound,
    /// No network for any step.
    None,
}

impl std::str::FromStr for BuildNetwork {
    type Err = crate::error::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "outbound" | "default" => Ok(BuildNetwork::Outbound),
            "none" => Ok(BuildNetwork::None),
            other => Err(crate::error::Error::config(format!(
                "build network `{other}`: use `outbound` (the default) or `none`"
            ))),
        }
    }
}

/// How to build ([`Store::build`](crate::Store::build)); `Default` is `docker build`'s.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct BuildOptions {
    /// The Dockerfile (`-f`); `CONTEXT/Dockerfile` when `None`.
    pub dockerfile: Option<PathBuf>,
    /// Names to store the image under (`-t`); none stores it as `build:<12 hex digits>`.
    pub tags: Vec<String>,
    /// `--build-arg NAME=VALUE`s.
    pub build_args: Vec<(String, String)>,
    /// `--target STAGE`: the last stage when `None`.
    pub target: Option<String>,
    /// `--no-cache`: every step runs.
    pub no_cache: bool,
    /// The network of `RUN` steps.
    pub network: BuildNetwork,
    /// `--source-date-epoch`: new layers' file times are clamped to it, and the image's
    /// times are it, so the same context builds the same image digest.
    pub source_date_epoch: Option<u64>,
    /// Memory limit of each `RUN` (default 4 GiB).
    pub memory: Option<u64>,
    /// CPU time limit of each `RUN` (default none).
    pub cpu_time: Option<Duration>,
    /// Wall-clock limit of each `RUN` (default one hour).
    pub wall_time: Option<Duration>,
    /// Stops the build from another thread (or a signal handler): the running step is
    /// killed, and the build ends with an error, leaving nothing behind.
    pub canceller: Option<crate::cancel::Canceller>,
}

/// Which stream a `RUN`'s output came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The step's stdout.
    Stdout,
    /// The step's stderr.
    Stderr,
}

impl Stream {
    /// `stdout` or `stderr`: what every surface calls it.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One step of a build, as it ended.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StepReport {
    /// The step's number in this build, from 1, and how many steps the build has.
    pub index: usize,
    /// Steps in the stages this build needs.
    pub total: usize,
    /// The stage: its name, or its number from 0.
    pub stage: String,
    /// The Dockerfile line.
    pub line: usize,
    /// The instruction as written (its first line, shortened).
    pub instruction: String,
    /// Whether the cache answered it.
    pub cached: bool,
    /// Why it ran (`--no-cache`, `changed: app/main.py`, `build-arg V`, ...); `None` when
    /// cached or when the step only changes the image's config.
    pub reason: Option<String>,
    /// The layer it added (`sha256:` diff id), if any.
    pub layer: Option<String>,
    /// How long it took.
    pub seconds: f64,
}

/// What a build tells its caller as it goes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BuildEvent {
    /// A step ended.
    Step(StepReport),
    /// Output of the running `RUN` (step `index`), as it comes.
    Output {
        /// The step.
        index: usize,
        /// Which stream.
        stream: Stream,
        /// The bytes, as the program wrote them.
        data: Vec<u8>,
    },
    /// Something worth saying that is not a step: a base image being pulled, a build-arg
    /// no stage uses.
    Note(String),
}

impl BuildEvent {
    /// `step`, `output` or `note`: what every surface calls this kind of event.
    pub fn kind(&self) -> &'static str {
        match self {
            BuildEvent::Step(_) => "step",
            BuildEvent::Output { .. } => "output",
            BuildEvent::Note(_) => "note",
        }
    }
}

impl StepReport {
    /// `{"step", "total", "stage", "line", "instruction", "cached", "reason", "layer",
    /// "seconds"}`: the object `isolette build --json` prints for each step.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "step": self.index,
            "total": self.total,
            "stage": self.stage,
            "line": self.line,
            "instruction": self.instruction,
            "cached": self.cached,
            "reason": self.reason,
            "layer": self.layer,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
        })
    }

    /// The line a plain progress display prints: `[3/7] RUN make: CACHED`, or with why it
    /// ran and how long it took.
    pub fn to_line(&self) -> String {
        let status = match (&self.cached, &self.reason) {
            (true, _) => "CACHED".to_string(),
            (false, Some(why)) => format!("ran ({why}) in {:.2}s", self.seconds),
            (false, None) => "done".to_string(),
        };
        format!("[{}/{}] {} (line {}): {status}", self.index, self.total, self.instruction, self.line)
    }
}

/// What a finished build made.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BuildResult {
    /// The image, as stored under its first name.
    pub image: crate::ImageRecord,
    /// Every name it is stored under.
    pub names: Vec<String>,
    /// Steps the build had, and how many of them the cache answered.
    pub steps: usize,
    /// Steps answered by the cache.
    pub cached: usize,
}

impl BuildResult {
    /// `{"id", "names", "layers", "size", "steps", "cached"}`, the summary `--json` prints.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.image.id,
            "names": self.names,
            "layers": self.image.layers.len(),
            "size": self.image.size,
            "steps": self.steps,
            "cached": self.cached,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_as_json_and_as_a_line() {
        let step = StepReport {
            index: 3,
            total: 7,
            stage: "0".into(),
            line: 4,
            instruction: "COPY app /app".into(),
            cached: false,
            reason: Some("changed: app/main.py".into()),
            layer: None,
            seconds: 0.12345,
        };
        let json = step.to_json();
        assert_eq!(json["reason"], "changed: app/main.py");
        assert_eq!(json["seconds"], 0.123);
        assert_eq!(step.to_line(), "[3/7] COPY app /app (line 4): ran (changed: app/main.py) in 0.12s");
        assert!("nope".parse::<BuildNetwork>().is_err());
        assert_eq!("none".parse::<BuildNetwork>().unwrap(), BuildNetwork::None);
    }
}
