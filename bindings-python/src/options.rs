//! The keyword options, into a `SandboxBuilder`: one per builder setting of core, with
//! Python's types (sizes as ints or `"256M"`, durations as seconds, `timedelta` or
//! `"1.5s"`; strings parsed by core). An unknown option is a `TypeError` naming it.

use std::ffi::OsString;
use std::path::PathBuf;

use isolette::{Image, MountSpec, Output, SandboxBuilder, SeccompAction, SeccompPolicy, Stdin};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::convert::{duration, os_string, size, wrong};
use crate::errors::to_py;

/// Every option, in the order the docs list them.
const NAMES: [&str; 31] = [
    "memory",
    "cpu_time",
    "wall_time",
    "pids",
    "output_limit",
    "fsize",
    "tmpfs_size",
    "nofile",
    "stack",
    "cpus",
    "cpuset",
    "env",
    "workdir",
    "mounts",
    "volumes",
    "stdin",
    "stdout",
    "stderr",
    "seccomp",
    "seccomp_action",
    "cgroup",
    "sys",
    "user",
    "user_namespace",
    "hostname",
    "entrypoint",
    "tty",
    "network",
    "publish",
    "host_loopback",
    "egress",
];

/// Checks the options' names and the types of their values, as a run would (what
/// depends on the command, such as a working directory, is checked when it runs).
#[pyfunction]
pub(crate) fn check_options(image: &crate::store::PyImage, options: &Bound<'_, PyDict>) -> PyResult<()> {
    builder(&image.0, options).map(drop)
}

/// A builder for `image` with `options` set.
pub(crate) fn builder(image: &Image, options: &Bound<'_, PyDict>) -> PyResult<SandboxBuilder> {
    apply(isolette::Sandbox::builder(image), options)
}

fn apply(mut b: SandboxBuilder, options: &Bound<'_, PyDict>) -> PyResult<SandboxBuilder> {
    let mut seccomp: Option<SeccompPolicy> = None;
    let mut action: Option<SeccompAction> = None;
    for (key, value) in options.iter() {
        let name: String = key.extract()?;
        let v = &value;
        b = match name.as_str() {
            "memory" => b.memory(size(v, &name)?),
            "output_limit" => b.output_limit(size(v, &name)?),
            "fsize" => b.fsize(size(v, &name)?),
            "tmpfs_size" => b.tmpfs_size(size(v, &name)?),
            "stack" => b.stack(size(v, &name)?),
            "cpu_time" => b.cpu_time(duration(v, &name)?),
            "wall_time" => b.wall_time(duration(v, &name)?),
            "pids" => b.pids(count(v, &name)?),
            "nofile" => b.nofile(count(v, &name)?),
            "cpus" => b.cpus(v.extract::<f64>().map_err(|_| wrong(&name, "a number of cores"))?),
            "cpuset" => b.cpuset(v.extract::<String>().map_err(|_| wrong(&name, "a string such as \"0-1\""))?),
            "env" => env(b, v)?,
            "workdir" => b.workdir(path(v, &name)?),
            "mounts" => mounts(b, v)?,
            "volumes" => volumes(b, v)?,
            "stdin" => b.stdin_from(stdin(v)?),
            "stdout" => b.stdout(output(v, &name)?),
            "stderr" => b.stderr(output(v, &name)?),
            "seccomp" => {
                seccomp = Some(policy(v)?);
                b
            }
            "seccomp_action" => {
                let word = v.extract::<String>().map_err(|_| wrong(&name, "\"kill\" or \"errno\""))?;
                action = Some(word.parse::<SeccompAction>().map_err(|_| wrong(&name, "\"kill\" or \"errno\""))?);
                b
            }
            "cgroup" => b.cgroup(flag(v, &name)?),
            "sys" => b.sys(flag(v, &name)?),
            "user_namespace" => b.user_namespace(flag(v, &name)?),
            "user" => {
                let (uid, gid): (u32, u32) = v.extract().map_err(|_| wrong(&name, "a (uid, gid) pair"))?;
                b.user(uid, gid)
            }
            "hostname" => b.hostname(v.extract::<String>().map_err(|_| wrong(&name, "a string"))?),
            "entrypoint" => b.entrypoint(args(v, &name)?),
            "tty" => match v.extract::<(u16, u16)>() {
                Ok((rows, cols)) => b.tty_size(rows, cols),
                Err(_) => b.tty(flag(v, &name).map_err(|_| wrong(&name, "a bool or (rows, cols)"))?),
            },
            "network" => {
                let mode =
                    v.extract::<String>().map_err(|_| wrong(&name, "\"none\", \"outbound\" or a network's name"))?;
                b.network(mode.parse().map_err(to_py)?)
            }
            "publish" => {
                for spec in strings(v, &name, "a list of \"[ADDR:]HOSTPORT:PORT[/udp]\" strings")? {
                    b = b.publish(spec.parse().map_err(to_py)?);
                }
                b
            }
            "host_loopback" => b.host_loopback(flag(v, &name)?),
            "egress" => {
                // Each rule a pair, or the shared word `allow:CIDR[:PORTS]` that core parses.
                let expected =
                    "a list of (\"allow\" or \"deny\", \"CIDR[:PORTS]\") pairs or \"allow:CIDR[:PORTS]\" strings";
                let items: Vec<Bound<'_, PyAny>> = v.extract().map_err(|_| wrong(&name, expected))?;
                for item in items {
                    let word = match item.extract::<(String, String)>() {
                        Ok((verdict, spec)) if verdict == "allow" || verdict == "deny" => format!("{verdict}:{spec}"),
                        Ok(_) => return Err(wrong(&name, expected)),
                        Err(_) => item.extract::<String>().map_err(|_| wrong(&name, expected))?,
                    };
                    b = b.egress(word.parse().map_err(to_py)?);
                }
                b
            }
            _ => {
                return Err(PyTypeError::new_err(format!(
                    "unknown option `{name}`; the options are: {}",
                    NAMES.join(", ")
                )));
            }
        };
    }
    if seccomp.is_some() || action.is_some() {
        let mut p = seccomp.unwrap_or_default();
        if let Some(a) = action {
            p = p.with_action(a);
        }
        b = b.seccomp(p);
    }
    Ok(b)
}

