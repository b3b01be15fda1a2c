//! A sandbox's network beyond loopback: outbound access and published ports, through
//! `slirp4netns` (`slirp.rs`), a user-mode network stack; egress rules (`egress.rs`) loaded
//! inside the sandbox (`inside.rs`); and named networks (`named.rs`), whose members also
//! reach out and publish ports the same way unless the network is internal.
//!
//! Every sandbox has a network namespace of its own with loopback up (`spawn/child.rs`):
//! that is [`Network::None`], Docker's `none`. With [`Network::Outbound`], or when ports
//! are published, the supervisor connects the sandbox's namespace after the clone and
//! before the go-ahead, so the network is there when the program starts:
//! - nothing of the host changes: slirp4netns uses ordinary sockets; no bridge, no
//!   iptables, no route. Host loopback services stay out of reach unless the caller allows
//!   them, and so do the host's other addresses and link-local destinations unless an
//!   egress rule opens them ([`EgressRule`]);
//! - ports are published only when asked for; a host port in use, or one below
//!   `ip_unprivileged_port_start` for a caller who is not root, is a config error before
//!   anything is made; port 0 takes a free one, reported by
//!   [`Running::ports`](crate::Running::ports);
//! - a caller who is not root needs `/dev/net/tun` readable and writable (mode 0666, as
//!   most distributions ship it): where it is not, the run fails before anything starts,
//!   naming the device ([`HostFeature::Tun`](crate::HostFeature::Tun)).

use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::error::{Error, HostFeature, Result};

mod egress;
mod inside;
mod named;
mod slirp;
pub(crate) mod spare;

#[cfg(feature = "compose")]
pub(crate) use named::check_member;

pub use egress::EgressRule;
pub use named::{NamedNetwork, NetworkRecord, Networks};

/// How a sandbox reaches the network.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Network {
    /// Only its own loopback, up (the default): nothing else is reachable.
    #[default]
    None,
    /// The internet through user-mode networking (`slirp4netns`); the host's loopback
    /// services stay unreachable unless
    /// [`SandboxBuilder::host_loopback`](crate::SandboxBuilder::host_loopback), and its other
    /// addresses and link-local destinations unless an [`EgressRule`] opens them.
    Outbound,
    /// A named network ([`Networks::network`]): its members reach each other by hostname;
    /// unless the network is internal, they also reach the internet and publish ports, as
    /// [`Network::Outbound`] sandboxes do (Docker's user-defined bridge). Root only.
    Named(NamedNetwork),
    /// Another sandbox's network namespace, shared ([`Running::network`](crate::Running::network)),
    /// as Docker's `--network container:NAME`: its interfaces, ports and loopback, so that a
    /// check can ask `localhost` what the other sandbox serves. Root only, without a user
    /// namespace.
    Shared(SharedNetwork),
}

/// A running sandbox's network namespace, for [`Network::Shared`]; held open as long as
/// this value (and its clones) live.
#[derive(Debug, Clone)]
pub struct SharedNetwork {
    fd: std::sync::Arc<OwnedFd>,
    /// The namespace's device and inode: what two values are compared by.
    id: (u64, u64),
}

impl SharedNetwork {
    /// The network namespace of process `pid`.
    pub(crate) fn of(pid: i32) -> Result<SharedNetwork> {
        use std::os::unix::fs::MetadataExt;
        let path = format!("/proc/{pid}/ns/net");
        let file = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let meta = file.metadata().map_err(|e| Error::io("stat", &path, e))?;
        Ok(SharedNetwork { fd: std::sync::Arc::new(file.into()), id: (meta.dev(), meta.ino()) })
    }

    /// The namespace, open.
    pub(crate) fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.fd.as_fd()
    }
}

impl PartialEq for SharedNetwork {
    fn eq(&self, other: &SharedNetwork) -> bool {
        self.id == other.id
    }
}

impl Eq for SharedNetwork {}

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

impl std::str::FromStr for Network {
    type Err = Error;

    /// As [`Network::parse`].
    fn from_str(text: &str) -> Result<Network> {
        Network::parse(text)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Network::None => "none",
            Network::Outbound => "outbound",
            Network::Named(n) => n.name(),
            Network::Shared(_) => "shared",
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
}

impl std::str::FromStr for Publish {
    type Err = Error;

    /// As [`Publish::parse`].
    fn from_str(spec: &str) -> Result<Publish> {
        Publish::parse(spec)
    }
}

impl fmt::Display for Publish {
    /// `127.0.0.1:8080->8000/tcp`, as `docker ps` shows ports.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}/{}", SocketAddr::new(self.host_addr, self.host_port), self.sandbox_port, self.protocol)
    }
}

/// The network part of a plan, checked and with host ports chosen: a named network joined,
/// the outside reached through slirp4netns, or both (a named network that is not internal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetworkPlan {
    /// The named network joined, under the sandbox's hostname.
    pub named: Option<(NamedNetwork, String)>,
    /// slirp4netns, for outbound access and published ports.
    pub outside: Option<Outside>,
}

