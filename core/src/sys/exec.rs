//! What helper programs do between their fork and their exec: `pre_exec` hooks of
//! `std::process::Command`, each made of async-signal-safe system calls on fds and
//! structs prepared before the fork (the child of a multi-threaded caller may do no more).

use std::ffi::CStr;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The tun/tap clone device.
pub(crate) const TUN: &CStr = c"/dev/net/tun";

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

/// The helper joins the network namespace `net` (an fd this process owns and keeps open
/// until the spawn returns) before its exec.
pub(crate) fn join_netns_before_exec(cmd: &mut Command, net: RawFd) {
    // SAFETY: between fork and exec, one async-signal-safe call on an fd this process owns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(net, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The helper enters a sandbox's user namespace `user` (when given, keeping
/// `CAP_NET_ADMIN` across the exec as an ambient capability) and network namespace `net`,
/// then makes the persistent tap device `tap` there (when given; at most 15 bytes), before
/// its exec. The fds stay open until the spawn returns.
pub(crate) fn enter_sandbox_net_before_exec(cmd: &mut Command, net: RawFd, user: Option<RawFd>, tap: Option<&str>) {
    let user = user.unwrap_or(-1);
    let mut ifreq = IfReq { name: [0; libc::IFNAMSIZ], flags: TAP_FLAGS, _pad: [0; 22] };
    if let Some(name) = tap {
        // One byte short of the array: the name stays NUL-terminated.
        let len = name.len().min(libc::IFNAMSIZ - 1);
        ifreq.name[..len].copy_from_slice(&name.as_bytes()[..len]);
    }
    let make_tap = tap.is_some();
    // SAFETY: between fork and exec only async-signal-safe system calls (setns, capget,
    // capset, prctl, open, ioctl, close) on fds this process owns, a path literal and
    // structs prepared before the fork; the child is single-threaded, as entering a user
    // namespace requires.
    unsafe {
        cmd.pre_exec(move || {
            let fail = || Err(std::io::Error::last_os_error());
            if user >= 0 {
                if libc::setns(user, libc::CLONE_NEWUSER) != 0 {
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
            if libc::setns(net, libc::CLONE_NEWNET) != 0 {
                return fail();
            }
            if make_tap {
                // Opened in the sandbox's namespace, the device is made there.
                let tun = libc::open(TUN.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
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
}

/// The helper dies with the thread that started it (`PR_SET_PDEATHSIG`), and finds
/// `fds` at 3, 4, 5 … (a -1 leaves its number alone), before its exec.
pub(crate) fn place_fds_before_exec<const N: usize>(cmd: &mut Command, fds: [RawFd; N]) {
    // SAFETY: between fork and exec only async-signal-safe calls (prctl, fcntl, dup2) on
    // fds this process owns, and no allocation.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Out of the way first (close-on-exec copies at 1000 or above), then into
            // place: no source is overwritten before it is copied.
            let mut high = [-1; N];
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
}
