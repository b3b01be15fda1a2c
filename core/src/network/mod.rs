//! A sandbox's network beyond loopback: outbound access and published ports, through
//! `pasta` (Debian's `passt` package), a user-mode network stack; and named networks
//! (`named.rs`).
//!
//! Every sandbox has a network namespace of its own with loopback up (`spawn/child.rs`):
//! that is [`Network::None`], Docker's `none`. With [`Network::Outbound`], or when ports
//! are published, the supervisor attaches `pasta` to the sandbox's namespace after the
//! clone and before the go-ahead, so the network is there when the program starts:
//! - pasta runs as the caller (`--runas 0` for root, which pasta would otherwise leave
//!   for `nobody`), as the supervisor's child, and dies with the supervising thread
//!   (`PR_SET_PDEATHSIG`) or when the run ends, taking its ports with it;
//! - the namespaces are handed over as inherited fds (`/proc/self/fd/N`), which works
//!   with and without a user namespace of the sandbox's;
//! - nothing of the host changes: pasta uses ordinary sockets; no bridge, no iptables,
//!   no route. Host loopback services stay out of reach (`--no-map-gw`, and no copy of
//!   the host's listening ports: `-T none -U none`) unless the caller allows them;
//! - ports are published only when asked for (`-t none -u none` otherwise); a host port
//!   in use, or one below `ip_unprivileged_port_start` for a caller who is not root, is a
//!   config error before anything is made; port 0 takes a free one, reported by
//!   [`Running::ports`](crate::Running::ports).

use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, HostFeature, Result};

mod egress;
mod named;
pub(crate) mod spare;

pub use egress::EgressRule;
pub use named::{NamedNetwork, NetworkRecord, Networks};

/// How a sandbox reaches the network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Network {
    /// Only its own loopback, up (the default): nothing else is reachable.
    #[default]
    None,
    /// The internet through user-mode networking (`pasta`); the host's loopback services
    /// stay unreachable unless [`SandboxBuilder::host_loopback`](crate::SandboxBuilder::host_loopback).
    Outbound,
    /// A named network ([`Networks::network`]): its members reach each other by hostname,
    /// and nothing else. Root only.
    Named(NamedNetwork),
}

impl Network {
    /// `none`, `outbound`, or the name of a network in [`Networks::open_default`].
    pub fn parse(s: &str) -> Result<Network> {
        match s {
            "none" => Ok(Network::None),
            "outbound" => Ok(Network::Outbound),
            name => Networks::open_default()?.network(name).map(Network::Named),
        }
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Network::None => "none",
            Network::Outbound => "outbound",
            Network::Named(n) => n.name(),
        })
    }
}

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A sandbox port published on the host, as `docker run -p` has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Publish {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The host address to listen on (`127.0.0.1` unless another is asked for).
    pub host_addr: IpAddr,
    /// The host port; 0 takes a free one.
    pub host_port: u16,
    /// The port inside the sandbox.
    pub sandbox_port: u16,
}

impl Publish {
    /// TCP `sandbox_port` at `host_addr:host_port`.
    pub fn tcp(host_addr: IpAddr, host_port: u16, sandbox_port: u16) -> Publish {
        Publish { protocol: Protocol::Tcp, host_addr, host_port, sandbox_port }
    }

    /// UDP `sandbox_port` at `host_addr:host_port`.
    pub fn udp(host_addr: IpAddr, host_port: u16, sandbox_port: u16) -> Publish {
        Publish { protocol: Protocol::Udp, host_addr, host_port, sandbox_port }
    }

