//! What is made inside a sandbox's network namespace before its program starts: the
//! persistent tap device that slirp4netns serves (`slirp.rs`) and the egress rules
//! (`egress.rs`), by one helper process that enters the sandbox's user and network
//! namespaces, makes the tap, and becomes `nft`.
//!
//! Parent side: the helper is forked from the supervisor's thread, and between its fork and
//! its exec it runs only system calls on fds and stack memory prepared before.

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::error::{Error, HostFeature, Result};

/// `CAP_NET_ADMIN`, from `<linux/capability.h>`.
const CAP_NET_ADMIN: u32 = 12;

/// `_LINUX_CAPABILITY_VERSION_3` of `capget(2)`.
const CAP_VERSION_3: u32 = 0x2008_0522;

/// `TUNSETIFF` and `TUNSETPERSIST`, `_IOW('T', 202 | 203, int)` in `<linux/if_tun.h>`.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const TUNSETPERSIST: libc::c_ulong = 0x4004_54cb;

/// `IFF_TAP | IFF_NO_PI`: an Ethernet device without the packet-information header, as
/// slirp4netns opens it.
const TAP_FLAGS: libc::c_short = 0x0002 | 0x1000;

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

/// `struct ifreq` with the name and the flags of `TUNSETIFF` (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

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
    let (net_fd, user_fd) = (net.as_raw_fd(), user.map_or(-1, |u| u.as_raw_fd()));
    let mut ifreq = IfReq { name: [0; libc::IFNAMSIZ], flags: TAP_FLAGS, _pad: [0; 22] };
    if let Some(name) = tap {
        ifreq.name[..name.len()].copy_from_slice(name.as_bytes());
    }
    let make_tap = tap.is_some();
    let mut cmd = Command::new(nft);
    cmd.args(["-f", "-"]).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    // SAFETY: between fork and exec only async-signal-safe system calls (setns, capget,
    // capset, prctl, open, ioctl, close) on fds this process owns, a path literal and
    // structs prepared before the fork; the child is single-threaded, as entering a user
    // namespace requires.
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
            if make_tap {
                // Opened in the sandbox's namespace, the device is made there.
                let tun = libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
                if tun < 0 {
                    return fail();
                }
                if libc::ioctl(tun, TUNSETIFF as _, &ifreq) != 0
                    || libc::ioctl(tun, TUNSETPERSIST as _, 1 as libc::c_ulong) != 0
                {
                    let e = std::io::Error::last_os_error();
                    libc::close(tun);
                    return Err(e);
                }
                libc::close(tun);
            }
            Ok(())
        });
    }
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
