//! Named things (volumes, networks, the CLI's detached sandboxes): the naming rule,
//! Docker's (a letter or digit, then letters, digits, `_`, `.` or `-`, at most 64 in all);
//! the lock file that serializes changes to a directory of them; and the clock their
//! records are dated by. One rule for the library and every surface.

use std::fs::File;
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// Checks `name` of a `kind` (`volume`, `network`, `sandbox`) against the rule; the error
/// says what the rule is.
pub fn check(kind: &str, name: &str) -> Result<()> {
    let ok = name.len() <= 64
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "{kind} name `{}`: expected a letter or digit, then letters, digits, `_`, `.` or `-` (at most 64)",
            name.escape_debug()
        )))
    }
}

/// Seconds since the Unix epoch: when a named thing was made.
pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// An exclusive `flock` on a directory's lock file, held while the value lives.
#[derive(Debug)]
pub struct Lock(#[allow(dead_code)] Flock<File>);

/// Takes the exclusive `flock` of `dir/lock` (made if missing), waiting for whoever holds it.
pub fn lock(dir: &Path) -> Result<Lock> {
    let path = dir.join("lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open", &path, e))?;
    Flock::lock(file, FlockArg::LockExclusive).map(Lock).map_err(|(_, e)| Error::io("flock", &path, e.into()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert!(super::check("network", "app-net_1.x").is_ok());
        for bad in ["", "-x", ".x", "a/b", "a b", &"n".repeat(65)] {
            assert!(super::check("volume", bad).unwrap_err().to_string().contains("volume name"), "{bad}");
        }
    }
}
