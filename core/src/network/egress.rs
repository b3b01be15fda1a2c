//! Egress rules of an outbound sandbox: which addresses and ports it may reach.
//!
//! The rules become an nftables table in the sandbox's own network namespace (the host's
//! rules are never touched), loaded by `nft` before the program starts; the program has no
//! capability to change them. They are matched in order, the first match decides; what no
//! rule matches is allowed, unless there is an allow rule, and then refused. Loopback, and
//! replies on connections already made (published ports), always pass.

use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::error::{Error, HostFeature, Result};

/// One egress rule: allow or deny a network, optionally only some ports (TCP and UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EgressRule {
    /// Allow (or deny) what matches.
    pub allow: bool,
    /// The network's address.
    pub addr: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
    /// The destination ports, first to last; `None` for all.
    pub ports: Option<(u16, u16)>,
}

impl EgressRule {
    /// `CIDR[:PORT[-PORT]]`: `10.0.0.0/8`, `93.184.216.34:443`, `0.0.0.0/0:53`,
    /// `[2001:db8::/32]:80-90`. An address without a prefix is that one address.
    pub fn parse(allow: bool, spec: &str) -> Result<EgressRule> {
        let bad = |why: &str| {
            Error::config(format!(
                "egress rule `{}`: {why} (expected CIDR[:PORT[-PORT]], like 10.0.0.0/8:443)",
                spec.escape_debug()
            ))
        };
        let (net, ports) = if let Some(v6) = spec.strip_prefix('[') {
            let (net, rest) = v6.split_once(']').ok_or_else(|| bad("an IPv6 network goes in brackets"))?;
            match rest {
                "" => (net, None),
                r => (net, Some(r.strip_prefix(':').ok_or_else(|| bad("`:` before the ports"))?)),
            }
        } else if spec.matches(':').count() > 1 {
            (spec, None) // a bare IPv6 network
        } else {
            match spec.split_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (spec, None),
            }
        };
        let (addr, prefix) = match net.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (net, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad("not an IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| bad("bad prefix length"))?,
        };
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad("bad port"));
        let ports = match ports {
            None => None,
            Some(p) => match p.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (port(lo)?, port(hi)?);
                    if lo > hi {
                        return Err(bad("the first port is above the last"));
                    }
                    Some((lo, hi))
                }
                None => {
                    let p = port(p)?;
                    Some((p, p))
                }
            },
        };
        Ok(EgressRule { allow, addr, prefix, ports })
    }

    /// The nftables rule.
    fn nft(&self) -> String {
        let family = if self.addr.is_ipv4() { "ip" } else { "ip6" };
        let verdict = if self.allow { "accept" } else { "drop" };
        match self.ports {
            None => format!("{family} daddr {}/{} {verdict}", self.addr, self.prefix),
            Some((lo, hi)) => format!(
                "{family} daddr {}/{} meta l4proto {{ tcp, udp }} th dport {lo}-{hi} {verdict}",
                self.addr, self.prefix
            ),
        }
    }
}

impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let net = match self.addr {
            IpAddr::V4(a) => format!("{a}/{}", self.prefix),
            IpAddr::V6(a) => format!("[{a}/{}]", self.prefix),
        };
        write!(f, "{} {net}", if self.allow { "allow" } else { "deny" })?;
        if let Some((lo, hi)) = self.ports {
            write!(f, ":{lo}")?;
            if hi != lo {
                write!(f, "-{hi}")?;
            }
        }
        Ok(())
    }
}

/// `CAP_NET_ADMIN`, from `<linux/capability.h>`.
const CAP_NET_ADMIN: u32 = 12;

