//! `run`, `spawn` and `Running`. The GIL is released whenever the binding waits (other
//! Python threads run meanwhile). Ctrl-C kills the sandbox and raises `KeyboardInterrupt`
//! at once, not after the wall time: `run` happens on the caller's thread, cancelled by a
//! `SIGINT` handler of the run's own (`interrupt.rs`); a `Running`'s waits go in slices
//! of 50 ms between which the binding checks for signals.

use std::os::fd::IntoRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::to_py;
use crate::options::{args, builder};
use crate::outcome::PyOutcome;
use crate::store::PyImage;

/// How long the binding waits with the GIL released before it looks for signals.
const SLICE: Duration = Duration::from_millis(50);

/// Runs `argv` in a new sandbox and returns its outcome (`isolette.run`).
#[pyfunction]
pub(crate) fn run(
    py: Python<'_>,
    image: &PyImage,
    argv: &Bound<'_, PyAny>,
    options: &Bound<'_, PyDict>,
) -> PyResult<PyOutcome> {
    // On the caller's thread, as core's `run()` (no thread of its own to start, which a
    // `Running` needs), cancellable by Ctrl-C.
    let canceller = isolette::Canceller::new().map_err(to_py)?;
    let b = builder(&image.0, options)?.canceller(&canceller);
    let argv = args(argv, "argv")?;
    let interrupt = crate::interrupt::install(std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&canceller)));
    let result = py.detach(|| b.run(argv));
    drop(interrupt);
    py.check_signals()?;
    result.map(PyOutcome).map_err(to_py)
}

/// Starts `argv` in a new sandbox (`isolette.spawn`).
#[pyfunction]
pub(crate) fn spawn(
    py: Python<'_>,
    image: &PyImage,
    argv: &Bound<'_, PyAny>,
    options: &Bound<'_, PyDict>,
) -> PyResult<PyRunning> {
    let mut running = start(py, image, argv, options)?;
    let streams = (
        running.take_stdin().map(IntoRawFd::into_raw_fd),
        running.take_stdout().map(IntoRawFd::into_raw_fd),
        running.take_stderr().map(IntoRawFd::into_raw_fd),
    );
    Ok(PyRunning { inner: Arc::new(running), streams: std::sync::Mutex::new(Some(streams)) })
}

fn start(
    py: Python<'_>,
    image: &PyImage,
    argv: &Bound<'_, PyAny>,
    options: &Bound<'_, PyDict>,
) -> PyResult<isolette::Running> {
    let b = builder(&image.0, options)?;
    let argv = args(argv, "argv")?;
    py.detach(|| b.spawn(argv)).map_err(to_py)
}

/// Waits for `running` until `timeout` (forever for `None`), the GIL released in slices;
/// a signal (Ctrl-C) kills the sandbox and raises its exception once the sandbox is gone.
fn wait(py: Python<'_>, running: &Arc<isolette::Running>, timeout: Option<Duration>) -> PyResult<Option<PyOutcome>> {
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let slice = deadline.map_or(SLICE, |d| d.saturating_duration_since(Instant::now()).min(SLICE));
        match py.detach(|| running.wait_timeout(slice)) {
            Ok(Some(outcome)) => return Ok(Some(PyOutcome(outcome))),
            Ok(None) => {}
            Err(e) => return Err(to_py(e)),
        }
        if let Err(interrupted) = py.check_signals() {
            running.kill();
            let _ = py.detach(|| running.wait_timeout(Duration::from_secs(5)));
            return Err(interrupted);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
    }
}

/// Raw fds of piped stdin, stdout and stderr (`None` where not piped).
type Streams = (Option<i32>, Option<i32>, Option<i32>);

/// A running sandbox (`isolette.Running` wraps it with file objects and asyncio).
#[pyclass(name = "Running", module = "isolette._native", frozen)]
pub(crate) struct PyRunning {
    inner: Arc<isolette::Running>,
    /// The caller's ends of piped stdin, stdout and stderr, as raw fds, until taken.
    streams: std::sync::Mutex<Option<Streams>>,
}

#[pymethods]
impl PyRunning {
    /// The host pid of the sandbox's init.
    #[getter]
    fn pid(&self) -> i32 {
        self.inner.pid()
    }

    /// This sandbox's id, unique in this process.
    #[getter]
    fn id(&self) -> String {
        self.inner.id().to_string()
    }

    /// The published ports, as `"127.0.0.1:8080->8000/tcp"` (host ports chosen for 0).
    #[getter]
    fn ports(&self) -> Vec<String> {
        self.inner.ports().iter().map(ToString::to_string).collect()
    }

    /// The fds of piped stdin, stdout and stderr (`None` for the ones not piped), once:
    /// the caller owns them from here on.
    fn take_streams(&self) -> Streams {
        self.streams.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or((None, None, None))
    }

    /// Waits up to `timeout` seconds (forever for `None`); the outcome, or `None` when the
    /// run is still going.
    #[pyo3(signature = (timeout=None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<PyOutcome>> {
        let timeout = match timeout {
            None => None,
            Some(t) => Some(
                Duration::try_from_secs_f64(t)
                    .map_err(|_| crate::errors::config("timeout must be a finite number of seconds, 0 or more"))?,
            ),
        };
        wait(py, &self.inner, timeout)
    }

    /// An fd that becomes readable once the outcome is in (for `loop.add_reader`).
    fn ready_fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.inner.ready_fd())
    }

    /// Stops the sandbox now; the run ends `cancelled`.
    fn kill(&self) {
        self.inner.kill();
    }

    /// Sends `signum` to the program.
    fn signal(&self, signum: i32) -> PyResult<()> {
        self.inner.signal(signum).map_err(to_py)
    }

    /// Resizes the program's terminal.
    fn resize(&self, rows: u16, cols: u16) -> PyResult<()> {
        self.inner.resize(rows, cols).map_err(to_py)
    }
}

impl Drop for PyRunning {
    fn drop(&mut self) {
        // Fds nobody took are closed here.
        if let Some((a, b, c)) = self.streams.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
            for fd in [a, b, c].into_iter().flatten() {
                // SAFETY: an fd from `into_raw_fd` that nobody took: this owns it.
                drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
            }
        }
    }
}
