//! Egress rules of an outbound sandbox: which addresses and ports it may reach.
//!
//! One semantics on every surface: the rules are an ordered list, and the first rule that
//! matches a destination decides. After the caller's rules come those of every outbound
//! sandbox: DNS (port 53) to the name servers of its `resolv.conf` is allowed, and then
//! ([`defaults`]) the host's own addresses and link-local destinations (where cloud
//! metadata services live) are refused, so `outbound` means the internet and not the
//! operator's machine; a rule of the caller's that matches first overrides them. What no
//! rule matches is allowed, unless the caller gave an allow rule, and then refused.
//! Loopback, and replies on connections already made (published ports), always pass.
//!
//! The rules become an nftables table in the sandbox's own network namespace (the host's
//! rules are never touched), loaded by `nft` before the program starts (`inside.rs`); the
//! program has no capability to change them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::{Error, Result};

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

impl FromStr for EgressRule {
    type Err = Error;

    /// `allow:CIDR[:PORTS]` or `deny:CIDR[:PORTS]`, the words every surface shares (the
    /// CLI's `--egress`, Python's and Node's `egress` option).
    fn from_str(s: &str) -> Result<EgressRule> {
        match s.split_once(':') {
            Some(("allow", spec)) => EgressRule::parse(true, spec),
            Some(("deny", spec)) => EgressRule::parse(false, spec),
            _ => Err(Error::config(format!(
                "egress rule `{}`: expected allow:CIDR[:PORTS] or deny:CIDR[:PORTS], like deny:10.0.0.0/8 or \
                 allow:0.0.0.0/0:443",
                s.escape_debug()
            ))),
        }
    }
}

impl fmt::Display for EgressRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let net = match self.addr {
            IpAddr::V4(a) => format!("{a}/{}", self.prefix),
            IpAddr::V6(a) => format!("[{a}/{}]", self.prefix),
        };
        write!(f, "{}:{net}", if self.allow { "allow" } else { "deny" })?;
        if let Some((lo, hi)) = self.ports {
            write!(f, ":{lo}")?;
            if hi != lo {
                write!(f, "-{hi}")?;
            }
        }
        Ok(())
    }
}

/// DNS to each of `servers` (port 53), for an outbound sandbox's name servers.
pub(crate) fn dns(servers: &[IpAddr]) -> Vec<EgressRule> {
    servers
        .iter()
        .map(|&addr| EgressRule {
            allow: true,
            addr,
            prefix: if addr.is_ipv4() { 32 } else { 128 },
            ports: Some((53, 53)),
        })
        .collect()
}

/// What an outbound sandbox may not reach unless a rule of the caller's opens it: the
/// host's own addresses (loopback is the sandbox's own, and the host's is kept out by the
/// user-mode network) and link-local destinations, IPv4 and IPv6.
pub(crate) fn defaults() -> Vec<EgressRule> {
    let deny = |addr: IpAddr, prefix: u8| EgressRule { allow: false, addr, prefix, ports: None };
    let mut rules = Vec::new();
    let mut own: Vec<IpAddr> = Vec::new();
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let addr = a.address.as_ref().and_then(|s| {
                s.as_sockaddr_in()
                    .map(|v4| IpAddr::V4(v4.ip()))
                    .or_else(|| s.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
            });
            if let Some(addr) = addr
                && !addr.is_loopback()
                && !own.contains(&addr)
            {
                own.push(addr);
            }
        }
    }
    for addr in own {
        rules.push(deny(addr, if addr.is_ipv4() { 32 } else { 128 }));
    }
    rules.push(deny(IpAddr::from([169, 254, 0, 0]), 16));
    rules.push(deny(IpAddr::from([0xfe80, 0, 0, 0, 0, 0, 0, 0]), 10));
    rules
}

/// The nftables table for `rules`, in order; what none of them matches is refused when
/// `refuse_unmatched` (the caller gave an allow rule), and allowed otherwise.
pub(crate) fn ruleset(rules: &[EgressRule], refuse_unmatched: bool) -> String {
    let policy = if refuse_unmatched { "drop" } else { "accept" };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print() {
        let r = |s: &str| EgressRule::parse(true, s).map(|r| r.to_string()).map_err(|e| e.to_string());
        assert_eq!(r("10.0.0.0/8").unwrap(), "allow:10.0.0.0/8");
        assert_eq!(r("93.184.216.34:443").unwrap(), "allow:93.184.216.34/32:443");
        assert_eq!(r("0.0.0.0/0:80-90").unwrap(), "allow:0.0.0.0/0:80-90");
        assert_eq!(r("[2001:db8::/32]:53").unwrap(), "allow:[2001:db8::/32]:53");
        assert_eq!(r("2001:db8::1").unwrap(), "allow:[2001:db8::1/128]");
        for bad in ["", "x", "10.0.0.0/33", "1.2.3.4:0", "1.2.3.4:9-8", "1.2.3.4:x", "[::1", "[::1]x"] {
            assert!(r(bad).unwrap_err().contains("egress rule"), "{bad}");
        }
    }

    #[test]
    fn the_shared_words_parse_and_print_back() {
        for word in ["allow:10.0.0.0/8", "deny:93.184.216.34/32:443", "allow:[2001:db8::/32]:53-60"] {
            assert_eq!(word.parse::<EgressRule>().unwrap().to_string(), word);
        }
        for bad in ["10.0.0.0/8", "permit:10.0.0.0/8", "allow:", "deny:x", "allow 1.2.3.4"] {
            let e = bad.parse::<EgressRule>().unwrap_err().to_string();
            assert!(e.contains("egress rule"), "{bad}: {e}");
        }
    }

    #[test]
    fn defaults_refuse_link_local_and_the_hosts_own_addresses() {
        let d = defaults();
        assert!(d.iter().all(|r| !r.allow));
        assert!(d.iter().any(|r| r.to_string() == "deny:169.254.0.0/16"));
        assert!(d.iter().any(|r| r.to_string() == "deny:[fe80::/10]"));
        assert!(d.iter().all(|r| !r.addr.is_loopback()));
    }

    #[test]
    fn ruleset_policy_follows_the_rules() {
        let deny = EgressRule::parse(false, "10.0.0.0/8").unwrap();
        let allow = EgressRule::parse(true, "1.1.1.1:53").unwrap();
        assert!(ruleset(&[deny], false).contains("policy accept;"));
        let both = ruleset(&[deny, allow], true);
        assert!(
            both.contains("policy drop;")
                && both.contains("ip daddr 1.1.1.1/32 meta l4proto { tcp, udp } th dport 53-53 accept")
        );
        assert!(both.find("10.0.0.0/8 drop").unwrap() < both.find("1.1.1.1").unwrap(), "in order");
    }
}
