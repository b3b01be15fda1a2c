//! `isolette network create|ls|rm`: named networks, joined with `run --network NAME`; the
//! members reach each other by their `--name` (`isolette::Networks`; root only).

use clap::Subcommand;
use isolette::Networks;

#[derive(Subcommand)]
pub(crate) enum NetworkCommand {
    /// Create a network: a bridge of its own, which nothing else reaches; its members also
    /// reach out and publish ports (`-p`), unless it is internal.
    Create {
        /// A letter or digit, then letters, digits, `_`, `.`, `-`.
        name: String,
        /// Its addresses, `A.B.C.0/24` (default: a free 10.89.N.0/24).
        #[arg(long)]
        subnet: Option<String>,
        /// Its members reach only each other: no outbound access, no published ports.
        #[arg(long)]
        internal: bool,
    },
    /// List the networks and their members.
    Ls {
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Remove networks (refused while a sandbox is on one).
    Rm {
        /// The networks' names.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub(crate) fn network(cmd: NetworkCommand) -> isolette::Result<()> {
    let networks = Networks::open_default()?;
    match cmd {
        NetworkCommand::Create { name, subnet, internal } => {
            let record = networks.create(&name, subnet.as_deref(), internal)?;
            println!("{} {}", record.name, record.subnet);
        }
        NetworkCommand::Ls { json } => {
            let records = networks.list()?;
            let members = |r: &isolette::NetworkRecord| -> Vec<String> {
                r.members.iter().map(|(name, ip)| format!("{name}={ip}")).collect()
            };
            if json {
                let rows: Vec<serde_json::Value> = records
                    .iter()
                    .map(|r| serde_json::json!({ "name": r.name, "subnet": r.subnet, "created": r.created, "internal": r.internal, "members": members(r) }))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
                return Ok(());
            }
            println!("{:<24} {:<18} {:<9} MEMBERS", "NAME", "SUBNET", "INTERNAL");
            for r in &records {
                let internal = if r.internal { "yes" } else { "no" };
                println!("{:<24} {:<18} {:<9} {}", r.name, r.subnet, internal, members(r).join(", "));
            }
        }
        NetworkCommand::Rm { names } => {
            for name in names {
                networks.remove(&name)?;
                println!("{name}");
            }
        }
    }
    Ok(())
}
