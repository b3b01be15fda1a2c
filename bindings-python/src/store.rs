//! `Image`, `Store` and `Volume`: core's, with paths as `str`/`bytes`/`os.PathLike` and
//! records as dicts.

use std::path::PathBuf;

use isolette::{Image, ImageRecord, Store, Volume, VolumeRecord};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::convert::os_string;
use crate::errors::to_py;

/// An image: one or more unpacked layer directories (lowest first), opened once and run
/// many times.
#[pyclass(name = "Image", module = "isolette", frozen)]
pub(crate) struct PyImage(pub Image);

fn to_path(v: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    os_string(v).map(PathBuf::from)
}

#[pymethods]
impl PyImage {
    /// An image from one unpacked directory (a root filesystem).
    #[staticmethod]
    fn open(path: &Bound<'_, PyAny>) -> PyResult<PyImage> {
        Image::open(to_path(path)?).map(PyImage).map_err(to_py)
    }

    /// An image from layer directories, lowest first.
    #[staticmethod]
    fn from_layers(layers: &Bound<'_, PyAny>) -> PyResult<PyImage> {
        let dirs = layers.try_iter()?.map(|l| to_path(&l?)).collect::<PyResult<Vec<_>>>()?;
        Image::from_layers(dirs).map(PyImage).map_err(to_py)
    }

    /// Image `name` (`"python:3.12"`) from a store: `store` (a `Store` or its directory),
    /// else the default one.
    #[staticmethod]
    #[pyo3(signature = (name, store=None))]
    fn load(py: Python<'_>, name: &str, store: Option<&Bound<'_, PyAny>>) -> PyResult<PyImage> {
        let store = match store {
            None => None,
            Some(s) => match s.cast::<PyStore>() {
                Ok(s) => Some(s.get().0.clone()),
                Err(_) => Some(Store::open(to_path(s)?).map_err(to_py)?),
            },
        };
        py.detach(|| match store {
            Some(store) => store.image(name),
            None => Image::load(name),
        })
        .map(PyImage)
        .map_err(to_py)
    }

    /// The layer directories, lowest first.
    #[getter]
    fn layers(&self) -> Vec<PathBuf> {
        self.0.layers().to_vec()
    }

    fn __repr__(&self) -> String {
        let layers: Vec<String> = self.0.layers().iter().map(|l| format!("{:?}", l.display().to_string())).collect();
        format!("Image([{}])", layers.join(", "))
    }
}

/// The image store: images imported from OCI layouts and `docker save` archives, and
/// named volumes.
#[pyclass(name = "Store", module = "isolette", frozen)]
pub(crate) struct PyStore(pub Store);

fn record<'py>(py: Python<'py>, r: &ImageRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &r.name)?;
    d.set_item("id", &r.id)?;
    d.set_item("layers", &r.layers)?;
    d.set_item("size", r.size)?;
    d.set_item("created", &r.created)?;
    Ok(d)
}

fn volume_record<'py>(py: Python<'py>, r: &VolumeRecord) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("name", &r.name)?;
    d.set_item("created", r.created)?;
    d.set_item("size_cap", r.size_cap)?;
    Ok(d)
}

fn registry_options(platform: Option<String>, insecure: Vec<String>) -> isolette::RegistryOptions {
    let mut options = isolette::RegistryOptions::new();
    if let Some(p) = platform {
        options = options.platform(p);
    }
    for host in insecure {
        options = options.insecure_registry(host);
    }
    options
}

/// A JSON value of core's (the one shape every surface prints) as Python objects.
pub(crate) fn json_value(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    Ok(py.import("json")?.call_method1("loads", (value.to_string(),))?.unbind())
}

/// A build event as the dict `Store.build`'s `progress` gets.
fn event_dict(py: Python<'_>, event: &isolette::build::BuildEvent) -> PyResult<Py<PyAny>> {
    use isolette::build::BuildEvent;
    let d = PyDict::new(py);
    d.set_item("event", event.kind())?;
    match event {
        BuildEvent::Step(step) => {
            let fields = json_value(py, &step.to_json())?;
            d.update(fields.bind(py).cast::<pyo3::types::PyMapping>()?)?;
        }
        BuildEvent::Output { index, stream, data } => {
            d.set_item("step", index)?;
            d.set_item("stream", stream.name())?;
            d.set_item("data", pyo3::types::PyBytes::new(py, data))?;
        }
        BuildEvent::Note(message) => d.set_item("message", message)?,
        _ => {}
    }
    Ok(d.into_any().unbind())
}

