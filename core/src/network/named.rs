//! Named networks: sandboxes that reach each other by name, and nothing else.
//!
//! A network is a bridge in a network namespace of its own (the hub), kept by a bind mount
//! of its namespace file, in `$ISOLETTE_NETWORKS/NAME/` (`/run/isolette/networks`; tmpfs,
//! so a reboot takes it all, as it takes the namespaces). A sandbox joins with a veth pair
//! made in the hub, its other end (`eth0`) created right in the sandbox's namespace, and an
//! address of the network's /24. The hub has no address and forwards nothing anywhere
//! else: over the bridge, members reach each other, and neither the host nor another
//! network. The host's own network config is never touched.
//!
//! A network that is not internal (Docker's default) gives each member the outbound
//! sandbox's user-mode network besides (`slirp.rs`): a tap with the default route, its
//! egress rules, and its published ports; the bridge keeps the network's /24. An internal
//! one (`--internal`, Compose's `internal: true`) gives nothing but the bridge.
//!
//! Each member holds a lease, a file named by its address with its name in it, `flock`ed
//! for as long as the sandbox lives; the network's `hosts` file, bound read-only over every
//! member's `/etc/hosts`, is rewritten in place as members come and go. A lease nobody
//! holds any more (its caller was killed) is taken back by the next member or `rm`.
//!
//! Only root can do this: a bridge in one namespace and veths into sandboxes in sibling
//! user namespaces cannot be joined by an unprivileged caller (the kernel refuses moving
//! links between user namespaces that do not nest).

use std::fs::File;
use std::io::{Seek, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The addresses of the user-mode network every outbound sandbox has (slirp4netns's), which
/// no named network may take.
const USER_MODE_SUBNET: &str = "10.0.2.0/24";

/// The named networks on this host (root only).
#[derive(Debug, Clone)]
pub struct Networks {
    dir: PathBuf,
}

/// What a named network is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NetworkRecord {
    /// Its name.
    pub name: String,
    /// Its addresses: `10.89.N.0/24`.
    pub subnet: String,
    /// When it was made (seconds since the epoch).
    pub created: u64,
    /// Whether its members reach only each other: no outbound access, no published ports.
    #[serde(default)]
    pub internal: bool,
    /// Its members now: their names and addresses.
    #[serde(skip)]
    pub members: Vec<(String, Ipv4Addr)>,
}

/// A named network a sandbox can join (`SandboxBuilder::network(Network::Named(..))`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedNetwork {
    dir: PathBuf,
    name: String,
}

impl NamedNetwork {
    /// The network's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The hosts file bound over members' `/etc/hosts`.
    pub(crate) fn hosts_file(&self) -> PathBuf {
        self.dir.join("hosts")
    }

    /// What the network is, as made.
    pub(crate) fn record(&self) -> Result<NetworkRecord> {
        let path = self.dir.join("network.json");
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::io("read", &path, std::io::Error::other(e.to_string())))
    }
}

fn need_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(Error::config(
            "named networks need root: an unprivileged caller's sandboxes live in user namespaces that cannot share \
             a bridge; use --network outbound, or run as root",
        ))
    }
}

fn check_name(name: &str) -> Result<()> {
    crate::names::check("network", name)
}

/// A member's name goes into every member's hosts file: a DNS label or several.
pub(crate) fn check_member(hostname: &str) -> Result<()> {
    let ok = hostname.len() <= 63
        && hostname
            .split('.')
            .all(|l| !l.is_empty() && !l.starts_with('-') && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::config(format!(
            "hostname `{}` on a named network: letters, digits and `-`, in `.`-separated parts",
            hostname.escape_debug()
        )))
    }
}

