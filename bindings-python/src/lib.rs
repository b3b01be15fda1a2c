//! `isolette._native`: the Python binding of the isolette library. It converts types and
//! nothing else; every behaviour is core's. The package around it
//! (`python/isolette/__init__.py`) shapes it for Python: keyword options, file objects,
//! asyncio.
//!
//! - `compose.rs`: `Project` and `RunningProject` (a Compose project in this process);
//! - `convert.rs`: bytes of arguments and paths from `str`, `bytes` or `os.PathLike`;
//! - `errors.rs`: core's errors as the exception classes of `isolette._types`;
//! - `options.rs`: the keyword options, into a `SandboxBuilder`;
//! - `outcome.rs`: `Outcome`, made from core's fields;
//! - `running.rs`: `run`, `spawn` and `Running` (the GIL released while anything waits,
//!   Ctrl-C honoured: `interrupt.rs`);
//! - `store.rs`: `Image`, `Store`, `Volume`.

mod compose;
mod convert;
mod errors;
mod interrupt;
mod options;
mod outcome;
mod running;
mod store;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<compose::PyProject>()?;
    m.add_class::<compose::PyRunningProject>()?;
    m.add_class::<store::PyImage>()?;
    m.add_class::<store::PyStore>()?;
    m.add_class::<store::PyVolume>()?;
    m.add_class::<outcome::PyOutcome>()?;
    outcome::install_fields(m.py())?;
    m.add_class::<running::PyRunning>()?;
    m.add_function(wrap_pyfunction!(running::run, m)?)?;
    m.add_function(wrap_pyfunction!(running::spawn, m)?)?;
    m.add_function(wrap_pyfunction!(options::check_options, m)?)?;
    m.add_function(wrap_pyfunction!(cleanup, m)?)?;
    m.add_function(wrap_pyfunction!(gc, m)?)?;
    // Core's statuses, in its order: `_types.Status` is tested against them.
    m.add("STATUSES", isolette::Status::ALL.map(|s| s.as_str()))?;
    Ok(())
}

/// Removes what callers that no longer run left behind (their cgroups, killing what is
/// still in them; the network helpers' directories of those killed while publishing
/// ports), as `isolette gc` does: a node calls it when it starts, after a crash. Returns
/// the directories it removed and those it found still busy.
#[pyfunction]
fn gc(py: Python<'_>) -> PyResult<(Vec<String>, Vec<String>)> {
    let report = py.detach(isolette::gc).map_err(errors::to_py)?;
    let paths = |dirs: &[std::path::PathBuf]| dirs.iter().map(|d| d.to_string_lossy().into_owned()).collect();
    Ok((paths(&report.removed), paths(&report.busy)))
}

/// Finishes removing this process's cgroups now rather than in the background (a
/// short-lived script may call it before exiting; exit does it too).
#[pyfunction]
fn cleanup(py: Python<'_>) {
    py.detach(isolette::cleanup);
}
