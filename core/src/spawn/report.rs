//! The fixed-size messages the sandbox's init sends to the supervisor.
//!
//! One `write(2)` of [`SIZE`] bytes each (below `PIPE_BUF`, so never torn). The child only
//! builds and writes them; the parent decodes them.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::sys;
use crate::error::Step;

/// Bytes in one message.
pub(crate) const SIZE: usize = 24;

const FAILED: u8 = 1;
const STARTED: u8 = 2;
const EXITED: u8 = 3;

/// A setup step failed inside the sandbox: which one, on which op or exec candidate, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Failure {
    pub step: Step,
    /// The index of the mount op or exec candidate the step worked on; 0 otherwise.
    pub index: u16,
    pub errno: Errno,
}

impl Failure {
    pub(crate) fn new(step: Step, errno: Errno) -> Failure {
        Failure { step, index: 0, errno }
    }
}

/// What the parent hears from the init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Message {
    /// Setup failed; the init exits next.
    Failed(Failure),
    /// The program's `execve` succeeded, at this `CLOCK_MONOTONIC` time (ns), after the
    /// init had used this much cpu time (ns) for the setup, which the cgroup also counts.
    Started(u64, u64),
    /// The program ended with this raw wait status, at this `CLOCK_MONOTONIC` time (ns);
    /// the init exits next. The init's clock readings make the wall time exact however
    /// late the supervisor wakes up to read them.
    Exited(i32, u64),
}

impl Message {
    pub(crate) fn to_bytes(self) -> [u8; SIZE] {
        let (kind, step, index, value, time, extra) = match self {
            Message::Failed(f) => (FAILED, f.step as u8, f.index, f.errno as i32, 0, 0),
            Message::Started(t, cpu) => (STARTED, 0, 0, 0, t, cpu),
            Message::Exited(status, t) => (EXITED, 0, 0, status, t, 0),
        };
        let mut b = [0u8; SIZE];
        b[0] = kind;
        b[1] = step;
        b[2..4].copy_from_slice(&index.to_ne_bytes());
        b[4..8].copy_from_slice(&value.to_ne_bytes());
        b[8..16].copy_from_slice(&time.to_ne_bytes());
        b[16..24].copy_from_slice(&extra.to_ne_bytes());
        b
    }

    pub(crate) fn from_bytes(b: [u8; SIZE]) -> Option<Message> {
        let index = u16::from_ne_bytes([b[2], b[3]]);
        let value = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        let word = |at: usize| {
            u64::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5], b[at + 6], b[at + 7]])
        };
        let (time, extra) = (word(8), word(16));
        match b[0] {
            FAILED => {
                Some(Message::Failed(Failure { step: Step::from_u8(b[1])?, index, errno: Errno::from_raw(value) }))
            }
            STARTED => Some(Message::Started(time, extra)),
            EXITED => Some(Message::Exited(value, time)),
            _ => None,
        }
    }

    /// Sends the message; a failure to send is reported by the pipe's EOF instead.
    pub(crate) fn send(self, fd: RawFd) {
        let _ = sys::write_all(fd, &self.to_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for m in [
            Message::Failed(Failure { step: Step::Overlay, index: 7, errno: Errno::EINVAL }),
            Message::Started(123_456_789, 42),
            Message::Exited(0x0600, u64::MAX),
        ] {
            assert_eq!(Message::from_bytes(m.to_bytes()), Some(m));
        }
        assert_eq!(Message::from_bytes([9; SIZE]), None);
    }
}