#[pymethods]
impl PyStore {
    /// The store in `path`, else the default one (`$ISOLETTE_STORE`, `/var/lib/isolette`
    /// for root, `~/.local/share/isolette` otherwise); made if missing.
    #[new]
    #[pyo3(signature = (path=None))]
    fn new(path: Option<&Bound<'_, PyAny>>) -> PyResult<PyStore> {
        let dir = match path {
            Some(p) => to_path(p)?,
            None => Store::default_dir(),
        };
        Store::open(dir).map(PyStore).map_err(to_py)
    }

    /// The store's directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.0.dir().to_path_buf()
    }

    /// Imports an OCI layout, an oci-archive or a `docker save` archive; its record.
    /// `progress(layer, layers, bytes, total_bytes)` is called as layers unpack.
    #[pyo3(name = "import_", signature = (source, name=None, progress=None))]
    fn import(
        &self,
        py: Python<'_>,
        source: &Bound<'_, PyAny>,
        name: Option<&str>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyDict>> {
        let source = to_path(source)?;
        let mut failed: Option<PyErr> = None;
        let result = py.detach(|| {
            let mut report = |p: isolette::Progress| {
                if let (Some(callback), None) = (&progress, &failed) {
                    Python::attach(|py| {
                        if let Err(e) = callback.call1(py, (p.layer, p.layers, p.bytes, p.total_bytes)) {
                            failed = Some(e);
                        }
                    });
                }
            };
            self.0.import(&source, name, &mut report)
        });
        if let Some(e) = failed {
            return Err(e);
        }
        let r = result.map_err(to_py)?;
        Ok(record(py, &r)?.unbind())
    }

    /// Builds the image a Dockerfile in `context` describes (`isolette build`) and stores
    /// it under `tags`; returns the summary (`id`, `names`, `layers`, `size`, `steps`,
    /// `cached`). `progress(event)` hears each step as it ends (a dict with `event` =
    /// `"step"` and the fields `isolette build --json` prints), a `RUN`'s output
    /// (`"output"`: `step`, `stream`, `data` as bytes) and notes (`"note"`: `message`).
    /// Ctrl-C stops the build and raises `KeyboardInterrupt`; a failed step raises
    /// `BuildError` (with `line` and `exit_code`).
    #[pyo3(signature = (context, *, tags=Vec::new(), dockerfile=None, build_args=None, target=None, no_cache=false,
        network="outbound", source_date_epoch=None, memory=None, cpu_time=None, wall_time=None, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        py: Python<'_>,
        context: &Bound<'_, PyAny>,
        tags: Vec<String>,
        dockerfile: Option<&Bound<'_, PyAny>>,
        build_args: Option<std::collections::BTreeMap<String, String>>,
        target: Option<String>,
        no_cache: bool,
        network: &str,
        source_date_epoch: Option<u64>,
        memory: Option<&Bound<'_, PyAny>>,
        cpu_time: Option<&Bound<'_, PyAny>>,
        wall_time: Option<&Bound<'_, PyAny>>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let context = to_path(context)?;
        let mut options = isolette::build::BuildOptions::default();
        options.dockerfile = dockerfile.map(to_path).transpose()?;
        options.tags = tags;
        options.build_args = build_args.unwrap_or_default().into_iter().collect();
        options.target = target;
        options.no_cache = no_cache;
        options.network = network.parse().map_err(to_py)?;
        options.source_date_epoch = source_date_epoch;
        options.memory = memory.map(|m| crate::convert::size(m, "memory")).transpose()?;
        options.cpu_time = cpu_time.map(|d| crate::convert::duration(d, "cpu_time")).transpose()?;
        options.wall_time = wall_time.map(|d| crate::convert::duration(d, "wall_time")).transpose()?;
        let canceller = isolette::Canceller::new().map_err(to_py)?;
        options.canceller = Some(canceller.clone());
        let mut failed: Option<PyErr> = None;
        let interrupt =
            crate::interrupt::install(std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(&canceller)));
        let result = py.detach(|| {
            let mut report = |event: &isolette::build::BuildEvent| {
                let (Some(callback), None) = (&progress, &failed) else { return };
                Python::attach(|py| {
                    if let Err(e) = event_dict(py, event).and_then(|d| callback.call1(py, (d,))) {
                        // The caller's callback failed: stop the build, raise its error.
                        canceller.cancel();
                        failed = Some(e);
                    }
                });
            };
            self.0.build(&context, &options, &mut report)
        });
        drop(interrupt);
        py.check_signals()?;
        if let Some(e) = failed {
            return Err(e);
        }
        let built = result.map_err(to_py)?;
        json_value(py, &built.to_json())
    }

    /// Pulls `reference` (`python:3.12`, `localhost:5000/app:1`) into the store; its
    /// record. `insecure` lists registries (`HOST[:PORT]`) that may be spoken to over
    /// plain HTTP; `platform` picks `os/arch` from a multi-platform image.
    #[pyo3(signature = (reference, *, platform=None, insecure=Vec::new()))]
    fn pull(
        &self,
        py: Python<'_>,
        reference: &str,
        platform: Option<String>,
        insecure: Vec<String>,
    ) -> PyResult<Py<PyDict>> {
        let options = registry_options(platform, insecure);
        let r = py.detach(|| self.0.pull(reference, &options, &|_| {})).map_err(to_py)?;
        Ok(record(py, &r)?.unbind())
    }

    /// Pushes image `name` to `reference` (`name` itself when `None`); the manifest's digest.
    #[pyo3(signature = (name, reference=None, *, insecure=Vec::new()))]
    fn push(&self, py: Python<'_>, name: &str, reference: Option<&str>, insecure: Vec<String>) -> PyResult<String> {
        let options = registry_options(None, insecure);
        py.detach(|| self.0.push(name, reference, &options, &|_| {})).map_err(to_py)
    }

    /// The build cache: `(entries, bytes)` of layers only it keeps.
    fn build_cache(&self, py: Python<'_>) -> PyResult<(usize, u64)> {
        py.detach(|| self.0.build_cache()).map_err(to_py)
    }

    /// Removes the build cache entries no image uses (`isolette builder prune`); how many.
    fn prune_build_cache(&self, py: Python<'_>) -> PyResult<usize> {
        py.detach(|| self.0.prune_build_cache()).map_err(to_py)
    }

    /// Every image's record, by name.
    fn list<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let all = py.detach(|| self.0.list()).map_err(to_py)?;
        PyList::new(py, all.iter().map(|r| record(py, r)).collect::<PyResult<Vec<_>>>()?)
    }

    /// Removes image `name` and the layers no other image uses; their digests.
    fn remove(&self, py: Python<'_>, name: &str) -> PyResult<Vec<String>> {
        py.detach(|| self.0.remove(name)).map_err(to_py)
    }

    /// Removes the layers no image uses; their digests.
    fn prune(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        py.detach(|| self.0.prune()).map_err(to_py)
    }

    /// Image `name` of this store.
    fn image(&self, py: Python<'_>, name: &str) -> PyResult<PyImage> {
        py.detach(|| self.0.image(name)).map(PyImage).map_err(to_py)
    }

    /// Creates an empty volume, with an optional size cap (bytes; needs root).
    #[pyo3(signature = (name, size_cap=None))]
    fn create_volume<'py>(&self, py: Python<'py>, name: &str, size_cap: Option<u64>) -> PyResult<Bound<'py, PyDict>> {
        let r = py.detach(|| self.0.create_volume(name, size_cap)).map_err(to_py)?;
        volume_record(py, &r)
    }

    /// Volume `name`, for the `volumes` option; it cannot be removed while it lives.
    fn volume(&self, py: Python<'_>, name: &str) -> PyResult<PyVolume> {
        py.detach(|| self.0.volume(name)).map(PyVolume).map_err(to_py)
    }

    /// Every volume's record, by name.
    fn volumes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let all = py.detach(|| self.0.volumes()).map_err(to_py)?;
        PyList::new(py, all.iter().map(|r| volume_record(py, r)).collect::<PyResult<Vec<_>>>()?)
    }

    /// Removes volume `name` and its files (refused while it is in use).
    fn remove_volume(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        py.detach(|| self.0.remove_volume(name)).map_err(to_py)
    }

    fn __repr__(&self) -> String {
        format!("Store({:?})", self.0.dir().display().to_string())
    }
}

/// A named volume of a store, opened for mounting (`volumes=[(volume, "/data", True)]`).
#[pyclass(name = "Volume", module = "isolette", frozen)]
pub(crate) struct PyVolume(pub Volume);

#[pymethods]
impl PyVolume {
    /// The volume's name.
    #[getter]
    fn name(&self) -> &str {
        self.0.name()
    }

    /// The host directory that holds its files.
    #[getter]
    fn path(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }

    fn __repr__(&self) -> String {
        format!("Volume({:?})", self.0.name())
    }
}