/// What slirp4netns gives a sandbox: outbound access and published ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outside {
    slirp: PathBuf,
    nft: PathBuf,
    /// Host port 0 replaced by the one chosen.
    ports: Vec<Publish>,
    /// Loaded into the sandbox's namespace before the program starts: the named network's
    /// members, the guard of the host's loopback, the caller's rules, DNS to its name
    /// servers, the defaults.
    egress: Vec<EgressRule>,
    /// Whether what no rule matches is refused (the caller gave an allow rule).
    refuse_unmatched: bool,
}

/// Removes what callers that no longer run left of their networks: slirp4netns API
/// directories in `$TMPDIR`; returns them.
pub(crate) fn remove_leftovers() -> Vec<PathBuf> {
    slirp::remove_leftovers()
}

/// Where `program` is on `PATH` (the usual places when `PATH` is unset).
pub(crate) fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")
        .unwrap_or_else(|| OsString::from("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"));
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

/// Whether this process may open the tun device a user-mode network needs
/// ([`sys::TUN`](crate::sys::TUN)) for reading and writing.
pub(crate) fn tun_usable() -> bool {
    nix::unistd::access(crate::sys::TUN, nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK).is_ok()
}

/// Whether every user may open the tun device (mode 0666, as most distributions ship it).
pub(crate) fn tun_open_to_all() -> bool {
    nix::sys::stat::stat(crate::sys::TUN).is_ok_and(|m| m.st_mode & 0o006 == 0o006)
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

/// What the caller asked of a sandbox's network.
#[derive(Debug, Clone, Default)]
pub(crate) struct NetworkRequest {
    /// How the sandbox reaches the network.
    pub network: Network,
    /// Sandbox ports published on the host.
    pub publish: Vec<Publish>,
    /// Whether an outbound sandbox may reach the host's loopback services.
    pub host_loopback: bool,
    /// What an outbound sandbox may reach, in order.
    pub egress: Vec<EgressRule>,
}

impl NetworkPlan {
    /// The plan for `network` with `ports`, or `None` when loopback is all there is.
    /// Checks that slirp4netns and nft are there and `/dev/net/tun` usable, and that every
    /// host port is free (choosing free ones for port 0).
    pub(crate) fn new(request: &NetworkRequest, hostname: &str) -> Result<Option<NetworkPlan>> {
        let (network, ports, host_loopback) = (&request.network, &request.publish[..], request.host_loopback);
        if matches!(network, Network::Shared(_)) {
            if !ports.is_empty() || host_loopback || !request.egress.is_empty() {
                return Err(Error::config(
                    "a sandbox sharing another's network publishes no ports and has no egress rules of its own: the \
                     other sandbox's are in force",
                ));
            }
            return Ok(None);
        }
        let named = match network {
            Network::Named(n) => {
                named::check_member(hostname)?;
                Some((n.clone(), n.record()?))
            }
            _ => None,
        };
        let internal = named.as_ref().is_some_and(|(_, r)| r.internal);
        let reaches_out = *network == Network::Outbound || (named.is_some() && !internal);
        let needs = "network(Network::Outbound) or a named network that is not internal (--network outbound|NAME)";
        if !request.egress.is_empty() && !reaches_out {
            return Err(Error::config(format!("egress rules need {needs}")));
        }
        if host_loopback && !reaches_out {
            return Err(Error::config(format!("host_loopback needs {needs}")));
        }
        if let Some((n, _)) = named.as_ref().filter(|_| internal && !ports.is_empty()) {
            return Err(Error::config(format!(
                "network `{}` is internal: its members reach only each other and publish no ports; use a network \
                 made without --internal",
                n.name()
            )));
        }
        let named_part = named.as_ref().map(|(n, _)| (n.clone(), hostname.to_string()));
        // The named network's members first, whatever else the rules say; then the host's
        // loopback, which no rule of the caller's opens (only `host_loopback`); then the
        // caller's rules. Published ports without a network: slirp4netns carries them, and
        // a deny-everything rule keeps the sandbox from reaching out (replies to connections
        // in pass).
        let mut egress = Vec::new();
        if let Some((_, record)) = &named {
            egress.push(EgressRule::parse(true, &record.subnet)?);
        }
        if !host_loopback {
            egress.push(EgressRule { allow: false, addr: slirp::GATEWAY.into(), prefix: 32, ports: None });
        }
        egress.extend_from_slice(&request.egress);
        match network {
            Network::None if ports.is_empty() => return Ok(None),
            Network::None => {
                for all in ["0.0.0.0/0", "::/0"] {
                    egress.push(EgressRule::parse(false, all)?);
                }
            }
            Network::Named(_) if internal => return Ok(Some(NetworkPlan { named: named_part, outside: None })),
            Network::Shared(_) => return Ok(None),
            Network::Named(_) | Network::Outbound => {
                egress.extend(egress::dns(&host_nameservers()));
                egress.extend(egress::defaults());
            }
        }
        let slirp = find_program("slirp4netns").ok_or(Error::Host {
            feature: HostFeature::Slirp4netns,
            hint: "outbound networks and published ports use slirp4netns: install it (Debian: apt-get install \
                   slirp4netns)",
        })?;
        let nft = find_program("nft").ok_or(Error::Host {
            feature: HostFeature::Nftables,
            hint: "outbound networks load their egress rules with nft: install it (Debian: apt-get install nftables)",
        })?;
        let root = nix::unistd::geteuid().is_root();
        if !root && !tun_usable() {
            return Err(Error::Host {
                feature: HostFeature::Tun,
                hint: "outbound networks and published ports need /dev/net/tun, which this user may not open (mode \
                       0600 on this host): as root, `chmod 0666 /dev/net/tun` (the mode most distributions ship), or \
                       run as root; `isolette check` says which",
            });
        }
        let low = unprivileged_port_start();
        let mut chosen: Vec<Publish> = Vec::with_capacity(ports.len());
        for p in ports {
            if !root && p.host_port != 0 && p.host_port < low {
                return Err(Error::config(format!(
                    "publish {p}: host ports below {low} need root; choose a port of {low} or more"
                )));
            }
            if p.host_addr.is_ipv6() {
                return Err(Error::config(format!(
                    "publish {p}: ports are published on IPv4 host addresses only (slirp4netns 1.2); use 127.0.0.1 \
                     or 0.0.0.0"
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
        let refuse_unmatched = request.egress.iter().any(|r| r.allow);
        let outside = Outside { slirp, nft, ports: chosen, egress, refuse_unmatched };
        Ok(Some(NetworkPlan { named: named_part, outside: Some(outside) }))
    }

    /// Connects the sandbox `pid` (with a user namespace of its own when `userns`): joins
    /// the named network, then starts slirp4netns; returns once all is connected.
    pub(crate) fn attach(&self, pid: i32, userns: bool) -> Result<Attached> {
        let member = self.named.as_ref().map(|(network, hostname)| network.join(pid, hostname)).transpose()?;
        let Some(Outside { slirp, nft, ports, egress, refuse_unmatched }) = &self.outside else {
            return Ok(Attached { _slirp: None, _member: member, ports: Vec::new() });
        };
        let open = |what: &str| -> Result<OwnedFd> {
            let path = format!("/proc/{pid}/ns/{what}");
            std::fs::File::open(&path).map(OwnedFd::from).map_err(|e| Error::io("open", path, e))
        };
        let net = open("net")?;
        let user = userns.then(|| open("user")).transpose()?;
        // The tap is made when `start` returns; nft loads the rules while slirp4netns
        // starts.
        let helper =
            inside::start(nft, &net, user.as_ref(), Some(slirp::TAP), &egress::ruleset(egress, *refuse_unmatched))?;
        let slirp = slirp::Slirp::start(slirp, ports, &net, user.as_ref())?;
        helper.wait()?;
        Ok(Attached { _slirp: Some(slirp), _member: member, ports: ports.clone() })
    }
}

/// The host's name servers that a sandbox can reach (`/etc/resolv.conf`, loopback ones left
/// out).
fn host_nameservers() -> Vec<IpAddr> {
    let host_resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    host_resolv.lines().filter_map(nameserver).collect()
}

/// The address of a `nameserver` line of a `resolv.conf`, unless it is a loopback one.
fn nameserver(line: &str) -> Option<IpAddr> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (Some("nameserver"), Some(addr)) => addr.parse::<IpAddr>().ok().filter(|a| !a.is_loopback()),
        _ => None,
    }
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
            (Some("nameserver"), Some(_)) => nameserver(line).is_some(),
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

/// A sandbox's network: slirp4netns serving it, killed (and reaped) when dropped, which
/// frees its ports; or its membership of a named network, given back when dropped.
#[derive(Debug)]
pub(crate) struct Attached {
    /// Held for its drop, which stops it.
    _slirp: Option<slirp::Slirp>,
    /// Held for its drop, which leaves the network.
    _member: Option<named::Member>,
    /// The ports published, with the host ports chosen.
    pub ports: Vec<Publish>,
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
    }

    #[test]
    fn name_servers_a_sandbox_can_reach() {
        assert_eq!(nameserver("nameserver 10.0.0.2"), Some(IpAddr::from([10, 0, 0, 2])));
        assert_eq!(nameserver("nameserver  169.254.169.253 "), Some(IpAddr::from([169, 254, 169, 253])));
        for none in ["nameserver 127.0.0.53", "nameserver ::1", "# nameserver 1.2.3.4", "search example.com", ""] {
            assert_eq!(nameserver(none), None, "{none}");
        }
    }

    #[test]
    fn network_names() {
        assert_eq!(Network::parse("none").unwrap(), Network::None);
        assert_eq!(Network::parse("outbound").unwrap().to_string(), "outbound");
        assert!(Network::parse("host").is_err());
    }
}