/// `_LINUX_CAPABILITY_VERSION_3` of `capget(2)`.
const CAP_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct` (two of them for 64 capabilities).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The nftables table for `rules`.
pub(crate) fn ruleset(rules: &[EgressRule]) -> String {
    let policy = if rules.iter().any(|r| r.allow) { "drop" } else { "accept" };
    let mut text = format!(
        "table inet isolette {{\n  chain output {{\n    type filter hook output priority 0; policy {policy};\n    \
         oifname \"lo\" accept\n    ct state established,related accept\n"
    );
    for r in rules {
        text.push_str(&format!("    {}\n", r.nft()));
    }
    text.push_str("  }\n}\n");
    text
}

/// Loads `rules` into the network namespace of `pid` (entering its user namespace first
/// when `userns`), with `nft`.
pub(crate) fn apply(rules: &[EgressRule], pid: i32, userns: bool) -> Result<()> {
    let open = |what: &str| {
        let path = format!("/proc/{pid}/ns/{what}");
        std::fs::File::open(&path).map_err(|e| Error::io("open", path, e))
    };
    let net = open("net")?;
    let user = userns.then(|| open("user")).transpose()?;
    let (net_fd, user_fd) = (net.as_raw_fd(), user.as_ref().map_or(-1, |u| u.as_raw_fd()));
    let mut cmd = Command::new("nft");
    cmd.args(["-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: between fork and exec only async-signal-safe system calls (setns, capget,
    // capset, prctl) on fds this process owns and structs on the stack; the child is
    // single-threaded, as entering a user namespace requires.
    unsafe {
        cmd.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if user_fd >= 0 {
                if libc::setns(user_fd, libc::CLONE_NEWUSER) != 0 {
                    return fail();
                }
                // Entering the namespace gave every capability in it, but no id there is
                // root, so exec would drop them: keep CAP_NET_ADMIN as an ambient one.
                let mut header = CapHeader { version: CAP_VERSION_3, pid: 0 };
                let mut data = [CapData::default(); 2];
                if libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) != 0 {
                    return fail();
                }
                data[0].inheritable |= 1 << CAP_NET_ADMIN;
                if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0
                    || libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE,
                        CAP_NET_ADMIN as libc::c_ulong,
                        0,
                        0,
                    ) != 0
                {
                    return fail();
                }
            }
            if libc::setns(net_fd, libc::CLONE_NEWNET) != 0 {
                return fail();
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Host {
            feature: HostFeature::Nftables,
            hint: "egress rules use nft: install it (Debian: apt-get install nftables)",
        },
        _ => Error::io("start", "nft", e),
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(ruleset(rules).as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| Error::io("wait", "nft", e))?;
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        return Err(Error::io("load egress rules", "nft", std::io::Error::other(said.trim().to_string())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print() {
        let r = |s: &str| EgressRule::parse(true, s).map(|r| r.to_string()).map_err(|e| e.to_string());
        assert_eq!(r("10.0.0.0/8").unwrap(), "allow 10.0.0.0/8");
        assert_eq!(r("93.184.216.34:443").unwrap(), "allow 93.184.216.34/32:443");
        assert_eq!(r("0.0.0.0/0:80-90").unwrap(), "allow 0.0.0.0/0:80-90");
        assert_eq!(r("[2001:db8::/32]:53").unwrap(), "allow [2001:db8::/32]:53");
        assert_eq!(r("2001:db8::1").unwrap(), "allow [2001:db8::1/128]");
        for bad in ["", "x", "10.0.0.0/33", "1.2.3.4:0", "1.2.3.4:9-8", "1.2.3.4:x", "[::1", "[::1]x"] {
            assert!(r(bad).unwrap_err().contains("egress rule"), "{bad}");
        }
    }

    #[test]
    fn ruleset_policy_follows_the_rules() {
        let deny = EgressRule::parse(false, "10.0.0.0/8").unwrap();
        let allow = EgressRule::parse(true, "1.1.1.1:53").unwrap();
        assert!(ruleset(&[deny]).contains("policy accept;"));
        let both = ruleset(&[deny, allow]);
        assert!(
            both.contains("policy drop;")
                && both.contains("ip daddr 1.1.1.1/32 meta l4proto { tcp, udp } th dport 53-53 accept")
        );
        assert!(both.find("10.0.0.0/8 drop").unwrap() < both.find("1.1.1.1").unwrap(), "in order");
    }
}
