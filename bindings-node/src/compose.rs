//! `Project` and `RunningProject`: core's Compose project (`isolette::compose`), loaded and
//! brought up in this process. Bringing up and taking down happen on threads of Tokio's
//! blocking pool, never on the event loop; statuses are core's JSON, which `index.js`
//! parses.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use isolette::compose::{Condition, LoadOptions, UpOptions};
use napi::bindgen_prelude::Buffer;
use napi::{Error, Result};
use napi_derive::napi;

use crate::{config, to_js};

/// How to find a project, as `index.js` normalizes it.
#[napi(object)]
pub struct ProjectLoadOptions {
    pub dir: Option<String>,
    pub files: Option<Vec<String>>,
    pub project_name: Option<String>,
    pub environment: Option<HashMap<String, String>>,
}

/// A Compose project: its files found, merged and interpolated, its services checked.
#[napi]
pub struct Project {
    inner: isolette::compose::Project,
}

#[napi]
impl Project {
    /// Finds and reads a project as `docker compose` does.
    #[napi(factory)]
    pub fn load(options: ProjectLoadOptions) -> Result<Project> {
        let mut o = LoadOptions::new();
        if let Some(d) = options.dir {
            o = o.working_dir(d);
        }
        for f in options.files.unwrap_or_default() {
            o = o.file(f);
        }
        if let Some(n) = options.project_name {
            o = o.project_name(n);
        }
        if let Some(vars) = options.environment {
            o = o.environment(vars.into_iter().collect());
        }
        isolette::compose::Project::load(&o).map(|inner| Project { inner }).map_err(to_js)
    }

    /// The project's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.name.clone()
    }

    /// The services, in start order.
    #[napi(getter)]
    pub fn services(&self) -> Result<Vec<String>> {
        self.inner.order().map_err(to_js)
    }

    /// What was read but not carried out.
    #[napi(getter)]
    pub fn warnings(&self) -> Vec<String> {
        self.inner.warnings.clone()
    }

    /// The project as `docker compose config --format json` shows it (JSON text).
    #[napi]
    pub fn config_json(&self) -> Result<String> {
        serde_json::to_string(&self.inner).map_err(|e| config(e.to_string()))
    }

    /// The project as `docker compose config` prints it: YAML.
    #[napi]
    pub fn to_yaml(&self) -> String {
        self.inner.to_yaml()
    }

    /// Starts bringing the project up on a thread of Tokio's blocking pool; its progress
    /// lines queue up for `Up.lines`.
    #[napi]
    pub fn up_start(&self, options: UpOptionsJs) -> Result<Up> {
        let store = isolette::Store::open(options.store.map_or_else(isolette::Store::default_dir, Into::into))
            .map_err(to_js)?;
        let networks = match options.networks {
            Some(d) => isolette::Networks::open(d),
            None => isolette::Networks::open_default(),
        }
        .map_err(to_js)?;
        let canceller = isolette::Canceller::new().map_err(to_js)?;
        let mut o = UpOptions::default();
        o.services = options.services.unwrap_or_default();
        o.build = options.build.unwrap_or(false);
        o.wait = options.wait.unwrap_or(false);
        o.canceller = Some(canceller.clone());
        let project = self.inner.clone();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let queue = Arc::clone(&lines);
        let (tell, result) = tokio::sync::oneshot::channel();
        napi::bindgen_prelude::spawn_blocking(move || {
            let mut say = |line: &str| queue.lock().unwrap_or_else(|e| e.into_inner()).push(line.to_string());
            let up = project.up(&store, &networks, &o, &mut say);
            // Not sent (the caller is gone): dropping it takes the project down here.
            let _ = tell.send(up);
        });
        Ok(Up { lines, result: Mutex::new(Some(result)), canceller })
    }
}

/// `project.up`'s options as `index.js` normalizes them.
#[napi(object)]
pub struct UpOptionsJs {
    pub store: Option<String>,
    pub networks: Option<String>,
    pub services: Option<Vec<String>>,
    pub build: Option<bool>,
    pub wait: Option<bool>,
}

/// An `up` under way: its lines so far, its result to await, and its cancel.
#[napi]
pub struct Up {
    lines: Arc<Mutex<Vec<String>>>,
    result: Mutex<Option<tokio::sync::oneshot::Receiver<isolette::Result<isolette::compose::RunningProject>>>>,
    canceller: isolette::Canceller,
}

#[napi]
impl Up {
    /// The progress lines since the last call.
    #[napi]
    pub fn lines(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Stops the `up`: what it started is stopped again, and the result is an error.
    #[napi]
    pub fn cancel(&self) {
        self.canceller.cancel();
    }

    /// The running project, once.
    #[napi]
    pub async fn result(&self) -> Result<RunningProject> {
        let Some(result) = self.result.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Err(config("this up's result was already taken"));
        };
        match result.await {
            Ok(up) => up.map(|r| RunningProject { inner: Arc::new(r) }).map_err(to_js),
            Err(_) => Err(Error::from_reason("the up's thread ended without a result")),
        }
    }
}

/// A project brought up in this process.
#[napi]
pub struct RunningProject {
    inner: Arc<isolette::compose::RunningProject>,
}

/// One service's output so far.
#[napi(object)]
pub struct ServiceLogs {
    pub stdout: Buffer,
    pub stderr: Buffer,
}

#[napi]
impl RunningProject {
    /// The project's name.
    #[napi(getter)]
    pub fn name(&self) -> String {
        self.inner.project().name.clone()
    }

    /// Each service started, in start order, as core's JSON (text).
    #[napi]
    pub fn ps_json(&self) -> String {
        serde_json::Value::Array(self.inner.ps().iter().map(|s| s.to_json()).collect()).to_string()
    }

    /// Service `service`'s output so far, across restarts.
    #[napi]
    pub fn logs(&self, service: String) -> Result<ServiceLogs> {
        let (out, err, _) = self.inner.logs(&service).map_err(to_js)?;
        Ok(ServiceLogs { stdout: out.into(), stderr: err.into() })
    }

    /// Waits (off the event loop) until `service` has reached `condition`, in Compose's
    /// words (`service_healthy`, `service_started`, `service_completed_successfully`).
    #[napi]
    pub async fn wait(&self, service: String, condition: String) -> Result<()> {
        let condition = Condition::parse(&condition).map_err(to_js)?;
        let inner = Arc::clone(&self.inner);
        napi::bindgen_prelude::spawn_blocking(move || inner.wait_for(&service, condition, None))
            .await
            .map_err(|e| Error::from_reason(e.to_string()))?
            .map_err(to_js)
    }

    /// Stops the services and removes the project's networks (and with `volumes` its
    /// named volumes), off the event loop.
    #[napi]
    pub async fn down(&self, volumes: bool) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        napi::bindgen_prelude::spawn_blocking(move || inner.down(volumes))
            .await
            .map_err(|e| Error::from_reason(e.to_string()))?
            .map_err(to_js)
    }

    /// `down` on this thread, for the process's `exit` event, when nothing can be awaited.
    #[napi]
    pub fn down_now(&self) -> Result<()> {
        self.inner.down(false).map_err(to_js)
    }
}
