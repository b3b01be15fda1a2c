//! `isolette image`: import, pull, push, list and remove the store's images.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::Subcommand;
use isolette::Progress;

use crate::flags::open_store;
use crate::registry::{self, RegistryFlags};
use crate::report::{human, short_id};

#[derive(Subcommand)]
pub(crate) enum ImageCommand {
    /// Import an OCI image layout, an oci-archive or a `docker save` archive.
    Import {
        /// The image file or directory.
        source: PathBuf,
        /// Name it NAME[:TAG] (default: the name the image carries).
        #[arg(long)]
        name: Option<String>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Pull an image from a registry (Docker Hub by default), e.g. `python:3.12-slim`.
    Pull {
        /// [REGISTRY/]NAME[:TAG][@sha256:DIGEST]
        reference: String,
        /// Pick OS/ARCH[/VARIANT] from a multi-platform image (default: this machine's).
        #[arg(long)]
        platform: Option<String>,
        /// No progress bars; print only the name on success.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        flags: RegistryFlags,
    },
    /// Push an image from the store to a registry.
    Push {
        /// The image in the store: NAME[:TAG].
        name: String,
        /// Where to: [REGISTRY/]NAME[:TAG] (default: NAME itself).
        reference: Option<String>,
        /// No progress bars.
        #[arg(long, short)]
        quiet: bool,
        #[command(flatten)]
        flags: RegistryFlags,
    },
    /// List the images in the store.
    Ls,
    /// Remove an image (and the layers no other image uses).
    Rm {
        /// NAME[:TAG]
        name: String,
    },
    /// Remove the layers no image uses, and what interrupted imports left.
    Prune,
}

/// Runs one `image` subcommand.
pub(crate) fn image(store: Option<PathBuf>, cmd: ImageCommand) -> isolette::Result<()> {
    let store = open_store(store)?;
    match cmd {
        ImageCommand::Pull { reference, platform, quiet, flags } => {
            registry::pull(&store, &reference, platform, quiet, &flags)?;
        }
        ImageCommand::Push { name, reference, quiet, flags } => {
            registry::push(&store, &name, reference.as_deref(), quiet, &flags)?;
        }
        ImageCommand::Import { source, name, quiet } => {
            let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
                let bar = indicatif::ProgressBar::new(0);
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
                        .expect("static template")
                        .progress_chars("=> "),
                );
                bar
            });
            let mut progress = |p: Progress| {
                if let Some(bar) = &bar {
                    bar.set_length(p.total_bytes);
                    bar.set_position(p.bytes);
                    bar.set_message(format!("layer {}/{}", p.layer + 1, p.layers));
                }
            };
            let record = store.import(&source, name.as_deref(), &mut progress)?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            if quiet {
                return Ok(()); // No summary either: the exit code says it all.
            }
            println!(
                "{} {} ({} layers, {})",
                record.name,
                short_id(&record.id),
                record.layers.len(),
                human(record.size)
            );
        }
        ImageCommand::Ls => {
            let records = store.list()?;
            let w = records.iter().map(|r| r.name.len()).max().unwrap_or(0).clamp(30, 120);
            println!("{:<w$} {:<14} {:>10} {:>6}  CREATED", "NAME", "ID", "SIZE", "LAYERS");
            for r in records {
                let created = r.created.as_deref().unwrap_or("-");
                println!(
                    "{:<w$} {:<14} {:>10} {:>6}  {created}",
                    r.name,
                    short_id(&r.id),
                    human(r.size),
                    r.layers.len()
                );
            }
        }
        ImageCommand::Rm { name } => {
            let removed = store.remove(&name)?;
            println!("removed {name} and {} unused layer(s)", removed.len());
        }
        ImageCommand::Prune => {
            let removed = store.prune()?;
            println!("removed {} unused layer(s)", removed.len());
        }
    }
    Ok(())
}
