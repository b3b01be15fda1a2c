//! Resource limits set with `setrlimit` in the sandbox's init: data only.
//!
//! The init sets them before forking the program, so the program and all its descendants
//! inherit them. Hard limits can only be lowered, never raised, by the program.

/// One `setrlimit(resource, soft, hard)` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rlimit {
    pub resource: u32,
    pub soft: u64,
    pub hard: u64,
}

/// Default hard cap on open files: a judge's program needs few.
pub(crate) const DEFAULT_NOFILE: u64 = 256;

/// The rlimits every sandbox gets: no core dumps, few open files.
pub(crate) fn plan() -> Vec<Rlimit> {
    vec![
        Rlimit {
            resource: libc::RLIMIT_CORE,
            soft: 0,
            hard: 0,
        },
        Rlimit {
            resource: libc::RLIMIT_NOFILE,
            soft: DEFAULT_NOFILE,
            hard: DEFAULT_NOFILE,
        },
    ]
}

#[cfg(test)]
mod tests {
    #[test]
    fn core_dumps_off() {
        assert!(
            super::plan()
                .iter()
                .any(|r| r.resource == libc::RLIMIT_CORE && r.hard == 0)
        );
    }
}
