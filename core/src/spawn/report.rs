//! The fixed-size messages the sandbox's init sends to the supervisor.
//!
//! One `write(2)` of [`SIZE`] bytes each (below `PIPE_BUF`, so never torn). The child only
//! builds and writes them; the parent decodes them.

use std::os::fd::RawFd;

use nix::errno::Errno;

use super::sys;
use crate::error::Step;

/// Bytes in one message.
pub(crate) const SIZE: usize = 8;

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
    /// The program's `execve` succeeded.
    Started,
    /// The program ended with this raw wait status; the init exits next.
    Exited(i32),
}

impl Message {
    pub(crate) fn to_bytes(self) -> [u8; SIZE] {
        let (kind, step, index, value) = match self {
            Message::Failed(f) => (FAILED, f.step as u8, f.index, f.errno as i32),
            Message::Started => (STARTED, 0, 0, 0),
            Message::Exited(status) => (EXITED, 0, 0, status),
        };
        let [i0, i1] = index.to_ne_bytes();
        let [v0, v1, v2, v3] = value.to_ne_bytes();
        [kind, step, i0, i1, v0, v1, v2, v3]
    }

    pub(crate) fn from_bytes(b: [u8; SIZE]) -> Option<Message> {
        let index = u16::from_ne_bytes([b[2], b[3]]);
        let value = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        match b[0] {
            FAILED => {
                Some(Message::Failed(Failure { step: Step::from_u8(b[1])?, index, errno: Errno::from_raw(value) }))
            }
            STARTED => Some(Message::Started),
            EXITED => Some(Message::Exited(value)),
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
            Message::Started,
            Message::Exited(0x0600),
        ] {
            assert_eq!(Message::from_bytes(m.to_bytes()), Some(m));
        }
        assert_eq!(Message::from_bytes([9; SIZE]), None);
    }
}
