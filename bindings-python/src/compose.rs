//! `Project` and `RunningProject`: core's Compose project, loaded and brought up in this
//! process (`isolette::compose`). Statuses are core's JSON as dicts; the GIL is released
//! while a project comes up or goes down, and Ctrl-C during `up` stops what it started.

use std::collections::BTreeMap;

use isolette::compose::{Condition, LoadOptions, Project, RunningProject, UpOptions};
use isolette::{Networks, Store};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::convert::os_string;
use crate::errors::{config, to_py};
use crate::store::{PyStore, json_value};

/// A Compose project: its files found, merged and interpolated, its services checked.
#[pyclass(name = "Project", module = "isolette", frozen)]
pub(crate) struct PyProject(Project);

#[pymethods]
impl PyProject {
    /// Finds and reads a project as `docker compose` does: `files` (merged in order), else
    /// `compose.yaml` and its other names in `dir` (default: the working directory) or
    /// above; the name from `project_name`, `COMPOSE_PROJECT_NAME`, the file, the
    /// directory; variables from `environment` (default: this process's) over `.env`.
    #[staticmethod]
    #[pyo3(signature = (dir=None, files=None, project_name=None, environment=None))]
    fn load(
        py: Python<'_>,
        dir: Option<&Bound<'_, PyAny>>,
        files: Option<&Bound<'_, PyAny>>,
        project_name: Option<String>,
        environment: Option<BTreeMap<String, String>>,
    ) -> PyResult<PyProject> {
        let mut options = LoadOptions::new();
        if let Some(d) = dir {
            options = options.working_dir(os_string(d)?);
        }
        if let Some(files) = files {
            for f in files.try_iter()? {
                options = options.file(os_string(&f?)?);
            }
        }
        if let Some(n) = project_name {
            options = options.project_name(n);
        }
        if let Some(vars) = environment {
            options = options.environment(vars);
        }
        py.detach(|| Project::load(&options)).map(PyProject).map_err(to_py)
    }

    /// The project's name.
    #[getter]
    fn name(&self) -> String {
        self.0.name.clone()
    }

    /// The services, in start order.
    #[getter]
    fn services(&self) -> PyResult<Vec<String>> {
        self.0.order().map_err(to_py)
    }

    /// What was read but not carried out (unknown keys, unset variables).
    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.0.warnings.clone()
    }

    /// The project as `docker compose config --format json` shows it, as a dict.
    fn config(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let value = serde_json::to_value(&self.0).map_err(|e| config(e.to_string()))?;
        json_value(py, &value)
    }

    /// The project as `docker compose config` prints it: YAML.
    fn to_yaml(&self) -> String {
        self.0.to_yaml()
    }

    /// Brings the project up in this process and returns it running: images from `store`
    /// (a `Store` or its directory; default the default store), built where asked for
    /// (`build`) or missing; networks in `networks` (a directory; default
    /// `$ISOLETTE_NETWORKS` or `/run/isolette/networks`); only `services` and their
    /// dependencies when given; with `wait`, until every service runs and is healthy.
    /// `progress` gets Compose's lines. Ctrl-C stops what was started.
    #[pyo3(signature = (store=None, networks=None, services=None, build=false, wait=false, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn up(
        &self,
        py: Python<'_>,
        store: Option<&Bound<'_, PyAny>>,
        networks: Option<&Bound<'_, PyAny>>,
        services: Option<Vec<String>>,
        build: bool,
        wait: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyRunningProject>> {
        let store = match store {
            None => Store::open(Store::default_dir()).map_err(to_py)?,
            Some(s) => match s.cast::<PyStore>() {
                Ok(s) => s.get().0.clone(),
                Err(_) => Store::open(os_string(s)?).map_err(to_py)?,
            },
        };
        let networks = match networks {
            None => Networks::open_default(),
            Some(d) => Networks::open(os_string(d)?),
        }
        .map_err(to_py)?;
        let canceller = isolette::Canceller::new().map_err(to_py)?;
        let mut options = UpOptions::default();
        options.services = services.unwrap_or_default();
        options.build = build;
        options.wait = wait;
        options.canceller = Some(canceller.clone());
        let interrupt =
            crate::interrupt::install(std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&canceller)));
        let mut say = |line: &str| {
            if let Some(p) = &progress {
                Python::attach(|py| {
                    if let Err(e) = p.call1(py, (line,)) {
                        e.print(py);
                    }
                });
            }
        };
        let result = py.detach(|| self.0.up(&store, &networks, &options, &mut say));
        drop(interrupt);
        py.check_signals()?;
        let running = Py::new(py, PyRunningProject(result.map_err(to_py)?))?;
        py.import("isolette._types")?.getattr("LIVE_PROJECTS")?.call_method1("add", (&running,))?;
        Ok(running)
    }

    fn __repr__(&self) -> String {
        format!("Project({:?})", self.0.name)
    }
}

/// A project brought up in this process; `down()`, leaving a `with` block, being collected
/// or the interpreter's exit (`atexit`, in `__init__.py`) stops its services and removes
/// the project's networks.
#[pyclass(name = "RunningProject", module = "isolette", frozen, weakref)]
pub(crate) struct PyRunningProject(RunningProject);

#[pymethods]
impl PyRunningProject {
    /// The project's name.
    #[getter]
    fn name(&self) -> String {
        self.0.project().name.clone()
    }

    /// Each service started, in start order: `service`, `name`, `state` (`running`,
    /// `restarting`, `exited`), `health`, `health_output`, `restarts`, `pid`, `ports`,
    /// `exit_code`, `status`, `error`.
    fn ps(&self, py: Python<'_>) -> PyResult<Vec<Py<PyAny>>> {
        self.0.ps().iter().map(|s| json_value(py, &s.to_json())).collect()
    }

    /// Service `service`'s output so far, across restarts: `(stdout, stderr)` as bytes (the
    /// last 16 MiB of each).
    fn logs<'py>(&self, py: Python<'py>, service: &str) -> PyResult<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)> {
        let (out, err, _) = self.0.logs(service).map_err(to_py)?;
        Ok((PyBytes::new(py, &out), PyBytes::new(py, &err)))
    }

    /// Waits until `service` has reached `condition`, in Compose's words
    /// (`service_healthy`, `service_started`, `service_completed_successfully`); one that
    /// cannot get there any more raises `ConfigError` in Compose's words.
    #[pyo3(signature = (service, condition="service_healthy"))]
    fn wait(&self, py: Python<'_>, service: &str, condition: &str) -> PyResult<()> {
        let condition = Condition::parse(condition).map_err(to_py)?;
        let canceller = isolette::Canceller::new().map_err(to_py)?;
        let interrupt =
            crate::interrupt::install(std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&canceller)));
        let result = py.detach(|| self.0.wait_for(service, condition, Some(&canceller)));
        drop(interrupt);
        py.check_signals()?;
        result.map_err(to_py)
    }

    /// Stops the services (dependents first), removes the project's networks, and with
    /// `volumes` the project's named volumes. `ps()` and `logs()` still answer afterwards.
    #[pyo3(signature = (volumes=false))]
    fn down(&self, py: Python<'_>, volumes: bool) -> PyResult<()> {
        py.detach(|| self.0.down(volumes)).map_err(to_py)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> PyResult<bool> {
        self.down(py, false)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        format!("RunningProject({:?})", self.0.project().name)
    }
}