/// A list (or tuple) of strings.
fn strings(v: &Bound<'_, PyAny>, name: &str, expected: &str) -> PyResult<Vec<String>> {
    if v.is_instance_of::<PyString>() {
        return Err(wrong(name, expected));
    }
    v.extract::<Vec<String>>().map_err(|_| wrong(name, expected))
}

/// A whole count: an int of 0 or more.
fn count(v: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    if v.is_instance_of::<pyo3::types::PyBool>() {
        return Err(wrong(name, "an int"));
    }
    match v.extract::<i128>() {
        Ok(n) if n >= 0 && n <= i128::from(u64::MAX) => Ok(n as u64),
        _ => Err(wrong(name, "an int of 0 or more")),
    }
}

fn flag(v: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    v.extract::<bool>().map_err(|_| wrong(name, "True or False"))
}

fn path(v: &Bound<'_, PyAny>, name: &str) -> PyResult<PathBuf> {
    os_string(v).map(PathBuf::from).map_err(|_| wrong(name, "a path (str, bytes or os.PathLike)"))
}

/// A list of arguments.
pub(crate) fn args(v: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<OsString>> {
    if v.is_instance_of::<PyString>() || v.is_instance_of::<PyBytes>() {
        return Err(wrong(name, "a list of arguments, not one string"));
    }
    v.try_iter().map_err(|_| wrong(name, "a list of arguments"))?.map(|item| os_string(&item?)).collect()
}

fn env(mut b: SandboxBuilder, v: &Bound<'_, PyAny>) -> PyResult<SandboxBuilder> {
    let dict = v.cast::<PyDict>().map_err(|_| wrong("env", "a dict of names to values"))?;
    for (k, value) in dict.iter() {
        b = b.env(os_string(&k)?, os_string(&value)?);
    }
    Ok(b)
}

/// `"SRC:DST[:rw]"` strings, or `(src, dst[, writable])` tuples.
fn mounts(mut b: SandboxBuilder, v: &Bound<'_, PyAny>) -> PyResult<SandboxBuilder> {
    let list = v.cast::<PyList>().map_err(|_| wrong("mounts", "a list"))?;
    for item in list.iter() {
        let spec = match item.cast::<PyTuple>() {
            Ok(t) if t.len() == 2 || t.len() == 3 => MountSpec {
                source: path(&t.get_item(0)?, "mounts")?,
                target: path(&t.get_item(1)?, "mounts")?,
                writable: if t.len() == 3 { flag(&t.get_item(2)?, "mounts")? } else { false },
            },
            Ok(_) => return Err(wrong("mounts", "\"SRC:DST[:rw]\" strings or (src, dst[, writable]) tuples")),
            Err(_) => MountSpec::parse(os_string(&item)?).map_err(to_py)?,
        };
        b = b.mount(spec);
    }
    Ok(b)
}

/// `(Volume, dst[, writable])` tuples.
fn volumes(mut b: SandboxBuilder, v: &Bound<'_, PyAny>) -> PyResult<SandboxBuilder> {
    let list = v.cast::<PyList>().map_err(|_| wrong("volumes", "a list"))?;
    for item in list.iter() {
        let t = item.cast::<PyTuple>().map_err(|_| wrong("volumes", "(Volume, dst[, writable]) tuples"))?;
        if t.len() != 2 && t.len() != 3 {
            return Err(wrong("volumes", "(Volume, dst[, writable]) tuples"));
        }
        let volume = t.get_item(0)?;
        let volume = volume.cast::<crate::store::PyVolume>().map_err(|_| wrong("volumes", "(Volume, ...) tuples"))?;
        let target = path(&t.get_item(1)?, "volumes")?;
        let writable = if t.len() == 3 { flag(&t.get_item(2)?, "volumes")? } else { false };
        b = b.volume(&volume.get().0, target, writable);
    }
    Ok(b)
}

/// The `Redirect` enum's value (`"pipe"`, ...), if `v` is one.
fn redirect(v: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let class = v.py().import("isolette._types")?.getattr("Redirect")?;
    if v.is_instance(&class)? { Ok(Some(v.getattr("value")?.extract()?)) } else { Ok(None) }
}

/// Bytes or text to feed, a path, `None`, `PIPE` or `INHERIT`.
fn stdin(v: &Bound<'_, PyAny>) -> PyResult<Stdin> {
    if v.is_none() {
        return Ok(Stdin::Null);
    }
    if let Ok(bytes) = v.cast::<PyBytes>() {
        return Ok(Stdin::Bytes(bytes.as_bytes().to_vec()));
    }
    if let Ok(text) = v.cast::<PyString>() {
        return Ok(Stdin::Bytes(text.to_cow()?.as_bytes().to_vec()));
    }
    if let Some(word) = redirect(v)? {
        return word.parse().map_err(|_| wrong("stdin", "bytes, str, a path, None, PIPE or INHERIT"));
    }
    if v.hasattr("__fspath__")? {
        return Ok(Stdin::File(path(v, "stdin")?));
    }
    Err(wrong("stdin", "bytes, str, a path, None, PIPE or INHERIT"))
}

/// `CAPTURE`, `PIPE`, `NULL`, `INHERIT` (or their names), or a path.
fn output(v: &Bound<'_, PyAny>, name: &str) -> PyResult<Output> {
    let word = match redirect(v)? {
        Some(w) => Some(w),
        None => v.cast::<PyString>().ok().map(|s| s.to_string()),
    };
    let expected = "CAPTURE, PIPE, NULL, INHERIT or a path (os.PathLike)";
    match word {
        Some(word) => word.parse().map_err(|_| wrong(name, expected)),
        None if v.hasattr("__fspath__")? => Ok(Output::File(path(v, name)?)),
        None => Err(wrong(name, expected)),
    }
}

/// `"default"`, `"off"`, `{"deny": [...]}` or `{"allow": [...]}`.
fn policy(v: &Bound<'_, PyAny>) -> PyResult<SeccompPolicy> {
    let expected = "\"default\", \"off\", {\"deny\": [names]} or {\"allow\": [names]}";
    if let Ok(text) = v.extract::<String>() {
        return match text.as_str() {
            "default" => Ok(SeccompPolicy::default_deny()),
            "off" => Ok(SeccompPolicy::disabled()),
            _ => Err(wrong("seccomp", expected)),
        };
    }
    let dict = v.cast::<PyDict>().map_err(|_| wrong("seccomp", expected))?;
    if dict.len() != 1 {
        return Err(wrong("seccomp", expected));
    }
    let (key, names) = dict.iter().next().expect("one entry");
    let names: Vec<String> = names.extract().map_err(|_| wrong("seccomp", expected))?;
    match key.extract::<String>().as_deref() {
        Ok("deny") => SeccompPolicy::deny(names).map_err(to_py),
        Ok("allow") => SeccompPolicy::allow(names).map_err(to_py),
        _ => Err(wrong("seccomp", expected)),
    }
}
