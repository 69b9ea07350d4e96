//! The engine: one catalog source, its state folder, and one model shared by indexing and
//! searching (loaded at most once per process). The faces hold an `Arc<Engine>`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::backend::{self, Published, SharedIndex, SyncReport};
use crate::catalog::{url_scheme, CatalogSource};
use crate::config::{self, Config};
use crate::descriptor::Space;
use crate::error::{Error, Result};
use crate::files::keyed_name;
use crate::index::forest::{self, Cost};
use crate::indexer::{self, Cancel, IndexReport, Phase, Progress};
use crate::model::{self, Device, Embedder, Opened, ResNetEmbedder};
use crate::published::{self, PublishReport, PullReport, Remote};
use crate::schemes;
use crate::state::StateDir;
use crate::store::{Identity, Store};

pub struct Engine {
    config: Config,
    source: Arc<dyn CatalogSource>,
    state: StateDir,
    model_id: String,
    embedder: Mutex<Option<Arc<dyn Embedder>>>,
    /// `[model] device`, opened on first use and shared by the model and the searches.
    device: Mutex<Option<Opened>>,
    /// Set when the state folder is a pulled published state: searched, never indexed.
    pulled: Option<PullReport>,
    /// The shared search backend (`[index] backend`), when not local.
    backend: Option<Arc<dyn SharedIndex>>,
}

impl Engine {
    /// An engine over the configured catalog (a folder, or a URL of a registered scheme:
    /// [`schemes::open`]), with the ResNet50 loaded from the configured weights when first
    /// needed.
    pub fn new(config: Config) -> Result<Engine> {
        let source = schemes::open(&config)?;
        Engine::with_parts(config, source, None)
    }