    /// `[ADDR:]HOSTPORT:PORT[/tcp|/udp]` (`8080:8000`, `0.0.0.0:8080:8000`,
    /// `[::1]:5353:53/udp`, `0:8000`), or just `PORT` (on a free host port). The address
    /// is 127.0.0.1 unless given: listening on every address must be asked for.
    pub fn parse(spec: &str) -> Result<Publish> {
        let bad = |why: &str| {
            Error::config(format!(
                "publish `{}`: {why} (expected [ADDR:]HOSTPORT:PORT[/tcp|/udp], like 8080:8000)",
                spec.escape_debug()
            ))
        };
        let (rest, protocol) = match spec.rsplit_once('/') {
            Some((r, "tcp")) => (r, Protocol::Tcp),
            Some((r, "udp")) => (r, Protocol::Udp),
            Some(_) => return Err(bad("the protocol is tcp or udp")),
            None => (spec, Protocol::Tcp),
        };
        let port = |p: &str, zero_ok: bool| match p.parse::<u16>() {
            Ok(n) if n > 0 || zero_ok => Ok(n),
            _ => Err(bad(&format!("`{}` is not a port", p.escape_debug()))),
        };
        let (addr, host, sandbox) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, ports) = v6.split_once("]:").ok_or_else(|| bad("an IPv6 address goes in brackets"))?;
            let (h, s) = ports.split_once(':').ok_or_else(|| bad("two ports after the address"))?;
            (addr, h, s)
        } else {
            let parts: Vec<&str> = rest.split(':').collect();
            match parts[..] {
                [s] => ("127.0.0.1", "0", s),
                [h, s] => ("127.0.0.1", h, s),
                [a, h, s] => (a, h, s),
                _ => return Err(bad("too many parts")),
            }
        };
        let host_addr: IpAddr =
            addr.parse().map_err(|_| bad(&format!("`{}` is not an IP address", addr.escape_debug())))?;
        Ok(Publish { protocol, host_addr, host_port: port(host, true)?, sandbox_port: port(sandbox, false)? })
    }

    /// pasta's spec: `ADDR/HOSTPORT:PORT`.
    fn pasta_spec(&self) -> String {
        format!("{}/{}:{}", self.host_addr, self.host_port, self.sandbox_port)
    }
}

impl fmt::Display for Publish {
    /// `127.0.0.1:8080->8000/tcp`, as `docker ps` shows ports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}/{}", SocketAddr::new(self.host_addr, self.host_port), self.sandbox_port, self.protocol)
    }
}

/// The network part of a plan, checked and with host ports chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NetworkPlan {
    /// pasta, for outbound access and published ports.
    Pasta {
        pasta: PathBuf,
        host_loopback: bool,
        /// Host port 0 replaced by the one chosen.
        ports: Vec<Publish>,
        /// Loaded into the sandbox's namespace before the program starts.
        egress: Vec<EgressRule>,
    },
    /// A named network, joined under the sandbox's hostname.
    Named { network: NamedNetwork, hostname: String },
}

/// Where `pasta` is on `PATH` (the usual places when `PATH` is unset).
fn find_pasta() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/local/bin:/usr/bin:/bin"));
    std::env::split_paths(&path).map(|d| d.join("pasta")).find(|p| p.is_file())
}

/// The lowest port a caller who is not root may listen on.
fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// Whether `addr:port` can be listened on now; binds and lets go.
fn try_bind(protocol: Protocol, addr: SocketAddr) -> std::io::Result<u16> {
    match protocol {
        Protocol::Tcp => TcpListener::bind(addr)?.local_addr().map(|a| a.port()),
        Protocol::Udp => UdpSocket::bind(addr)?.local_addr().map(|a| a.port()),
    }
}

impl NetworkPlan {
    /// The plan for `network` with `ports`, or `None` when loopback is all there is.
    /// Checks that pasta is there and that every host port is free (choosing free ones
    /// for port 0).
    pub(crate) fn new(config: &crate::config::Config) -> Result<Option<NetworkPlan>> {
        let (network, ports, host_loopback) = (&config.network, &config.publish[..], config.host_loopback);
        let hostname = &config.hostname;
        if !config.egress.is_empty() && *network != Network::Outbound {
            return Err(Error::config("egress rules need network(Network::Outbound) (--network outbound)"));
        }
        if !ports.is_empty() && matches!(network, Network::Named(_)) {
            return Err(Error::config(
                "a sandbox on a named network cannot publish ports (it reaches only the network's members)",
            ));
        }
        if host_loopback && *network != Network::Outbound {
            return Err(Error::config("host_loopback needs network(Network::Outbound) (--network outbound)"));
        }
        // Published ports without a network: pasta carries them, and a deny-everything egress
        // rule keeps the sandbox from reaching out (replies to connections in pass).
        let mut egress = config.egress.clone();
        match network {
            Network::None if ports.is_empty() => return Ok(None),
            Network::None => {
                for all in ["0.0.0.0/0", "::/0"] {
                    egress.push(EgressRule::parse(false, all)?);
                }
            }
            Network::Named(named) => {
                named::check_member(hostname)?;
                return Ok(Some(NetworkPlan::Named { network: named.clone(), hostname: hostname.to_string() }));
            }
            _ => {}
        }
        let pasta = find_pasta().ok_or(Error::Host {
            feature: HostFeature::Pasta,
            hint: "outbound networks and published ports use pasta: install it (Debian: apt-get install passt)",
        })?;
        let root = nix::unistd::geteuid().is_root();
        let low = unprivileged_port_start();
        let mut chosen: Vec<Publish> = Vec::with_capacity(ports.len());
        for p in ports {
            if !root && p.host_port != 0 && p.host_port < low {
                return Err(Error::config(format!(
                    "publish {p}: host ports below {low} need root; choose a port of {low} or more"
                )));
            }
            // Debian 12's pasta (2023-03) loses UDP sent to a loopback address whose port it
            // maps to another: refuse what would silently not work.
            if p.protocol == Protocol::Udp && p.host_addr.is_loopback() && p.host_port != p.sandbox_port {
                return Err(Error::config(format!(
                    "publish {p}: UDP on a loopback address must keep its port number (HOSTPORT = PORT), \
                     a limit of pasta; use {}:{}:{}/udp, or another address",
                    p.host_addr, p.sandbox_port, p.sandbox_port
                )));
            }
            if chosen.iter().any(|c| c.protocol == p.protocol && c.host_port == p.host_port && p.host_port != 0) {
                return Err(Error::config(format!("publish {p}: the host port is published twice")));
            }
            let port = try_bind(p.protocol, SocketAddr::new(p.host_addr, p.host_port)).map_err(|e| {
                Error::config(format!("publish {p}: cannot listen on the host: {e}; choose another port (0 for any)"))
            })?;
            chosen.push(Publish { host_port: port, ..*p });
        }
        Ok(Some(NetworkPlan::Pasta { pasta, host_loopback, ports: chosen, egress }))
    }

