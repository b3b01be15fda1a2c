//! The per-process runtime: what belongs to the process that uses the library rather than
//! to one run, and is made afresh in the child of a `fork`.
//!
//! - `forked.rs`: [`ProcessLocal`] values and [`Owner`] marks, which a child of `fork`
//!   neither shares nor drops; the `pthread_atfork` handlers.
//! - `held.rs`: namespace fds held past their run ([`Held`]), which a child of `fork`
//!   closes at once.
//! - `background.rs`: the background thread, its queue (directories to remove, work other
//!   modules hand it), and the flush at [`cleanup`] and at exit.
//! - `spares.rs`: things made ahead of a caller's next run ([`Spares`]), cleared by a flush.
//!
//! Modules above register with it (a flush clears every [`Spares`] that has been used); it
//! imports nothing above the system calls.
//! No `unsafe`: its one pointer trick, a value leaked per process and handed out as
//! `&'static`, is `sys::LeakedSlot`.

mod background;
mod forked;
mod held;
mod spares;

pub use background::cleanup;
pub(crate) use background::{release_later, remove_dirs, running, try_remove};
pub(crate) use forked::{Owner, ProcessLocal, owner_tag, tag_alive};
pub(crate) use held::{Held, opening};
pub(crate) use spares::Spares;
