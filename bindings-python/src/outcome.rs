//! `Outcome`: what a run gave, with Python's types (seconds as floats, bytes as `bytes`,
//! the status as `isolette.Status`, a `str` enum).

use isolette::{Field, Outcome};
use pyo3::IntoPyObjectExt;
use pyo3::exceptions::PyAttributeError;
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

/// One field of core's outcome (`Outcome::fields`) with Python's types: the status as
/// `Status`, times in seconds, output as `bytes`.
fn value(py: Python<'_>, field: Field<'_>) -> PyResult<Py<PyAny>> {
    match field {
        Field::Status(status) => status_class(py)?.call1((status.as_str(),)).map(Bound::unbind),
        Field::Int(n) => n.into_py_any(py),
        Field::Time(d) => d.as_secs_f64().into_py_any(py),
        Field::Bytes(n) => n.into_py_any(py),
        Field::Flag(on) => on.into_py_any(py),
        Field::Output(bytes) => PyBytes::new(py, bytes).into_py_any(py),
        _ => Ok(py.None()),
    }
}

/// Puts a read-only property on `Outcome` for each of core's fields (`Outcome::FIELDS`:
/// `status`, `exit_code`, ..., `stdout`, `stderr`), typed by `_native.pyi`.
pub(crate) fn install_fields(py: Python<'_>) -> PyResult<()> {
    let class = py.get_type::<PyOutcome>();
    let property = py.import("builtins")?.getattr("property")?;
    let methodcaller = py.import("operator")?.getattr("methodcaller")?;
    for name in Outcome::FIELDS {
        let get = methodcaller.call1(("_field", name))?;
        let doc = format!("The run's `{name}`, as `isolette run --json` names it.");
        class.setattr(name, property.call1((get, py.None(), py.None(), doc))?)?;
    }
    Ok(())
}

#[pymethods]
impl PyOutcome {
    /// One of core's fields by name: what the properties [`install_fields`] puts on the
    /// class read.
    fn _field(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        match self.0.fields().into_iter().find(|(field, _)| *field == name) {
            Some((_, field)) => value(py, field),
            None => Err(PyAttributeError::new_err(format!("'Outcome' object has no attribute '{name}'"))),
        }
    }

    /// The outcome with the field names of `isolette run --json` (output as bytes).
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (name, field) in self.0.fields() {
            d.set_item(name, value(py, field)?)?;
        }
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
            self.0.cpu_time.as_secs_f64(),
            self.0.wall_time.as_secs_f64(),
            isolette::format_size(self.0.memory_peak),
            repr(&self.0.stdout)?,
            repr(&self.0.stderr)?,
        ))
    }
}
