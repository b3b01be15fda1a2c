//! The fixed-size messages the sandbox sends to the supervisor.
//!
//! One `write(2)` of [`SIZE`] bytes each (below `PIPE_BUF`, so never torn), in the layout of
//! `proto.rs`, which the init binary writes too. The sandbox's first process sends a
//! setup failure; the init sends the rest. The parent decodes them.

use std::os::fd::RawFd;

use nix::errno::Errno;

use crate::error::Step;
pub(crate) use crate::proto::SIZE;
use crate::proto::{self, EXITED, FAILED, STARTED};
use crate::sys;

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
        match self {
            Message::Failed(f) => proto::encode(FAILED, f.step as u8, f.index, f.errno as i32, 0, 0),
            Message::Started(t, cpu) => proto::encode(STARTED, 0, 0, 0, t, cpu),
            Message::Exited(status, t) => proto::encode(EXITED, 0, 0, status, t, 0),
        }
    }

    pub(crate) fn from_bytes(b: [u8; SIZE]) -> Option<Message> {
        let (kind, step, index, value, time, extra) = proto::decode(&b);
        match kind {
            FAILED => {
                Some(Message::Failed(Failure { step: Step::from_u8(step)?, index, errno: Errno::from_raw(value) }))
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

    #[test]
    fn the_init_numbers_steps_as_the_library_does() {
        use proto::step;
        let pairs = [
            (step::SYNC, Step::Sync),
            (step::CLOSE_FDS, Step::CloseFds),
            (step::RLIMITS, Step::Rlimits),
            (step::FORK_PROGRAM, Step::ForkProgram),
            (step::SETSID, Step::Setsid),
            (step::STDIO, Step::Stdio),
            (step::WORKDIR, Step::Workdir),
            (step::SET_IDS, Step::SetIds),
            (step::DROP_CAPS, Step::DropCaps),
            (step::NO_NEW_PRIVS, Step::NoNewPrivs),
            (step::SECCOMP, Step::Seccomp),
            (step::EXEC, Step::Exec),
        ];
        for (number, step) in pairs {
            assert_eq!(Step::from_u8(number), Some(step), "{step}");
        }
    }
}
