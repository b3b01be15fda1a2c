//! Reading and writing cgroup files, with the path and the data in every error.

use std::io::ErrorKind;
use std::path::Path;

use crate::error::{Error, Result};

/// Reads a cgroup file as text.
pub(crate) fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
}

/// Writes `value` to a cgroup file; the error names the file and the value.
pub(crate) fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value).map_err(|e| {
        let op = match e.kind() {
            ErrorKind::NotFound => "write (the controller file is missing)",
            _ => "write",
        };
        Error::Io {
            op,
            path: path.into(),
            source: std::io::Error::new(e.kind(), format!("{e} (value `{}`)", value.trim())),
        }
    })
}

/// Writes `value` if the file exists (optional kernel features such as memsw or swap.max).
pub(crate) fn write_if_present(path: &Path, value: &str) -> Result<()> {
    if path.exists() { write(path, value) } else { Ok(()) }
}

/// Reads a number from a one-value file (`memory.max_usage_in_bytes`, `cpuacct.usage`).
pub(crate) fn read_u64(path: &Path) -> Result<u64> {
    let text = read(path)?;
    text.trim()
        .parse()
        .map_err(|_| Error::io("parse", path, std::io::Error::other(format!("not a number: `{}`", text.trim()))))
}

/// The value of `key` in a flat keyed file (`cpu.stat`, `memory.events`, `memory.oom_control`).
pub(crate) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_values() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(text, "oom_kill"), Some(3));
        assert_eq!(keyed(text, "under_oom"), Some(0));
        assert_eq!(keyed(text, "oom"), None);
    }

    #[test]
    fn errors_carry_path_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let err = write(&dir.path().join("no/such/file"), "42\n").unwrap_err().to_string();
        assert!(err.contains("no/such/file") && err.contains("`42`"), "{err}");
        let f = dir.path().join("n");
        std::fs::write(&f, "12\n").unwrap();
        assert_eq!(read_u64(&f).unwrap(), 12);
        std::fs::write(&f, "max\n").unwrap();
        assert!(read_u64(&f).is_err());
    }
}
