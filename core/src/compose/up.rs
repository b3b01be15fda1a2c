//! What bringing a project up and down is made of, for both ways of holding its services:
//! the CLI's detached supervisors and the library's [`RunningProject`](super::RunningProject).
//! Which services an `up` starts ([`Project::wanted`]), their images, built where asked for
//! or missing ([`Project::images`]), the networks and volumes they need
//! ([`Project::make_networks`], [`Project::make_volumes`], and their removal), and each
//! service resolved into the sandbox it runs in ([`Project::spec`], a [`ServiceSpec`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Healthcheck, LABEL_CONFIG_HASH, LABEL_PROJECT, LABEL_SERVICE, MountSource, Project, Restart};
use super::{SERVICE_NOFILE, SERVICE_PIDS};
use crate::build::{BuildEvent, BuildOptions};
use crate::cancel::Canceller;
use crate::error::{Error, Result};
use crate::network::{Network, Networks, Publish};
use crate::store::Store;
use crate::{Image, SandboxBuilder};

/// A service's image, as an `up` found or built it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceImage {
    /// The store name, or an unpacked directory (`./dir`, `/dir`, as `run --image` takes
    /// one) made absolute.
    pub reference: String,
    /// The image's id in the store, or `dir:<path>` for a directory: what the config hash
    /// folds in.
    pub id: String,
    /// The healthcheck that runs: the service's own, else its image's.
    pub healthcheck: Option<Healthcheck>,
    /// Whether `reference` is a directory rather than a store name.
    pub is_dir: bool,
}

/// One mount of a service's sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecMount {
    /// A volume of the store, by its name.
    Volume {
        /// The volume's name in the store (`<project>_<key>`).
        name: String,
        /// Where it appears.
        target: String,
        /// Whether the program may write to it.
        writable: bool,
    },
    /// A host path (made a directory when missing, as Docker does).
    Bind {
        /// The host path, absolute.
        source: PathBuf,
        /// Where it appears.
        target: String,
        /// Whether the program may write to it.
        writable: bool,
    },
}

/// A service resolved into the sandbox it runs in: every default and rule applied, so
/// that the CLI (as `run -d` flags) and the library (as a [`SandboxBuilder`]) only convert.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceSpec {
    /// The sandbox's name (`<project>-<service>-1`).
    pub name: String,
    /// Its hostname on the network: `hostname`, else the service's name, by which the
    /// others reach it.
    pub hostname: String,
    /// Compose's labels: project, service, config hash.
    pub labels: Vec<(String, String)>,
    /// The image.
    pub image: ServiceImage,
    /// The most processes (`pids_limit`, else [`SERVICE_PIDS`]).
    pub pids: u64,
    /// The most open files: [`SERVICE_NOFILE`], within what this process may give.
    pub nofile: u64,
    /// `mem_limit`.
    pub memory: Option<u64>,
    /// `cpus`.
    pub cpus: Option<f64>,
    /// The named network it joins (its host name).
    pub network: String,
    /// `ports`.
    pub ports: Vec<Publish>,
    /// `volumes`.
    pub mounts: Vec<SpecMount>,
    /// `environment` (with `env_file`).
    pub env: Vec<(String, String)>,
    /// `working_dir`.
    pub workdir: Option<String>,
    /// `user`, as numbers.
    pub user: Option<(u32, u32)>,
    /// `restart`.
    pub restart: Restart,
    /// The healthcheck that runs, if any.
    pub healthcheck: Option<Healthcheck>,
    /// Whether the service's `entrypoint` replaces the image's (`argv` then holds it and
    /// the command): the image's entrypoint is dropped.
    pub replaces_entrypoint: bool,
    /// The command (with the entrypoint when `replaces_entrypoint`); empty: the image's.
    pub argv: Vec<String>,
    /// The time between SIGTERM and the kill when it is stopped (`stop_grace_period`,
    /// else 10 s).
    pub stop_grace: std::time::Duration,
}

