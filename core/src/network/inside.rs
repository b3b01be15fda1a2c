//! What is made inside a sandbox's network namespace before its program starts: the
//! persistent tap device that slirp4netns serves (`slirp.rs`) and the egress rules
//! (`egress.rs`), by one helper process that enters the sandbox's user and network
//! namespaces, makes the tap, and becomes `nft`.
//!
//! Parent side: the helper is forked from the supervisor's thread, and between its fork and
//! its exec it runs only system calls on fds and stack memory prepared before.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::error::{Error, HostFeature, Result};

/// The helper at work: `nft` reading its rules, inside the sandbox's namespaces, the tap
/// (if asked for) already made.
pub(super) struct Helper {
    child: Option<Child>,
}

/// Starts the helper in the namespaces `net` (and `user`, when the sandbox has one): makes
/// the persistent tap `tap` when given, then loads `ruleset` with `nft`. Returns once the
/// tap is made (`spawn` returns after the exec): the rules are loaded by [`Helper::wait`].
pub(super) fn start(
    nft: &Path,
    net: &OwnedFd,
    user: Option<&OwnedFd>,
    tap: Option<&str>,
    ruleset: &str,
) -> Result<Helper> {
    let make_tap = tap.is_some();
    let mut cmd = Command::new(nft);
    cmd.args(["-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    crate::sys::enter_sandbox_net_before_exec(&mut cmd, net.as_raw_fd(), user.map(|u| u.as_raw_fd()), tap);
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Host {
            feature: HostFeature::Nftables,
            hint: "outbound networks load their egress rules with nft: install it (Debian: apt-get install nftables)",
        },
        _ if make_tap => Error::io("make the tap device in the sandbox's network namespace", "/dev/net/tun", e),
        _ => Error::io("enter the sandbox's network namespace", "nft", e),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(ruleset.as_bytes());
    }
    Ok(Helper { child: Some(child) })
}

impl Helper {
    /// Waits for `nft` to have loaded the rules.
    pub(super) fn wait(mut self) -> Result<()> {
        let Some(child) = self.child.take() else { return Ok(()) };
        let out = child.wait_with_output().map_err(|e| Error::io("wait", "nft", e))?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            return Err(Error::io("load egress rules", "nft", std::io::Error::other(said.trim().to_string())));
        }
        Ok(())
    }
}

impl Drop for Helper {
    /// A helper not waited for (the run failed before): killed and reaped.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
