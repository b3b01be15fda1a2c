//! The user-mode network of outbound sandboxes and published ports: `slirp4netns`
//! (Debian's package), serving a tap device in the sandbox's network namespace.
//!
//! Parent side. The supervisor starts it after the clone and before the go-ahead, so the
//! network is there when the program starts:
//! - the tap device `tap0` is made ahead, persistent, by the helper that loads the egress
//!   rules (`inside.rs`): slirp4netns only attaches to it. A device that slirp4netns made
//!   itself would be unregistered when it exits, an RCU grace period (about 23 ms here) on
//!   the run's path; a persistent one goes with the namespace, in the kernel's own time;
//! - it runs as the caller, as the supervisor's child, with `--enable-seccomp` (and for
//!   root, `--enable-sandbox`: capabilities dropped, a mount namespace of its own), and dies
//!   with the supervising thread (`PR_SET_PDEATHSIG`) or when the run ends, taking its
//!   ports;
//! - the namespaces are handed over as inherited fds (`/proc/self/fd/N`), which works with
//!   and without a user namespace of the sandbox's;
//! - published ports are added over its API socket, in a private directory removed once
//!   they are;
//! - the gateway ([`GATEWAY`]) is the host's loopback. slirp4netns's own switch
//!   (`--disable-host-loopback`) would also drop every UDP reply to a client on the host's
//!   loopback (a published UDP port), so the sandbox's egress rules refuse new
//!   connections to the gateway instead, unless the caller allows them.
//!
//! Why slirp4netns and not pasta: Debian 12's pasta (2023-03) loses and doubles bytes of
//! TCP streams that the sandbox half-closes; slirp4netns 1.2 (libslirp 4.7) moved every
//! byte exactly in the same transfers (the README's network figures).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Protocol, Publish};
use crate::error::{Error, Result};

/// The gateway's address in the sandbox, where slirp4netns answers for the host's loopback.
pub(super) const GATEWAY: [u8; 4] = [10, 0, 2, 2];

/// The tap device's name in the sandbox (made by `inside.rs`, served by slirp4netns).
pub(super) const TAP: &str = "tap0";

/// How long slirp4netns may take to connect a namespace (it takes about 3 ms).
const START: Duration = Duration::from_secs(10);

/// A sandbox's user-mode network: slirp4netns serving it, killed (and reaped) when
/// dropped, which frees its ports.
#[derive(Debug)]
pub(crate) struct Slirp {
    child: Option<Child>,
    /// What it says (a memfd, read only when it fails: a pipe nobody reads could fill).
    log: File,
}

impl Slirp {
    /// Starts slirp4netns on the network namespace `net` (entering the user namespace
    /// `user` first, when there is one), publishes `ports`, and returns once all is ready.
    pub(super) fn start(program: &Path, ports: &[Publish], net: &OwnedFd, user: Option<&OwnedFd>) -> Result<Slirp> {
        let (ready_r, ready_w) = crate::stdio::pipe()?;
        let log = nix::sys::memfd::memfd_create("isolette-slirp4netns", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map(File::from)
            .map_err(|e| Error::io("memfd_create", "slirp4netns log", e.into()))?;
        let api = (!ports.is_empty()).then(ApiDir::new).transpose()?;
        // Fixed numbers: 3 the network namespace, 4 the ready pipe, 5 the user namespace.
        let mut cmd = Command::new(program);
        // No DNS forwarder at 10.0.2.3: the sandbox's resolv.conf names the host's name
        // servers, and the forwarder would be a way to a name server on the host's loopback.
        cmd.args(["--configure", "--mtu=65520", "--disable-dns", "--netns-type=path", "--ready-fd=4"]);
        // A root caller's slirp4netns drops its capabilities and sees only /etc and /run;
        // an unprivileged caller's has none to drop, and its sandbox mode would need root of
        // the sandbox's user namespace, which is not mapped to this caller.
        if nix::unistd::geteuid().is_root() {
            cmd.arg("--enable-sandbox");
        }
        cmd.arg("--enable-seccomp");
        if user.is_some() {
            cmd.arg("--userns-path=/proc/self/fd/5");
        }
        if let Some(api) = &api {
            cmd.arg("--api-socket").arg(api.socket());
        }
        cmd.args(["/proc/self/fd/3", TAP]);
        let log_fd = log.try_clone().map_err(|e| Error::io("dup", "slirp4netns log", e))?;
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::from(OwnedFd::from(log_fd)));
        let fds = [net.as_raw_fd(), ready_w.as_raw_fd(), user.map_or(-1, |u| u.as_raw_fd())];
        crate::sys::place_fds_before_exec(&mut cmd, fds);
        let child = cmd.spawn().map_err(|e| Error::io("start", program, e))?;
        drop(ready_w);
        let mut slirp = Slirp { child: Some(child), log };
        slirp.wait_ready(ready_r)?;
        if let Some(api) = api {
            for port in ports {
                slirp.publish(&api, port)?;
            }
        }
        Ok(slirp)
    }

