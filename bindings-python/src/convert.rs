//! Bytes from Python values: arguments, paths and environment entries as `str`, `bytes`
//! or `os.PathLike`, shared by the options and the store.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

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
