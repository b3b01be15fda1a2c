//! [`gc`]: what callers that no longer run left behind, for `isolette gc` and for a
//! process's first sandbox (which clears the cgroups only).

use crate::cgroup::{self, GcReport};
use crate::error::Result;

/// Removes what callers which are no longer running left behind: their cgroups below
/// `isolette/` (killing any process still in them), and the slirp4netns API directories
/// in `$TMPDIR` of those killed while publishing ports. A process's first sandbox clears
/// the cgroups by itself; `isolette gc` runs all of it by hand.
pub fn gc() -> Result<GcReport> {
    let mut report = cgroup::gc()?;
    report.removed.extend(crate::network::remove_leftovers());
    Ok(report)
}