impl Project {
    /// The services an `up` of `services` starts (every one when empty), with what they
    /// depend on, in start order. A name that is not a service is an error naming the
    /// project's services.
    pub fn wanted(&self, services: &[String]) -> Result<Vec<String>> {
        self.check()?;
        for n in services {
            if !self.services.contains_key(n) {
                return Err(Error::config(format!(
                    "no service `{n}` in project {} (services: {})",
                    self.name,
                    self.services.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        let order = self.order()?;
        if services.is_empty() {
            return Ok(order);
        }
        let mut wanted: Vec<String> = services.to_vec();
        let mut i = 0;
        while i < wanted.len() {
            for dep in self.services[&wanted[i]].depends_on.keys() {
                if !wanted.contains(dep) {
                    wanted.push(dep.clone());
                }
            }
            i += 1;
        }
        Ok(order.into_iter().filter(|s| wanted.contains(s)).collect())
    }

    /// The images of `services`: a directory as it is, a service with `build` built when
    /// `build` is set or its image is missing (`progress` hears each step's line), and any
    /// other looked up in `store`. A missing image says how to get it.
    pub fn images(
        &self,
        store: &Store,
        services: &[String],
        build: bool,
        canceller: Option<&Canceller>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<BTreeMap<String, ServiceImage>> {
        let mut images = BTreeMap::new();
        for name in services {
            if let Some(c) = canceller
                && c.is_cancelled()
            {
                return Err(Error::config("interrupted: nothing was started"));
            }
            let service = self
                .services
                .get(name)
                .ok_or_else(|| Error::config(format!("no service `{name}` in project {}", self.name)))?;
            let reference = self.image_name(name);
            if service.build.is_none() && reference.starts_with(['.', '/']) {
                let dir = self.dir.join(&reference);
                if !dir.is_dir() {
                    return Err(Error::config(format!(
                        "service `{name}`: image directory {} does not exist",
                        dir.display()
                    )));
                }
                let dir = dir.to_string_lossy().into_owned();
                let image = ServiceImage {
                    id: format!("dir:{dir}"),
                    reference: dir,
                    healthcheck: service.healthcheck_with(None),
                    is_dir: true,
                };
                images.insert(name.clone(), image);
                continue;
            }
            let present = store.record(&reference).ok();
            let record = match (&service.build, present) {
                (Some(b), present) if build || present.is_none() => {
                    progress(&format!(" Service {name}  Building"));
                    let options = BuildOptions {
                        dockerfile: Some(b.context.join(&b.dockerfile)),
                        tags: vec![reference.clone()],
                        build_args: b.args.clone().into_iter().collect(),
                        target: b.target.clone(),
                        canceller: canceller.cloned(),
                        ..Default::default()
                    };
                    let mut steps = |event: &BuildEvent| {
                        if let BuildEvent::Step(step) = event {
                            progress(&step.to_line());
                        }
                    };
                    store.build(&b.context, &options, &mut steps)?.image
                }
                (_, Some(record)) => record,
                (_, None) => {
                    return Err(Error::config(format!(
                        "service `{name}`: image `{reference}` is not in the store; pull it (`isolette image pull \
                         {reference}`), or give the service a `build`"
                    )));
                }
            };
            let image = ServiceImage {
                healthcheck: service.healthcheck_with(record.config.healthcheck.as_ref()),
                reference,
                id: record.id,
                is_dir: false,
            };
            images.insert(name.clone(), image);
        }
        Ok(images)
    }

    /// Makes the networks `services` join that do not exist yet, naming each in `made` as
    /// it is made (so that a caller can take them back); an external one that does not
    /// exist is an error saying how to make it.
    pub fn make_networks(
        &self,
        networks: &Networks,
        services: &[String],
        made: &mut Vec<String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let existing: Vec<String> = networks.list()?.into_iter().map(|r| r.name).collect();
        let needed: Vec<&String> =
            services.iter().filter_map(|s| self.services.get(s)).flat_map(|s| &s.networks).collect();
        for (key, def) in &self.networks {
            if !needed.contains(&key) || existing.contains(&def.name) {
                continue;
            }
            if def.external {
                return Err(Error::config(format!(
                    "network {} is declared as external, but could not be found; make it with `isolette network \
                     create {}`",
                    def.name, def.name
                )));
            }
            networks.create(&def.name, None, def.internal)?;
            made.push(def.name.clone());
            progress(&format!(" Network {}  Created", def.name));
        }
        Ok(())
    }

    /// Makes the project's volumes that do not exist yet; an external one that does not
    /// exist is an error saying how to make it.
    pub fn make_volumes(&self, store: &Store, progress: &mut dyn FnMut(&str)) -> Result<()> {
        for def in self.volumes.values() {
            if store.volume_record(&def.name).is_ok() {
                continue;
            }
            if def.external {
                return Err(Error::config(format!(
                    "volume {} is declared as external, but could not be found; make it with `isolette volume create \
                     {}`",
                    def.name, def.name
                )));
            }
            store.create_volume(&def.name, None)?;
            progress(&format!(" Volume {}  Created", def.name));
        }
        Ok(())
    }

    /// Removes the project's networks that exist, never an external one.
    pub fn remove_networks(&self, networks: &Networks, progress: &mut dyn FnMut(&str)) -> Result<()> {
        let existing: Vec<String> = networks.list()?.into_iter().map(|r| r.name).collect();
        for def in self.networks.values().filter(|d| !d.external && existing.contains(&d.name)) {
            networks.remove(&def.name)?;
            progress(&format!(" Network {}  Removed", def.name));
        }
        Ok(())
    }

    /// Removes the project's volumes that exist (`down -v`), never an external one.
    pub fn remove_volumes(&self, store: &Store, progress: &mut dyn FnMut(&str)) -> Result<()> {
        for def in self.volumes.values().filter(|d| !d.external) {
            if store.volume_record(&def.name).is_ok() {
                store.remove_volume(&def.name)?;
                progress(&format!(" Volume {}  Removed", def.name));
            }
        }
        Ok(())
    }

    /// Service `name` resolved into the sandbox it runs in, with `image` (from
    /// [`Project::images`]). A bind mount's missing source is made a directory, as Docker
    /// makes it.
    pub fn spec(&self, name: &str, image: &ServiceImage) -> Result<ServiceSpec> {
        self.check()?;
        let service = self
            .services
            .get(name)
            .ok_or_else(|| Error::config(format!("no service `{name}` in project {}", self.name)))?;
        let hash = self.config_hash(name, &image.id);
        let labels = [(LABEL_PROJECT, self.name.as_str()), (LABEL_SERVICE, name), (LABEL_CONFIG_HASH, &hash)]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .to_vec();
        // As many open files as a server wants, within what this process may give.
        let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(1024, |(_, h)| h);
        let mut mounts = Vec::new();
        for m in &service.volumes {
            let writable = !m.read_only;
            let target = m.target.clone();
            mounts.push(match &m.source {
                MountSource::Volume(v) => SpecMount::Volume { name: self.volumes[v].name.clone(), target, writable },
                MountSource::Bind(path) => {
                    if !path.exists() {
                        std::fs::create_dir_all(path).map_err(|e| Error::io("create directory", path, e))?;
                    }
                    SpecMount::Bind { source: path.clone(), target, writable }
                }
            });
        }
        let user = service.user.as_deref().map(crate::units::parse_user).transpose()?;
        // An entrypoint given replaces the image's, and its command too (as in Compose).
        let (replaces_entrypoint, argv) = match (&service.entrypoint, &service.command) {
            (Some(e), c) => (true, e.iter().chain(c.iter().flatten()).cloned().collect()),
            (None, Some(c)) => (false, c.clone()),
            (None, None) => (false, Vec::new()),
        };
        Ok(ServiceSpec {
            name: self.sandbox_name(name),
            hostname: service.hostname.clone().unwrap_or_else(|| name.to_string()),
            labels,
            image: image.clone(),
            pids: service.pids_limit.unwrap_or(SERVICE_PIDS),
            nofile: hard.min(SERVICE_NOFILE),
            memory: service.mem_limit,
            cpus: service.cpus,
            network: self.networks[&service.networks[0]].name.clone(),
            ports: service.ports.clone(),
            mounts,
            env: service.environment.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            workdir: service.working_dir.clone(),
            user,
            restart: service.restart,
            healthcheck: image.healthcheck.clone(),
            replaces_entrypoint,
            argv,
            stop_grace: service.stop_grace_period.unwrap_or(std::time::Duration::from_secs(10)),
        })
    }
}

impl ServiceSpec {
    /// The sandbox, as a builder: a server's limits (no wall-clock or output limit a judge
    /// would set), the project network, its ports and mounts. `store` holds the image and
    /// the volumes.
    pub fn builder(&self, store: &Store, networks: &Networks) -> Result<SandboxBuilder> {
        let image = match self.image.is_dir {
            true => Image::open(&self.image.reference)?,
            false => store.image(&self.image.reference)?,
        };
        let mut b = self.base(store, &image)?.hostname(self.hostname.clone());
        b = b.network(Network::Named(networks.network(&self.network)?));
        for p in &self.ports {
            b = b.publish(*p);
        }
        Ok(b)
    }

    /// The sandbox of this service's healthcheck: the service's own, sharing `network`
    /// instead of joining one, nothing published, the image's entrypoint dropped, held to
    /// the check's timeout.
    pub fn health_builder(
        &self,
        store: &Store,
        network: crate::SharedNetwork,
        check: &Healthcheck,
    ) -> Result<SandboxBuilder> {
        let image = match self.image.is_dir {
            true => Image::open(&self.image.reference)?,
            false => store.image(&self.image.reference)?,
        };
        Ok(self
            .base(store, &image)?
            .network(Network::Shared(network))
            .entrypoint(Vec::<String>::new())
            .wall_time(check.timeout)
            .output_limit(4096))
    }

    /// What the sandbox and its healthcheck's sandbox share.
    fn base(&self, store: &Store, image: &Image) -> Result<SandboxBuilder> {
        let mut b = crate::Sandbox::builder(image)
            .wall_time(crate::NO_WALL_TIME)
            .output_limit(1 << 40)
            .pids(self.pids)
            .nofile(self.nofile);
        if let Some(m) = self.memory {
            b = b.memory(m);
        }
        if let Some(c) = self.cpus {
            b = b.cpus(c);
        }
        for m in &self.mounts {
            b = match m {
                SpecMount::Volume { name, target, writable } => b.volume(&store.volume(name)?, target, *writable),
                SpecMount::Bind { source, target, writable } => {
                    b.mount(crate::MountSpec { source: source.clone(), target: target.into(), writable: *writable })
                }
            };
        }
        for (k, v) in &self.env {
            b = b.env(k, v);
        }
        if let Some(w) = &self.workdir {
            b = b.workdir(w);
        }
        if let Some((uid, gid)) = self.user {
            b = b.user(uid, gid);
        }
        if self.replaces_entrypoint {
            b = b.entrypoint(Vec::<String>::new());
        }
        Ok(b)
    }
}
