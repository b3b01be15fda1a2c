//! A healthcheck's state as Docker keeps it (`starting`, then `healthy` or `unhealthy`
//! after `retries` failures in a row, failures in the start period not counted), and one
//! check run in its sandbox. Both supervisors use it: the CLI's detached one and the
//! library's [`RunningProject`](super::RunningProject).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Healthcheck;
use crate::SandboxBuilder;
use crate::error::Result;

/// What a healthcheck says of its sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No check has passed yet, and the failures do not make it unhealthy yet.
    Starting,
    /// The last check passed.
    Healthy,
    /// `retries` checks in a row failed.
    Unhealthy,
}

impl Health {
    /// Docker's word: `starting`, `healthy`, `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// A healthcheck's running state: its word, and the failures in a row.
#[derive(Debug, Clone)]
pub struct HealthState {
    status: Health,
    streak: u32,
    started: Instant,
    retries: u32,
    start_period: std::time::Duration,
}

impl HealthState {
    /// The state of `check` for a program that started now.
    pub fn new(check: &Healthcheck) -> HealthState {
        HealthState {
            status: Health::Starting,
            streak: 0,
            started: Instant::now(),
            retries: check.retries,
            start_period: check.start_period,
        }
    }

    /// Counts one check's result, and says the word now.
    pub fn record(&mut self, passed: bool) -> Health {
        if passed {
            (self.status, self.streak) = (Health::Healthy, 0);
        } else if self.status != Health::Starting || self.started.elapsed() >= self.start_period {
            self.streak += 1;
            if self.streak >= self.retries {
                self.status = Health::Unhealthy;
            }
        }
        self.status
    }

    /// The word now.
    pub fn status(&self) -> Health {
        self.status
    }

    /// The failures in a row.
    pub fn failing_streak(&self) -> u32 {
        self.streak
    }
}

/// Runs a check once: `argv` in a sandbox of `base`. Passed when it exits 0 within its
/// time; its output (stdout then stderr, with the verdict when it failed), or the error
/// that kept it from running.
pub fn check_once(base: &SandboxBuilder, argv: &[String]) -> (bool, String) {
    match base.run(argv) {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            let ok = out.status == crate::Status::Ok && out.exit_code == Some(0);
            let said = if ok { text } else { format!("{}: {text}", out.status) };
            (ok, said.trim_end().to_string())
        }
        Err(e) => (false, e.to_string()),
    }
}

/// Runs `check` every interval in sandboxes of `base` until `done`, and tells `report`
/// the state and the check's output after each (`base`'s error is a failed check).
pub fn run_checks(
    check: &Healthcheck,
    base: &Result<SandboxBuilder>,
    done: &AtomicBool,
    report: &mut dyn FnMut(&HealthState, String),
) {
    let argv = check.test.argv();
    let mut state = HealthState::new(check);
    loop {
        let next = Instant::now() + check.interval;
        while Instant::now() < next {
            if done.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (passed, output) = match base {
            Ok(b) => check_once(b, &argv),
            Err(e) => (false, e.to_string()),
        };
        if done.load(Ordering::Relaxed) {
            return;
        }
        state.record(passed);
        report(&state, output);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::compose::HealthTest;

    #[test]
    fn failures_in_a_row_make_it_unhealthy_and_a_pass_heals_it() {
        let mut check = Healthcheck::new(HealthTest::Shell("true".into()));
        check.retries = 2;
        let mut state = HealthState::new(&check);
        assert_eq!(state.status(), Health::Starting);
        assert_eq!(state.record(false), Health::Starting);
        assert_eq!(state.failing_streak(), 1);
        assert_eq!(state.record(false), Health::Unhealthy);
        assert_eq!(state.record(true), Health::Healthy);
        assert_eq!(state.failing_streak(), 0);
        assert_eq!(state.record(false), Health::Healthy);
        assert_eq!(state.record(false).as_str(), "unhealthy");
    }

    #[test]
    fn failures_in_the_start_period_do_not_count() {
        let mut check = Healthcheck::new(HealthTest::Shell("true".into()));
        check.retries = 1;
        check.start_period = Duration::from_secs(3600);
        let mut state = HealthState::new(&check);
        assert_eq!(state.record(false), Health::Starting);
        assert_eq!(state.failing_streak(), 0);
        assert_eq!(state.record(true), Health::Healthy);
        // Once healthy, the start period no longer shields it.
        assert_eq!(state.record(false), Health::Unhealthy);
    }
}
