//! `isolette build`, images from a Dockerfile. What is here reads the recipe and its
//! context, and what a build is asked and tells ([`BuildOptions`], [`BuildEvent`]), and is
//! pure but for the file steps' own mounts (`tree`): [`Recipe`] (a Dockerfile's stages and steps, checked, each with
//! its line), Docker's word rules ([`words`]: splitting, quotes, escapes, `$VAR`
//! expansion), [`IgnoreRules`] (`.dockerignore`), and [`Context`] (what a `COPY` selects,
//! and the digest that keys its cache entry), and [`write_layer`] (a step's writable layer
//! as an OCI layer tar, the same bytes for the same tree). The steps run in sandboxes and
//! their layers go to the store: `Store::build`, the API layer's build engine.

mod context;
mod ignore;
mod layer;
mod options;
mod recipe;
pub(crate) mod tree;
pub mod words;

pub use context::{Context, Entry, Selection};
pub use ignore::IgnoreRules;
pub(crate) use ignore::clean_parts;
pub use layer::{LayerSummary, write_layer};
pub use options::{BuildEvent, BuildNetwork, BuildOptions, BuildResult, StepReport, Stream};
pub use recipe::{ArgDecl, Command, HereDoc, Instruction, Recipe, RunNetwork, Source, Stage, Step, Transfer};