    /// An engine over any catalog source; `embedder`, when given, replaces the ResNet50
    /// (tests use [`model::fake::FakeEmbedder`]).
    pub fn with_parts(
        config: Config,
        source: Arc<dyn CatalogSource>,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Result<Engine> {
        let (state, pulled) = match &config.state_dir {
            Some(url) if url_scheme(url).is_some() => {
                let pulled = schemes::pull(&url.to_string_lossy(), &config)?;
                (pulled.dir.clone(), Some(pulled))
            }
            Some(dir) => (dir.clone(), None),
            None => (default_state_dir(source.as_ref())?, None),
        };
        let model_id = embedder.as_ref().map_or(model::MODEL_ID.to_string(), |e| e.model_id().to_string());
        let backend = backend::open(&config)?;
        Ok(Engine {
            config,
            source,
            state: StateDir::new(state),
            model_id,
            embedder: Mutex::new(embedder),
            device: Mutex::new(None),
            pulled,
            backend,
        })
    }

    /// The shared search backend, when `[index] backend` is not local.
    pub fn backend(&self) -> Option<&Arc<dyn SharedIndex>> {
        self.backend.as_ref()
    }

    /// The catalog's key in a shared backend: its name and a hash of where it is, as
    /// its default state folder is named.
    pub fn catalog_key(&self) -> Result<String> {
        let (name, key) = self.source.state_key()?;
        Ok(keyed_name(&name, &key))
    }

    /// Publishes the store's descriptors to the shared backend (after an index run, or
    /// `lookalike db sync`): only what changed is written.
    pub fn sync(&self) -> Result<Option<SyncReport>> {
        let Some(backend) = &self.backend else { return Ok(None) };
        let _lock = self.state.lock()?;
        let store = self.open_store()?;
        let space = Space::open(&self.state.descriptors())?;
        if !space.matches(&store, &self.config.descriptor) {
            return Err(Error::config(
                "the descriptors are not those of the store and settings: run `lookalike index`",
            ));
        }
        let labels = self.source.labels()?;
        let catalog = self.catalog_key()?;
        backend.sync(&Published { catalog: &catalog, store: &store, space: &space, labels: &labels }).map(Some)
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn source(&self) -> &Arc<dyn CatalogSource> {
        &self.source
    }

    pub fn state(&self) -> &StateDir {
        &self.state
    }

    /// What made the stored features; a store with another identity is rebuilt.
    pub fn identity(&self) -> Identity {
        Identity {
            model: self.model_id.clone(),
            preprocessing: self.config.resize.preprocessing_id(),
            dims: model::ROW_DIMS,
            colour: crate::colour::COLOUR_ID.to_string(),
        }
    }

    /// The model, loaded on first use and then shared by every index run and search.
    pub fn embedder(&self) -> Result<Arc<dyn Embedder>> {
        let mut slot = self.embedder.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = slot.as_ref() {
            return Ok(e.clone());
        }
        let loaded: Arc<dyn Embedder> =
            Arc::new(ResNetEmbedder::load_on(&self.config.weights, self.config.resize, &self.device()?)?);
        *slot = Some(loaded.clone());
        Ok(loaded)
    }

    /// The configured device, opened once (a CUDA context is costly to make).
    pub fn device(&self) -> Result<Opened> {
        let mut slot = self.device.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = slot.as_ref() {
            return Ok(d.clone());
        }
        let opened = self.config.device.open()?;
        *slot = Some(opened.clone());
        Ok(opened)
    }

    /// Loads the model and runs it once on a blank photo, so that the first real query
    /// pays none of the one-time costs (the compute threads starting, buffers growing).
    pub fn warm_up(&self) -> Result<()> {
        let blank = vec![0.0; (model::INPUT * model::INPUT * 3) as usize];
        self.embedder()?.embed(&[blank]).map(drop)
    }

    /// Brings the store up to date with the catalog (see [`indexer`]).
    pub fn index(&self, full: bool, cancel: &Cancel, progress: &(dyn Fn(Progress) + Sync)) -> Result<IndexReport> {
        if let Some(p) = &self.pulled {
            return Err(Error::Published {
                at: p.from.clone(),
                reason: "a published state is searched here, not indexed: index a local state folder and `lookalike publish` it".into(),
            });
        }
        if let Some(backend) = &self.backend {
            backend.check()?;
        }
        let parts = indexer::Parts {
            config: &self.config,
            source: self.source.as_ref(),
            state: &self.state,
            identity: self.identity(),
            embedder: self.embedder()?,
            // --full embeds everything here, as it says.
            shared: if full { None } else { self.backend.as_deref() },
        };
        let mut report = indexer::run(parts, full, cancel, progress)?;
        // A sync that failed last time (the database was down) is repaired by this one.
        if self.backend.is_some() && !report.cancelled && self.state.store().exists() {
            progress(Progress { phase: Phase::Syncing, done: 0, total: report.items });
            report.synced = self.sync()?;
        }
        Ok(report)
    }

    /// Publishes the state folder to `remote` for other machines (see [`published`]),
    /// keeping the newest `keep` versions; refused unless the store is current.
    pub fn publish(&self, remote: &dyn Remote, keep: usize) -> Result<PublishReport> {
        let lock = self.state.lock()?;
        let items = self.open_store()?.len();
        published::publish(&self.state, &lock, self.source.name(), items, remote, keep)
    }

    /// Opens the store, or says why it cannot be searched.
    pub fn open_store(&self) -> Result<Store> {
        let path = self.state.store();
        if !path.exists() {
            return Err(Error::NotIndexed { catalog: self.source.name(), store: path });
        }
        let store = Store::open(&path)?;
        let identity = self.identity();
        // A store from before colour descriptors is searched by shape until an index run
        // adds them (without the model).
        if store.identity() != &identity && !identity.recolours(store.identity()) {
            return Err(Error::Outdated {
                store: path,
                found: describe(store.identity()),
                wanted: describe(&identity),
            });
        }
        Ok(store)
    }

    /// Facts about the catalog and its store, for `lookalike info`.
    pub fn info(&self) -> Result<Info> {
        let path = self.state.store();
        let store = if path.exists() { Some(Store::open(&path)?) } else { None };
        let identity = self.identity();
        // The trees' sidecar when it is current for the saved descriptors of this store.
        let sidecar = store.as_ref().and_then(|s| {
            let space = Space::open(&self.state.descriptors()).ok()?;
            if !space.matches(s, &self.config.descriptor) {
                return None;
            }
            forest::current(&self.state, s, &space, &self.config.index)
        });
        let approx = sidecar.as_ref().is_some_and(|(s, _)| forest::chooses(self.config.index.mode, &s.cost));
        Ok(Info {
            catalog: self.source.name(),
            labels: self.source.labels_location(),
            state_dir: self.state.path().to_path_buf(),
            published: self.pulled.as_ref().map(|p| format!("{} of {}", p.manifest.version, p.from)),
            store: path,
            store_bytes: store.as_ref().map(|s| s.file_size()),
            items: store.as_ref().map(|s| s.len()),
            model: identity.model.clone(),
            preprocessing: identity.preprocessing.clone(),
            colour: identity.colour.clone(),
            device: self.config.device,
            embedded_on: store.as_ref().map(Store::embedded_on),
            weights: self.config.weights.clone(),
            weights_present: self.config.weights.is_file(),
            stale: store.as_ref().is_some_and(|s| s.identity() != &identity && !identity.recolours(s.identity())),
            colours_pending: store.as_ref().is_some_and(|s| identity.recolours(s.identity())),
            interrupted_run: self.state.journal().exists(),
            search: match (&self.backend, approx) {
                (Some(_), _) => "postgres",
                (None, true) => "annoy",
                (None, false) => "exact",
            },
            backend: self.backend.as_ref().map(|b| b.at()),
            annoy_index: self.state.annoy(),
            descriptors: self.config.descriptor.describe(),
            annoy_current: sidecar.is_some(),
            annoy_delta: sidecar.as_ref().map(|(_, d)| [d.added(), d.masked()]),
            annoy_cost: sidecar.map(|(s, _)| s.cost),
        })
    }
}

/// What `lookalike info --scan` reports: the catalog's images now, and what an index run
/// would find new, changed (by size or change token) and removed, without reading an image.
#[derive(Debug, Serialize)]
pub struct ScanSummary {
    pub images: usize,
    pub skipped: usize,
    pub new: usize,
    pub changed: usize,
    pub removed: usize,
    pub seconds: f64,
}

impl Engine {
    /// Lists the catalog and compares it with the store (see [`ScanSummary`]).
    pub fn scan_summary(&self) -> Result<ScanSummary> {
        let started = std::time::Instant::now();
        let scan = self.source.list()?;
        let store = if self.state.store().exists() { Some(Store::open(&self.state.store())?) } else { None };
        let (mut new, mut changed) = (0, 0);
        for f in &scan.files {
            match store.as_ref().and_then(|s| s.find(&f.rel).map(|row| &s.entries()[row])) {
                None => new += 1,
                Some(e) if !indexer::same_stat(e, f) => changed += 1,
                Some(_) => {}
            }
        }
        let kept = scan.files.len() - new;
        Ok(ScanSummary {
            images: scan.files.len(),
            skipped: scan.skipped.len(),
            new,
            changed,
            removed: store.map_or(0, |s| s.len() - kept.min(s.len())),
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

fn describe(identity: &Identity) -> String {
    let colour = if identity.colour.is_empty() { "no colour descriptor" } else { identity.colour.as_str() };
    format!("{} / {} / {colour}", identity.model, identity.preprocessing)
}

/// `<data dir>/lookalike/<catalog name>-<hash of the catalog>`, so a read-only catalog
/// works and several catalogs never share a store.
fn default_state_dir(source: &dyn CatalogSource) -> Result<PathBuf> {
    let (name, key) = source.state_key()?;
    let base = config::data_dir()
        .or_else(|| std::env::current_dir().ok().map(|d| d.join(".lookalike/lookalike")))
        .ok_or_else(|| Error::config("no data folder: set LOOKALIKE_STATE_DIR or [store] state_dir"))?;
    Ok(base.join(keyed_name(&name, &key)))
}

#[derive(Debug, Serialize)]
pub struct Info {
    pub catalog: String,
    pub labels: Option<PathBuf>,
    pub state_dir: PathBuf,
    /// The published version searched, when the state folder is a URL.
    pub published: Option<String>,
    pub store: PathBuf,
    pub store_bytes: Option<u64>,
    pub items: Option<usize>,
    pub model: String,
    pub preprocessing: String,
    /// The colour descriptor stores are made with.
    pub colour: String,
    /// As configured; `auto` resolves when the model loads.
    pub device: Device,
    /// The kinds of device whose model made the stored rows ([`Store::embedded_on`]).
    pub embedded_on: Option<Vec<String>>,
    pub weights: PathBuf,
    pub weights_present: bool,
    /// The store was made with another model or preprocessing than configured.
    pub stale: bool,
    /// The store has no (or another) colour descriptor: an index run adds it, without the model.
    pub colours_pending: bool,
    /// A journal of an unfinished index run is waiting to be resumed.
    pub interrupted_run: bool,
    pub search: &'static str,
    /// The shared database searches use (`[index] backend`), without its password.
    pub backend: Option<String>,
    /// What searches compare (`[search]` descriptor settings).
    pub descriptors: String,
    pub annoy_index: PathBuf,
    /// The Annoy index was built from the current store with the current settings.
    pub annoy_current: bool,
    /// What the current Annoy index costs against exact search (what `auto` goes by).
    pub annoy_cost: Option<Cost>,
    /// Photos added and removed since the Annoy trees were built, searched beside them.
    pub annoy_delta: Option<[usize; 2]>,
}