    /// Waits until slirp4netns says it is ready (the namespace is connected then), or fails
    /// with what it said when it ends first.
    fn wait_ready(&mut self, ready: OwnedFd) -> Result<()> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let deadline = Instant::now() + START;
        let mut file = File::from(ready);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::io("poll", "slirp4netns", e.into())),
                Ok(0) => return Err(self.failure("it did not connect the sandbox in time")),
                Ok(_) => {}
            }
            let mut buf = [0u8; 8];
            return match file.read(&mut buf) {
                Ok(n) if n > 0 => Ok(()),
                _ => Err(self.failure("it ended before the sandbox was connected")),
            };
        }
    }

    /// Publishes `port` through the API socket in `api`.
    fn publish(&mut self, api: &ApiDir, port: &Publish) -> Result<()> {
        let proto = match port.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        let request = serde_json::json!({
            "execute": "add_hostfwd",
            "arguments": {
                "proto": proto,
                "host_addr": port.host_addr.to_string(),
                "host_port": port.host_port,
                "guest_port": port.sandbox_port,
            }
        });
        let answer = (|| -> std::io::Result<String> {
            let mut conn = UnixStream::connect(api.socket())?;
            conn.set_read_timeout(Some(START))?;
            conn.write_all(request.to_string().as_bytes())?;
            conn.shutdown(std::net::Shutdown::Write)?;
            let mut answer = String::new();
            conn.read_to_string(&mut answer)?;
            Ok(answer)
        })()
        .map_err(|e| Error::io("publish a port through", api.socket(), e))?;
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap_or_default();
        if answer.get("return").is_some() {
            return Ok(());
        }
        let said = answer.pointer("/error/desc").and_then(|d| d.as_str()).unwrap_or("no answer");
        Err(Error::config(format!(
            "publish {port}: slirp4netns refused it ({said}); choose another host port (0 for any)"
        )))
    }

    /// Stops slirp4netns and says what it said, as an error for `what` went wrong.
    fn failure(&mut self, what: &str) -> Error {
        self.stop();
        let mut said = String::new();
        let _ = self.log.rewind();
        let _ = (&self.log).take(64 << 10).read_to_string(&mut said);
        let said: Vec<&str> = said
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with("WARNING: Support for seccomp"))
            .collect();
        Error::io(
            "start",
            "slirp4netns",
            std::io::Error::other(format!("slirp4netns could not connect the sandbox: {what}: {}", said.join("; "))),
        )
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Slirp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What the API directories' names start with.
const API_DIR_PREFIX: &str = "isolette-slirp.";

/// A private directory for the API socket (`$TMPDIR/isolette-slirp.<owner tag>.XXXXXX`),
/// removed when dropped: once the ports are published, slirp4netns keeps its listening
/// socket and the name is not needed any more. One that a killed caller left is
/// [`remove_leftovers`]'s.
struct ApiDir(PathBuf);

impl ApiDir {
    fn new() -> Result<ApiDir> {
        let template = std::env::temp_dir().join(format!("{API_DIR_PREFIX}{}.XXXXXX", crate::runtime::owner_tag()));
        nix::unistd::mkdtemp(&template).map(ApiDir).map_err(|e| Error::io("mkdtemp", template, e.into()))
    }

    fn socket(&self) -> PathBuf {
        self.0.join("api.sock")
    }
}

impl Drop for ApiDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes the API directories in `$TMPDIR` whose owners no longer run (killed between
/// making one and publishing their ports); returns them.
pub(crate) fn remove_leftovers() -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(tag) = name.to_str().and_then(|n| n.strip_prefix(API_DIR_PREFIX)).and_then(|n| n.rsplit_once('.'))
        else {
            continue;
        };
        if !crate::runtime::tag_alive(tag.0) && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftovers_of_dead_owners_are_removed_and_others_kept() {
        let tmp = std::env::temp_dir();
        let dead = tmp.join(format!("{API_DIR_PREFIX}999999999-1.{}", std::process::id()));
        let alive = tmp.join(format!("{API_DIR_PREFIX}{}.{}x", crate::runtime::owner_tag(), std::process::id()));
        let other = tmp.join(format!("{API_DIR_PREFIX}not-a-tag-{}", std::process::id()));
        for d in [&dead, &alive, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(dead.join("api.sock"), "").unwrap();
        let removed = remove_leftovers();
        assert!(removed.contains(&dead) && !dead.exists(), "{removed:?}");
        assert!(alive.exists() && other.exists(), "a live owner's, and what is not ours, stay");
        for d in [&alive, &other] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}
