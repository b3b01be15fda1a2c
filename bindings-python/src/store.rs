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