/// Runs `ip -batch -` with `script` inside the network namespace `netns` (a file).
fn ip_in(netns: &Path, script: &str) -> Result<()> {
    let ns = File::open(netns).map_err(|e| Error::io("open", netns, e))?;
    let fd = ns.as_raw_fd();
    let mut cmd = Command::new("ip");
    cmd.args(["-batch", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    crate::sys::join_netns_before_exec(&mut cmd, fd);
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Host {
            feature: crate::HostFeature::Iproute2,
            hint: "named networks use `ip` from iproute2: install it (Debian: apt-get install iproute2)",
        },
        _ => Error::io("start", "ip", e),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(script.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| Error::io("wait", "ip", e))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(Error::io("configure network", netns, std::io::Error::other(said.trim().to_string())));
    }
    Ok(())
}

impl Networks {
    /// The default place: `$ISOLETTE_NETWORKS`, else `/run/isolette/networks`.
    pub fn default_dir() -> PathBuf {
        std::env::var_os("ISOLETTE_NETWORKS").map_or_else(|| "/run/isolette/networks".into(), PathBuf::from)
    }

    /// The networks in [`Networks::default_dir`].
    pub fn open_default() -> Result<Networks> {
        Networks::open(Networks::default_dir())
    }

    /// The networks kept in `dir` (made by the first [`Networks::create`]).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Networks> {
        Ok(Networks { dir: dir.into() })
    }

    fn lock(&self) -> Result<crate::names::Lock> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io("create directory", &self.dir, e))?;
        crate::names::lock(&self.dir)
    }

    /// Makes network `name`, on `subnet` (`10.89.7.0/24`; a free `10.89.N.0/24` when
    /// `None`); an `internal` one gives its members nothing but each other. Root only.
    pub fn create(&self, name: &str, subnet: Option<&str>, internal: bool) -> Result<NetworkRecord> {
        need_root()?;
        check_name(name)?;
        let _lock = self.lock()?;
        let dir = self.dir.join(name);
        if dir.exists() {
            return Err(Error::config(format!("network `{name}` exists already")));
        }
        let taken: Vec<String> = self.list()?.into_iter().map(|r| r.subnet).collect();
        let subnet = match subnet {
            Some(s) => {
                let base = parse_subnet(s)?;
                let s = format!("{base}/24");
                if s == USER_MODE_SUBNET {
                    return Err(Error::config(format!(
                        "subnet {s} is the user-mode network's own (slirp4netns); choose another"
                    )));
                }
                if taken.contains(&s) {
                    return Err(Error::config(format!("subnet {s} is taken by another network")));
                }
                s
            }
            None => (1..=254u8)
                .map(|n| format!("10.89.{n}.0/24"))
                .find(|s| !taken.contains(s))
                .ok_or_else(|| Error::config("every 10.89.N.0/24 is taken; give a --subnet"))?,
        };
        let work = self.dir.join(format!(".new-{name}"));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(work.join("leases")).map_err(|e| Error::io("create directory", &work, e))?;
        let made = (|| {
            let netns = work.join("netns");
            hold_new_netns(&netns)?;
            ip_in(&netns, "link set lo up\nlink add br0 type bridge\nlink set br0 up\n")?;
            std::fs::write(work.join("hosts"), hosts_text(&[])).map_err(|e| Error::io("write", &work, e))?;
            let record = NetworkRecord {
                name: name.to_string(),
                subnet,
                created: crate::names::now(),
                internal,
                members: Vec::new(),
            };
            let json = serde_json::to_vec_pretty(&record).unwrap_or_default();
            std::fs::write(work.join("network.json"), json).map_err(|e| Error::io("write", &work, e))?;
            std::fs::rename(&work, &dir).map_err(|e| Error::io("rename", &dir, e))?;
            Ok(record)
        })();
        if made.is_err() {
            let _ = nix::mount::umount2(&work.join("netns"), nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir_all(&work);
        }
        made
    }

    /// Network `name`, to join.
    pub fn network(&self, name: &str) -> Result<NamedNetwork> {
        check_name(name)?;
        let dir = self.dir.join(name);
        if !dir.join("network.json").is_file() {
            return Err(Error::config(format!(
                "no network `{name}`; make it with `isolette network create {name}` (networks: {})",
                self.list()?.into_iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(NamedNetwork { dir, name: name.to_string() })
    }

    /// Every network, with its members.
    pub fn list(&self) -> Result<Vec<NetworkRecord>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("read", &self.dir, e)),
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            let Ok(bytes) = std::fs::read(dir.join("network.json")) else { continue };
            let Ok(mut record) = serde_json::from_slice::<NetworkRecord>(&bytes) else { continue };
            record.members = members(&dir.join("leases"), false);
            out.push(record);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes network `name`; refused while a sandbox is on it.
    pub fn remove(&self, name: &str) -> Result<()> {
        need_root()?;
        let network = self.network(name)?;
        let _lock = self.lock()?;
        let members = members(&network.dir.join("leases"), true);
        if !members.is_empty() {
            let names: Vec<String> = members.into_iter().map(|(n, ip)| format!("{n} ({ip})")).collect();
            return Err(Error::config(format!("network `{name}` is in use by {}", names.join(", "))));
        }
        let netns = network.dir.join("netns");
        nix::mount::umount2(&netns, nix::mount::MntFlags::MNT_DETACH)
            .map_err(|e| Error::io("unmount", &netns, e.into()))?;
        std::fs::remove_dir_all(&network.dir).map_err(|e| Error::io("remove", &network.dir, e))
    }
}

/// `A.B.C.0/24` (or any address in it, without a prefix other than /24): its first address.
fn parse_subnet(s: &str) -> Result<Ipv4Addr> {
    let bad = || Error::config(format!("subnet `{}`: expected A.B.C.0/24", s.escape_debug()));
    let (addr, prefix) = s.split_once('/').unwrap_or((s, "24"));
    if prefix != "24" {
        return Err(bad());
    }
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let [a, b, c, _] = addr.octets();
    if addr.is_loopback() || addr.is_multicast() || addr.is_unspecified() {
        return Err(bad());
    }
    Ok(Ipv4Addr::new(a, b, c, 0))
}

/// Makes a new network namespace and keeps it with a bind mount on `path` (on a thread of
/// its own: `unshare` moves only the calling thread).
fn hold_new_netns(path: &Path) -> Result<()> {
    File::create(path).map_err(|e| Error::io("create", path, e))?;
    let target = path.to_path_buf();
    std::thread::spawn(move || -> Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| Error::io("unshare", "network namespace", e.into()))?;
        let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
        nix::mount::mount(Some(own.as_str()), &target, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| Error::io("bind", &target, e.into()))
    })
    .join()
    .map_err(|_| Error::io("create", path, std::io::Error::other("the namespace thread panicked")))?
}

/// The members in `leases`: each lease file held (locked) by a live sandbox. With
/// `reclaim`, leases nobody holds are removed.
fn members(leases: &Path, reclaim: bool) -> Vec<(String, Ipv4Addr)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(leases).into_iter().flatten().flatten() {
        let Some(ip) = entry.file_name().to_str().and_then(|n| n.parse::<Ipv4Addr>().ok()) else { continue };
        let Ok(file) = File::open(entry.path()) else { continue };
        match Flock::lock(file, FlockArg::LockSharedNonblock) {
            Ok(_stale) => {
                if reclaim {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            Err(_) => {
                let name = std::fs::read_to_string(entry.path()).unwrap_or_default();
                out.push((name.trim().to_string(), ip));
            }
        }
    }
    out.sort_by_key(|(_, ip)| *ip);
    out
}

fn hosts_text(members: &[(String, Ipv4Addr)]) -> String {
    let mut text = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (name, ip) in members {
        text.push_str(&format!("{ip}\t{name}\n"));
    }
    text
}

/// A sandbox on a named network: its lease, given back (and its name taken out of the
/// hosts file) when dropped. Its veth goes with its namespace.
#[derive(Debug)]
pub(crate) struct Member {
    network: NamedNetwork,
    lease: Option<Flock<File>>,
    lease_path: PathBuf,
}

impl NamedNetwork {
    /// Joins the sandbox `pid` to this network under `hostname`.
    pub(crate) fn join(&self, pid: i32, hostname: &str) -> Result<Member> {
        let networks = Networks { dir: self.dir.parent().unwrap_or(Path::new("/")).to_path_buf() };
        let lock = networks.lock()?;
        let record = self.record()?;
        let base = parse_subnet(&record.subnet)?.octets();
        let leases = self.dir.join("leases");
        let live = members(&leases, true);
        if live.iter().any(|(n, _)| n == hostname) {
            return Err(Error::config(format!(
                "network `{}` has a member named `{hostname}` already; give this sandbox another hostname",
                self.name
            )));
        }
        // Round robin from the address given last, as Docker's IPAM does: an address just
        // given back is taken again last, so that no member's neighbour cache still sends a
        // new member's packets to the old one's link address.
        let last_path = self.dir.join("last");
        let last = std::fs::read_to_string(&last_path).ok().and_then(|s| s.trim().parse::<u8>().ok()).unwrap_or(1);
        let address = (0..253u16)
            .map(|i| 2 + ((u16::from(last.max(1)) - 1 + i) % 253) as u8)
            .map(|n| Ipv4Addr::new(base[0], base[1], base[2], n))
            .find(|ip| !live.iter().any(|(_, l)| l == ip))
            .ok_or_else(|| Error::config(format!("network `{}` is full (253 members)", self.name)))?;
        std::fs::write(&last_path, address.octets()[3].to_string()).map_err(|e| Error::io("write", &last_path, e))?;
        let lease_path = leases.join(address.to_string());
        let file = File::create(&lease_path).map_err(|e| Error::io("create", &lease_path, e))?;
        let mut lease =
            Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| Error::io("flock", &lease_path, e.into()))?;
        // The hub's end is named for the sandbox's pid; the sandbox's end is made right in
        // its namespace (moving a link between namespaces costs ~17 ms, this ~0.3 ms).
        let hub_end = format!("vi{pid}");
        let connected = lease
            .write_all(hostname.as_bytes())
            .map_err(|e| Error::io("write", &lease_path, e))
            .and_then(|()| {
                ip_in(
                    &self.dir.join("netns"),
                    &format!(
                        "link add {hub_end} type veth peer name eth0 netns {pid}\nlink set {hub_end} master br0 up\n"
                    ),
                )
            })
            .and_then(|()| {
                ip_in(
                    Path::new(&format!("/proc/{pid}/ns/net")),
                    &format!("addr add {address}/24 dev eth0\nlink set eth0 up\n"),
                )
            });
        if let Err(e) = connected {
            // Not a `Member` yet: its drop would wait for the lock held here.
            let _ = std::fs::remove_file(&lease_path);
            return Err(e);
        }
        let member = Member { network: self.clone(), lease: Some(lease), lease_path };
        let written = member.rewrite_hosts(&live_with(&live, hostname, address));
        drop(lock); // before `member` may drop, which takes it
        written.map(|()| member)
    }
}

fn live_with(live: &[(String, Ipv4Addr)], name: &str, ip: Ipv4Addr) -> Vec<(String, Ipv4Addr)> {
    let mut all = live.to_vec();
    all.push((name.to_string(), ip));
    all.sort_by_key(|(_, ip)| *ip);
    all
}

impl Member {
    /// Rewrites the network's hosts file in place (the same file, so every member's bind
    /// mount of it sees the change).
    fn rewrite_hosts(&self, members: &[(String, Ipv4Addr)]) -> Result<()> {
        let path = self.network.hosts_file();
        let mut file = File::options().write(true).open(&path).map_err(|e| Error::io("open", &path, e))?;
        let text = hosts_text(members);
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(text.as_bytes()))
            .map_err(|e| Error::io("write", &path, e))
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let networks = Networks { dir: self.network.dir.parent().unwrap_or(Path::new("/")).to_path_buf() };
        let lock = networks.lock();
        // Only this member's own lease: the file at the path may be a newer member's.
        use std::os::unix::fs::MetadataExt;
        let ours = self.lease.as_ref().and_then(|l| l.metadata().ok()).map(|m| (m.dev(), m.ino()));
        let there = std::fs::metadata(&self.lease_path).ok().map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == there {
            let _ = std::fs::remove_file(&self.lease_path);
        }
        drop(self.lease.take());
        let live = members(&self.network.dir.join("leases"), true);
        let _ = self.rewrite_hosts(&live);
        drop(lock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_and_names() {
        assert_eq!(parse_subnet("10.89.3.0/24").unwrap(), Ipv4Addr::new(10, 89, 3, 0));
        assert_eq!(parse_subnet("192.168.7.9").unwrap(), Ipv4Addr::new(192, 168, 7, 0));
        for bad in ["10.0.0.0/16", "x", "127.0.0.0/24", "10.0.0/24"] {
            assert!(parse_subnet(bad).is_err(), "{bad}");
        }
        let hosts = hosts_text(&[("db".into(), Ipv4Addr::new(10, 89, 1, 2))]);
        assert!(hosts.ends_with("10.89.1.2\tdb\n"), "{hosts}");
    }
}