    /// Connects the sandbox `pid` (with a user namespace of its own when `userns`), and
    /// returns once it is.
    pub(crate) fn attach(&self, pid: i32, userns: bool) -> Result<Attached> {
        match self {
            NetworkPlan::Pasta { pasta, host_loopback, ports, egress } => {
                let attached = attach_pasta(pasta, *host_loopback, ports, pid, userns)?;
                if !egress.is_empty() {
                    egress::apply(egress, pid, userns)?;
                }
                Ok(attached)
            }
            NetworkPlan::Named { network, hostname } => {
                let member = network.join(pid, hostname)?;
                Ok(Attached { pasta: None, stderr: None, _member: Some(member), ports: Vec::new() })
            }
        }
    }
}

/// Attaches pasta to the network namespace of `pid` (and its user namespace, when
/// `userns`), and waits until the namespace is connected.
fn attach_pasta(pasta: &Path, host_loopback: bool, ports: &[Publish], pid: i32, userns: bool) -> Result<Attached> {
    let open = |what: &str| -> Result<OwnedFd> {
        let path = format!("/proc/{pid}/ns/{what}");
        std::fs::File::open(&path).map(OwnedFd::from).map_err(|e| Error::io("open", path, e))
    };
    let net = open("net")?;
    let user = userns.then(|| open("user")).transpose()?;
    let (ready_r, ready_w) = crate::stdio::pipe()?;
    // Fixed numbers in pasta: 3 the network namespace, 4 the pid "file" (our pipe),
    // 5 the user namespace.
    let mut cmd = Command::new(pasta);
    cmd.args(["--config-net", "--quiet", "--foreground", "-T", "none", "-U", "none"]);
    cmd.args(["--netns", "/proc/self/fd/3", "--pid", "/proc/self/fd/4"]);
    if user.is_some() {
        cmd.args(["--userns", "/proc/self/fd/5"]);
    }
    if !host_loopback {
        cmd.arg("--no-map-gw");
    }
    if nix::unistd::geteuid().is_root() {
        cmd.args(["--runas", "0"]);
    }
    for protocol in [Protocol::Tcp, Protocol::Udp] {
        let specs: Vec<String> = ports.iter().filter(|p| p.protocol == protocol).map(Publish::pasta_spec).collect();
        let flag = if protocol == Protocol::Tcp { "-t" } else { "-u" };
        if specs.is_empty() {
            cmd.args([flag, "none"]);
        }
        for spec in specs {
            cmd.args([flag, &spec]);
        }
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let fds = [net.as_raw_fd(), ready_w.as_raw_fd(), user.as_ref().map_or(-1, |u| u.as_raw_fd())];
    // SAFETY: between fork and exec only async-signal-safe calls (prctl, fcntl, dup2) on
    // fds this process owns, and no allocation.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Out of the way first (close-on-exec copies at 1000 or above), then into
            // place: no source is overwritten before it is copied.
            let mut high = [-1; 3];
            for (h, fd) in high.iter_mut().zip(fds) {
                if fd >= 0 {
                    *h = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 1000);
                    if *h < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
            }
            for (target, h) in (3..).zip(high) {
                if h >= 0 && libc::dup2(h, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| Error::io("start", pasta, e))?;
    drop((net, user, ready_w));
    let stderr = child.stderr.take();
    let mut attached = Attached { pasta: Some(child), stderr, _member: None, ports: ports.to_vec() };
    attached.wait_ready(ready_r)?;
    Ok(attached)
}

/// The sandbox's `/etc/hosts` (localhost, and `hostname` at 127.0.1.1 as Debian has it)
/// and `/etc/resolv.conf` (the host's, without loopback name servers, which the sandbox
/// cannot reach).
pub(crate) fn etc_files(hostname: &str) -> [(&'static str, Vec<u8>); 2] {
    let hosts = format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n");
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut resolv = String::from("# written by isolette from the host's resolv.conf\n");
    for line in host_resolv.lines() {
        let mut words = line.split_whitespace();
        let keep = match (words.next(), words.next()) {
            (Some("nameserver"), Some(addr)) => addr.parse::<IpAddr>().is_ok_and(|a| !a.is_loopback()),
            (Some("search" | "domain" | "options"), Some(_)) => true,
            _ => false,
        };
        if keep {
            resolv.push_str(line);
            resolv.push('\n');
        }
    }
    [("hosts", hosts.into_bytes()), ("resolv.conf", resolv.into_bytes())]
}

/// A sandbox's network: pasta serving it, killed (and reaped) when dropped, which frees
/// its ports; or its membership of a named network, given back when dropped.
#[derive(Debug)]
pub(crate) struct Attached {
    pasta: Option<Child>,
    stderr: Option<ChildStderr>,
    /// Held for its drop, which leaves the network.
    _member: Option<named::Member>,
    /// The ports published, with the host ports chosen.
    pub ports: Vec<Publish>,
}

/// How long pasta may take to connect a namespace (it takes about 20 ms).
const PASTA_START: Duration = Duration::from_secs(10);

impl Attached {
    /// Waits until pasta writes its pid (its namespace is connected then), or fails with
    /// what it said when it ends first.
    fn wait_ready(&mut self, ready: OwnedFd) -> Result<()> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let deadline = Instant::now() + PASTA_START;
        let mut file = std::fs::File::from(ready);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let timeout = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(Error::io("poll", "pasta", e.into())),
                Ok(0) => {
                    return Err(Error::io(
                        "start",
                        "pasta",
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "pasta did not connect the sandbox in time"),
                    ));
                }
                Ok(_) => {}
            }
            let mut buf = [0u8; 32];
            return match file.read(&mut buf) {
                Ok(n) if n > 0 => Ok(()),
                _ => Err(self.failure()),
            };
        }
    }

    /// What pasta said before it ended, as an error.
    fn failure(&mut self) -> Error {
        if let Some(mut child) = self.pasta.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let mut said = String::new();
        if let Some(mut err) = self.stderr.take() {
            let _ = err.read_to_string(&mut said);
        }
        let said: Vec<&str> = said.lines().filter(|l| !l.contains("syslog") && !l.trim().is_empty()).collect();
        let said = said.join("; ");
        if said.contains("Failed to bind") {
            return Error::config(format!("publishing ports failed: {said}; choose other host ports (0 for any)"));
        }
        Error::io("start", "pasta", std::io::Error::other(format!("pasta could not connect the sandbox: {said}")))
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        if let Some(mut child) = self.pasta.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_specs() {
        let p = |s: &str| Publish::parse(s).map(|p| p.to_string()).map_err(|e| e.to_string());
        assert_eq!(p("8080:8000").unwrap(), "127.0.0.1:8080->8000/tcp");
        assert_eq!(p("0.0.0.0:8080:8000").unwrap(), "0.0.0.0:8080->8000/tcp");
        assert_eq!(p("5353:53/udp").unwrap(), "127.0.0.1:5353->53/udp");
        assert_eq!(p("[::1]:8080:80").unwrap(), "[::1]:8080->80/tcp");
        assert_eq!(p("8000").unwrap(), "127.0.0.1:0->8000/tcp");
        assert_eq!(p("0:8000/tcp").unwrap(), "127.0.0.1:0->8000/tcp");
        for bad in [
            "",
            "x",
            "8080:",
            ":80",
            "1:2:3:4",
            "8080:0",
            "70000:80",
            "a.b:1:2",
            "80:80/sctp",
            "[::1:80:80",
            "::1:80:80",
        ] {
            assert!(p(bad).unwrap_err().contains("publish"), "{bad}");
        }
        assert_eq!(Publish::parse("[::1]:1:2").unwrap().pasta_spec(), "::1/1:2");
    }

    #[test]
    fn network_names() {
        assert_eq!(Network::parse("none").unwrap(), Network::None);
        assert_eq!(Network::parse("outbound").unwrap().to_string(), "outbound");
        assert!(Network::parse("host").is_err());
    }
}
