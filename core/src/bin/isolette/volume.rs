//! `isolette volume create|ls|inspect|rm`: named volumes of the store, mounted with
//! `--mount NAME:/dir[:rw]` (the files live in the store: `Store::create_volume`).

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum VolumeCommand {
    /// Create an empty volume.
    Create {
        /// A letter or digit, then letters, digits, `_`, `.`, `-`.
        name: String,
        /// Cap its size, e.g. `1G` (needs root: a filesystem of its own).
        #[arg(long, value_parser = crate::flags::size)]
        size: Option<u64>,
    },
    /// List the volumes.
    Ls,
    /// Show one volume as JSON (its directory, size cap and usage).
    Inspect {
        /// The volume's name.
        name: String,
    },
    /// Remove volumes and their files (refused while a run uses one).
    Rm {
        /// The volumes' names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub(crate) fn volume(store: Option<PathBuf>, cmd: VolumeCommand) -> isolette::Result<()> {
    let store = crate::flags::open_store(store)?;
    match cmd {
        VolumeCommand::Create { name, size } => {
            store.create_volume(&name, size)?;
            println!("{name}");
        }
        VolumeCommand::Ls => {
            println!("{:<30} {:>10} {:>10}  CREATED", "NAME", "SIZE CAP", "USED");
            for v in store.volumes()? {
                let used = store.volume_usage(&v.name).unwrap_or(0);
                let cap = v.size_cap.map_or_else(|| "-".to_string(), crate::report::human);
                let ago = crate::report::ago(isolette::names::now().saturating_sub(v.created));
                println!("{:<30} {:>10} {:>10}  {ago} ago", v.name, cap, crate::report::human(used));
            }
        }
        VolumeCommand::Inspect { name } => {
            let v = store.volume_record(&name)?;
            let path = store.volume(&name)?.path().to_path_buf();
            let value = serde_json::json!({
                "name": v.name,
                "path": path.to_string_lossy(),
                "created": v.created,
                "size_cap": v.size_cap,
                "used": store.volume_usage(&name)?,
            });
            println!("{value}");
        }
        VolumeCommand::Rm { names } => {
            for name in names {
                store.remove_volume(&name)?;
                println!("{name}");
            }
        }
    }
    Ok(())
}
