//! Bytes from Python values: arguments, paths and environment entries as `str`, `bytes`
//! or `os.PathLike`, shared by the options and the store; and sizes and durations in
//! every form Python gives them.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::errors::{config, to_py};

/// Bytes of an argument, a path or an environment entry: `str` (encoded as `os.fsencode`
/// does), `bytes`, or an `os.PathLike`.
pub(crate) fn os_string(v: &Bound<'_, PyAny>) -> PyResult<OsString> {
    if let Ok(bytes) = v.cast::<PyBytes>() {
        return Ok(OsString::from_vec(bytes.as_bytes().to_vec()));
    }
    if let Ok(text) = v.cast::<PyString>() {
        return text.extract::<OsString>();
    }
    let os = v.py().import("os")?;
    let path = os
        .call_method1("fspath", (v,))
        .map_err(|_| PyTypeError::new_err(format!("expected str, bytes or os.PathLike, not {}", type_name(v))))?;
    os_string(&path)
}

fn type_name(v: &Bound<'_, PyAny>) -> String {
    v.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// A bad option's error: `option `name` must be ...`.
pub(crate) fn wrong(name: &str, expected: &str) -> PyErr {
    config(format!("option `{name}` must be {expected}"))
}

/// Bytes: an int, or a string core parses (`"256M"`).
pub(crate) fn size(v: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    if let Ok(text) = v.cast::<PyString>() {
        return isolette::parse_size(&text.to_cow()?).map_err(to_py);
    }
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(wrong(name, "a size in bytes (an int, or a string such as \"256M\")"));
    }
    match v.extract::<i128>() {
        Ok(n) if n >= 0 && n <= i128::from(u64::MAX) => Ok(n as u64),
        Ok(_) => Err(wrong(name, "a size of 0 bytes or more")),
        Err(_) => Err(wrong(name, "a size in bytes (an int, or a string such as \"256M\")")),
    }
}

/// Seconds: a number, a `datetime.timedelta`, or a string core parses (`"1.5s"`).
pub(crate) fn duration(v: &Bound<'_, PyAny>, name: &str) -> PyResult<Duration> {
    if let Ok(text) = v.cast::<PyString>() {
        return isolette::parse_duration(&text.to_cow()?).map_err(to_py);
    }
    // `timedelta` looked up as Python code would: pyo3's own `PyDelta` check imports the
    // datetime C API lazily and panics when that import is interrupted (a Ctrl-C in the
    // first milliseconds of a run); this way the interruption is the caller's
    // `KeyboardInterrupt`.
    let timedelta = v.py().import("datetime")?.getattr("timedelta")?;
    let seconds: f64 = if v.is_instance(&timedelta)? {
        v.call_method0("total_seconds")?.extract()?
    } else if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(wrong(name, "seconds (a number, a timedelta or a string such as \"1.5s\")"));
    } else {
        v.extract().map_err(|_| wrong(name, "seconds (a number, a timedelta or a string such as \"1.5s\")"))?
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| wrong(name, "a finite number of seconds, 0 or more"))
}
