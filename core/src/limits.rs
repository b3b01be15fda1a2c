//! Resource limits set with `setrlimit` in the sandbox's init: data only.
//!
//! The init sets them before forking the program, so the program and all its descendants
//! inherit them. Hard limits can only be lowered, never raised: without
//! `CAP_SYS_RESOURCE` (missing even for root on some hosts) a limit above the caller's own
//! hard limit is refused when the plan is made.

use std::time::Duration;

use crate::error::{Error, Result};

/// One `setrlimit(resource, soft, hard)` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rlimit {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

// libc's rlimit resources are `u32` on glibc and `i32` on musl (the static CLI's libc).
#[allow(clippy::unnecessary_cast)]
mod resource {
    pub(super) const CORE: u32 = libc::RLIMIT_CORE as u32;
    pub(super) const NOFILE: u32 = libc::RLIMIT_NOFILE as u32;
    pub(super) const FSIZE: u32 = libc::RLIMIT_FSIZE as u32;
    pub(super) const STACK: u32 = libc::RLIMIT_STACK as u32;
    pub(super) const CPU: u32 = libc::RLIMIT_CPU as u32;
    pub(super) const AS: u32 = libc::RLIMIT_AS as u32;
}
use resource::{AS, CORE, CPU, FSIZE, NOFILE, STACK};

impl Rlimit {
    fn both(resource: u32, value: u64) -> Rlimit {
        Rlimit { resource, soft: value, hard: value }
    }
}

/// The rlimits of every sandbox: no core dumps, the open-file cap, and the file size and
/// stack limits when asked for.
pub(crate) fn plan(nofile: u64, fsize: Option<u64>, stack: Option<u64>) -> Result<Vec<Rlimit>> {
    let mut out = vec![Rlimit::both(CORE, 0), Rlimit::both(NOFILE, nofile)];
    out.extend(fsize.map(|b| Rlimit::both(FSIZE, b)));
    out.extend(stack.map(|b| Rlimit::both(STACK, b)));
    for r in &out {
        check_against_caller(r)?;
    }
    Ok(out)
}

/// `RLIMIT_CPU` for a cpu-time limit. With cgroup accounting the supervisor enforces the
/// exact limit on the whole tree and this is a backstop a second later; without it, this
/// is the enforcement (per process, whole seconds), then SIGKILL a second later.
pub(crate) fn cpu(limit: Duration, exact_elsewhere: bool) -> Rlimit {
    let secs = limit.as_secs().saturating_add(u64::from(limit.subsec_nanos() > 0));
    let soft = secs.max(1).saturating_add(u64::from(exact_elsewhere));
    Rlimit { resource: CPU, soft, hard: soft.saturating_add(1) }
}

/// `RLIMIT_AS` as the memory limit where no cgroup is usable: per process and counting
/// address space rather than memory, so only an approximation.
pub(crate) fn memory_fallback(bytes: u64) -> Rlimit {
    Rlimit::both(AS, bytes)
}

fn check_against_caller(r: &Rlimit) -> Result<()> {
    let (_, hard) = nix::sys::resource::getrlimit(resource_of(r.resource)).unwrap_or((u64::MAX, u64::MAX));
    if r.hard > hard {
        return Err(Error::config(format!(
            "{} limit {} is above the caller's own hard limit {hard}, which a sandbox cannot raise",
            name(r.resource),
            r.hard
        )));
    }
    Ok(())
}

fn resource_of(r: u32) -> nix::sys::resource::Resource {
    use nix::sys::resource::Resource;
    match r {
        NOFILE => Resource::RLIMIT_NOFILE,
        FSIZE => Resource::RLIMIT_FSIZE,
        STACK => Resource::RLIMIT_STACK,
        CPU => Resource::RLIMIT_CPU,
        AS => Resource::RLIMIT_AS,
        _ => Resource::RLIMIT_CORE,
    }
}

fn name(resource: u32) -> &'static str {
    match resource {
        NOFILE => "open files (nofile)",
        FSIZE => "file size (fsize)",
        STACK => "stack",
        _ => "resource",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_options() {
        let p = plan(64, None, None).unwrap();
        assert!(p.contains(&Rlimit::both(CORE, 0)));
        assert!(p.contains(&Rlimit::both(NOFILE, 64)));
        let p = plan(64, Some(1 << 20), Some(8 << 20)).unwrap();
        assert!(p.contains(&Rlimit::both(FSIZE, 1 << 20)));
        assert!(p.contains(&Rlimit::both(STACK, 8 << 20)));
    }

    #[test]
    fn above_the_callers_hard_limit_is_refused() {
        let err = plan(u64::MAX - 1, None, None).unwrap_err().to_string();
        assert!(err.contains("open files"), "{err}");
    }

    #[test]
    fn cpu_backstop_rounds_up() {
        assert_eq!(cpu(Duration::from_millis(500), true), Rlimit { resource: CPU, soft: 2, hard: 3 });
        assert_eq!(cpu(Duration::from_millis(500), false), Rlimit { resource: CPU, soft: 1, hard: 2 });
        assert_eq!(cpu(Duration::from_secs(2), false).soft, 2);
    }
}
