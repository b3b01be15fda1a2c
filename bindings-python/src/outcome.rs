//! `Outcome`: what a run gave, with Python's types (seconds as floats, bytes as `bytes`,
//! the status as `isolette.Status`, a `str` enum).

use isolette::Outcome;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict};

/// How a run ended and what it used. `status == "ok"` works (`Status` is a `str` enum);
/// times are seconds, `memory_peak` bytes, `stdout` and `stderr` bytes.
#[pyclass(name = "Outcome", module = "isolette", frozen)]
pub(crate) struct PyOutcome(pub Outcome);

/// `isolette.Status`, looked up once.
fn status_class(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static STATUS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    STATUS
        .get_or_try_init(py, || py.import("isolette._types")?.getattr("Status").map(Bound::unbind))
        .map(|class| class.bind(py))
}

#[pymethods]
impl PyOutcome {
    /// How the run ended (`Status`).
    #[getter]
    fn status<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        status_class(py)?.call1((self.0.status.as_str(),))
    }
    /// The program's exit code, if it exited.
    #[getter]
    fn exit_code(&self) -> Option<i32> {
        self.0.exit_code
    }
    /// The signal that ended it, if one did.
    #[getter]
    fn signal(&self) -> Option<i32> {
        self.0.signal
    }
    /// Cpu time of the whole process tree, in seconds.
    #[getter]
    fn cpu_time(&self) -> f64 {
        self.0.cpu_time.as_secs_f64()
    }
    /// User-mode cpu time, in seconds.
    #[getter]
    fn user_time(&self) -> f64 {
        self.0.user_time.as_secs_f64()
    }
    /// Kernel-mode cpu time, in seconds.
    #[getter]
    fn system_time(&self) -> f64 {
        self.0.system_time.as_secs_f64()
    }
    /// Wall time from the program's exec to its end, in seconds.
    #[getter]
    fn wall_time(&self) -> f64 {
        self.0.wall_time.as_secs_f64()
    }
    /// From the request to the program's exec, in seconds.
    #[getter]
    fn setup_time(&self) -> f64 {
        self.0.setup_time.as_secs_f64()
    }
    /// Peak memory of the whole process tree, in bytes.
    #[getter]
    fn memory_peak(&self) -> u64 {
        self.0.memory_peak
    }
    /// Whether the figures are per-process estimates (no cgroup).
    #[getter]
    fn approximate(&self) -> bool {
        self.0.approximate
    }
    /// Captured stdout.
    #[getter]
    fn stdout<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.stdout)
    }
    /// Captured stderr.
    #[getter]
    fn stderr<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.stderr)
    }
    /// Whether the output limit cut stdout.
    #[getter]
    fn stdout_truncated(&self) -> bool {
        self.0.stdout_truncated
    }
    /// Whether the output limit cut stderr.
    #[getter]
    fn stderr_truncated(&self) -> bool {
        self.0.stderr_truncated
    }

    /// The outcome with the field names of `isolette run --json` (output as bytes).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("status", self.0.status.as_str())?;
        d.set_item("exit_code", self.0.exit_code)?;
        d.set_item("signal", self.0.signal)?;
        d.set_item("cpu_time", self.cpu_time())?;
        d.set_item("user_time", self.user_time())?;
        d.set_item("system_time", self.system_time())?;
        d.set_item("wall_time", self.wall_time())?;
        d.set_item("setup_time", self.setup_time())?;
        d.set_item("memory_peak", self.0.memory_peak)?;
        d.set_item("approximate", self.0.approximate)?;
        d.set_item("stdout_truncated", self.0.stdout_truncated)?;
        d.set_item("stderr_truncated", self.0.stderr_truncated)?;
        d.set_item("stdout", self.stdout(py))?;
        d.set_item("stderr", self.stderr(py))?;
        Ok(d)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let ending = match (self.0.exit_code, self.0.signal) {
            (Some(code), _) => format!("exit_code={code}"),
            (None, Some(sig)) => format!("signal={sig}"),
            (None, None) => "killed".into(),
        };
        let repr = |b: &[u8]| -> PyResult<String> {
            let shown = &b[..b.len().min(60)];
            let text: String = PyBytes::new(py, shown).repr()?.extract()?;
            Ok(if b.len() > shown.len() { format!("{text}... ({} bytes)", b.len()) } else { text })
        };
        Ok(format!(
            "Outcome(status='{}', {ending}, cpu_time={:.3}, wall_time={:.3}, memory_peak={}, stdout={}, stderr={})",
            self.0.status.as_str(),
            self.cpu_time(),
            self.wall_time(),
            isolette::format_size(self.0.memory_peak),
            repr(&self.0.stdout)?,
            repr(&self.0.stderr)?,
        ))
    }
}
