//! Core's errors as Python exceptions: one class per kind (`isolette._types.BY_KIND`),
//! with `kind`, `step`, `errno` and `path` as attributes.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The exception for `e`: `ConfigError`, `ImageError`, `CommandNotFound`, `HostError` or
/// `SetupError`, all `IsoletteError`s.
pub(crate) fn to_py(e: isolette::Error) -> PyErr {
    Python::attach(|py| make(py, &e).unwrap_or_else(|failed| failed))
}

fn make(py: Python<'_>, e: &isolette::Error) -> Result<PyErr, PyErr> {
    let types = py.import("isolette._types")?;
    let class = types.getattr("BY_KIND")?.get_item(e.kind())?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("kind", e.kind())?;
    kwargs.set_item("step", e.step().map(|s| s.name()))?;
    kwargs.set_item("errno", e.errno())?;
    kwargs.set_item("path", e.path().map(|p| p.to_string_lossy().into_owned()))?;
    let value = class.call((e.to_string(),), Some(&kwargs))?;
    if let isolette::Error::Build { line, exit_code, .. } = e {
        value.setattr("line", line)?;
        value.setattr("exit_code", exit_code)?;
    }
    Ok(PyErr::from_value(value))
}

/// A `ConfigError` with `message` (a bad option, found by the binding itself).
pub(crate) fn config(message: impl Into<String>) -> PyErr {
    to_py(isolette::Error::Config(message.into()))
}
