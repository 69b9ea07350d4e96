//! Settings: built-in defaults, then a config file, then `LOOKALIKE_*` variables, then
//! flags. The file is `--config` / `LOOKALIKE_CONFIG`, else `./config.toml`, else the
//! user's `~/.config/lookalike/config.toml` (XDG). Sections of the faces (`[ui]`,
//! `[server]`) are kept as they are, for the face that reads them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::descriptor::{Layers, Recipe};
use crate::error::{Error, Result};
use crate::model::{Device, ResizePolicy};
use crate::steer::FeedbackWeights;

/// The file read in the working folder when neither `--config` nor `LOOKALIKE_CONFIG`
/// names one.
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";
/// Where `fetch-weights` puts the weights unless told otherwise.
const WEIGHTS_FILE: &str = "resnet50.safetensors";

/// `<user data dir>/lookalike`: weights and per-catalog state folders.
pub fn data_dir() -> Option<PathBuf> {
    dirs::data_local_dir().map(|d| d.join("lookalike"))
}

/// The user's own configuration file: `$XDG_CONFIG_HOME/lookalike/config.toml`.
pub fn user_config_file() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("lookalike").join(DEFAULT_CONFIG_FILE))
}

/// The weights location that works from any folder: `<user data dir>/lookalike/weights/`.
pub fn default_weights() -> PathBuf {
    data_dir().map_or_else(|| PathBuf::from("weights"), |d| d.join("weights")).join(WEIGHTS_FILE)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Folder of product images, walked recursively, or a catalog URL (`s3://bucket/prefix`).
    pub catalog: PathBuf,
    /// Kaggle-style `styles.csv`; `None` means `<catalog>/styles.csv` when present.
    pub labels: Option<PathBuf>,
    /// Where the store lives; `None` means a per-catalog folder under the user's data dir.
    /// A URL (`s3://bucket/prefix`) names a published state, pulled into `pulled_dir`.
    pub state_dir: Option<PathBuf>,
    /// Where pulled published states are kept; `None` means `<user data dir>/lookalike/pulled`.
    pub pulled_dir: Option<PathBuf>,
    pub weights: PathBuf,
    pub device: Device,
    pub resize: ResizePolicy,
    /// Photos per model call; `None` means [`Device::default_batch`] (see [`Config::batch`]).
    pub batch_size: Option<usize>,
    /// Compute threads; 0 means one per physical core.
    pub threads: usize,
    pub k: usize,
    /// What searches compare (pooling, power, whitening); changing it never re-embeds.
    pub descriptor: Recipe,
    /// Query expansion: neighbours averaged into each query; 0 = off.
    pub expand: usize,
    /// Byte-identical copies of a photo collapse into one hit.
    pub collapse: bool,
    /// How far results marked up or down move a refined query.
    pub feedback: FeedbackWeights,
    pub index: IndexConfig,
    /// The PostgreSQL backend (`[index] backend = "postgres"`).
    pub postgres: PostgresConfig,
    /// How remote catalogs are fetched.
    pub fetch: FetchConfig,
    /// The `[ui]` section, read by the terminal UI.
    pub ui: toml::Table,
    /// The `[server]` section, read by `lookalike serve`.
    pub server: toml::Table,
    /// The file the settings came from, if any.
    pub file: Option<PathBuf>,
}

/// Fetching from a remote catalog (`[catalog] fetch_*`): requests in flight at once, tries
/// of a failing request (with exponential backoff and jitter), each request's timeout, and
/// how many bytes of photos fetched to hash them an index run keeps for the model (so
/// they are downloaded once; beyond it they are fetched again when embedded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchConfig {
    pub concurrency: usize,
    pub retries: usize,
    pub timeout_s: u64,
    pub keep_bytes: usize,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig { concurrency: 16, retries: 5, timeout_s: 30, keep_bytes: 256 << 20 }
    }
}

/// How searches pick between exact and Annoy search, and how the Annoy index is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexConfig {
    pub mode: SearchMode,
    pub n_trees: usize,
    pub search_k: usize,
    /// Dimensions of the PCA projection the trees are built over (0 = the descriptors
    /// themselves); candidates are re-ranked at full dimension.
    pub project_dims: usize,
    /// Where searches run: this machine's files, or a database shared by many machines.
    pub backend: Backend,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig { mode: SearchMode::Auto, n_trees: 64, search_k: 2_500, project_dims: 128, backend: Backend::Local }
    }
}

/// Where the search descriptors live (`[index] backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The state folder: exact or Annoy search in this process.
    Local,
    /// PostgreSQL with pgvector, shared by query nodes and index runs on many machines.
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Backend> {
        match s {
            "local" => Ok(Backend::Local),
            "postgres" => Ok(Backend::Postgres),
            other => Err(Error::config(format!("unknown index backend {other:?}: use local or postgres"))),
        }
    }
}

/// A setting that must never be printed (a URL with a password): `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// `[index] postgres_*`: the database and its HNSW index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// A libpq URL or key=value string; several hosts and `target_session_attrs` work.
    pub url: Option<Secret>,
    /// Candidates the HNSW search keeps (`hnsw.ef_search`).
    pub ef_search: usize,
    /// Links per node and build-time candidates of the HNSW index.
    pub m: usize,
    pub ef_construction: usize,
    /// Connections a process keeps open at most.
    pub pool_size: usize,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig { url: None, ef_search: 100, m: 16, ef_construction: 64, pool_size: 16 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Annoy where the cost measured when its trees were built shows it pays, else exact.
    Auto,
    Exact,
    Approx,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            catalog: PathBuf::from("catalog"),
            labels: None,
            state_dir: None,
            pulled_dir: None,
            weights: default_weights(),
            device: Device::Auto,
            resize: ResizePolicy::Crop,
            batch_size: None,
            threads: 0,
            k: 10,
            descriptor: Recipe::DEFAULT,
            expand: 5,
            collapse: true,
            feedback: FeedbackWeights::default(),
            index: IndexConfig::default(),
            postgres: PostgresConfig::default(),
            fetch: FetchConfig::default(),
            ui: toml::Table::new(),
            server: toml::Table::new(),
            file: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    catalog: CatalogSection,
    #[serde(default)]
    store: StoreSection,
    #[serde(default)]
    model: ModelSection,
    #[serde(default)]
    search: SearchSection,
    #[serde(default)]
    index: IndexSection,
    #[serde(default)]
    ui: toml::Table,
    #[serde(default)]
    server: toml::Table,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexSection {
    mode: Option<SearchMode>,
    n_trees: Option<i64>,
    search_k: Option<i64>,
    project_dims: Option<i64>,
    backend: Option<Backend>,
    postgres_url: Option<String>,
    postgres_ef_search: Option<i64>,
    postgres_m: Option<i64>,
    postgres_ef_construction: Option<i64>,
    postgres_pool_size: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogSection {
    dir: Option<PathBuf>,
    labels: Option<PathBuf>,
    fetch_concurrency: Option<i64>,
    fetch_retries: Option<i64>,
    fetch_timeout_s: Option<i64>,
    fetch_keep_mib: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    state_dir: Option<PathBuf>,
    pulled_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSection {
    weights: Option<PathBuf>,
    device: Option<String>,
    resize: Option<ResizePolicy>,
    batch_size: Option<i64>,
    threads: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchSection {
    k: Option<i64>,
    descriptor: Option<Layers>,
    power: Option<f64>,
    whiten: Option<i64>,
    shrink: Option<f64>,
    expand: Option<i64>,
    colour_weight: Option<f64>,
    collapse: Option<bool>,
    feedback_like: Option<f64>,
    feedback_unlike: Option<f64>,
}

/// Values given on the command line; they win over everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub catalog: Option<PathBuf>,
    pub labels: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    pub weights: Option<PathBuf>,
    pub threads: Option<usize>,
    pub device: Option<Device>,
    pub backend: Option<Backend>,
    pub postgres_url: Option<String>,
}

impl Config {
    /// Photos per model call: `[model] batch_size`, else what suits the device.
    pub fn batch(&self) -> usize {
        self.batch_size.unwrap_or_else(|| self.device.default_batch())
    }

    /// Resolves the configuration the way the binary does: file, environment, flags.
    pub fn load(overrides: &Overrides) -> Result<Config> {
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let explicit = overrides.config_file.clone().or_else(|| env("LOOKALIKE_CONFIG").map(PathBuf::from));
        let file = explicit.or_else(|| {
            let here = PathBuf::from(DEFAULT_CONFIG_FILE);
            std::iter::once(here).chain(user_config_file()).find(|p| p.is_file())
        });
        let mut config = match &file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = env("LOOKALIKE_CATALOG") {
            config.catalog = v.into();
        }
        if let Some(v) = env("LOOKALIKE_LABELS") {
            config.labels = Some(v.into());
        }
        if let Some(v) = env("LOOKALIKE_STATE_DIR") {
            config.state_dir = Some(v.into());
        }
        if let Some(v) = env("LOOKALIKE_PULLED_DIR") {
            config.pulled_dir = Some(v.into());
        }
        if let Some(v) = env("LOOKALIKE_WEIGHTS") {
            config.weights = v.into();
        }
        if let Some(v) = env("LOOKALIKE_THREADS") {
            let text = v.to_string_lossy();
            config.threads = text.parse().map_err(|_| {
                Error::config(format!("LOOKALIKE_THREADS: {text:?} is not a thread count (0 = all cores)"))
            })?;
        }
        if let Some(v) = env("LOOKALIKE_DEVICE") {
            config.device = v.to_string_lossy().parse()?;
        }
        if let Some(v) = env("LOOKALIKE_INDEX_BACKEND") {
            config.index.backend =
                v.to_string_lossy().parse().map_err(|e| Error::config(format!("LOOKALIKE_INDEX_BACKEND: {e}")))?;
        }
        if let Some(v) = env("LOOKALIKE_POSTGRES_URL") {
            config.postgres.url = Some(Secret::new(v.to_string_lossy()));
        }
        if let Some(v) = overrides.backend {
            config.index.backend = v;
        }
        if let Some(v) = &overrides.postgres_url {
            config.postgres.url = Some(Secret::new(v.clone()));
        }
        if let Some(v) = &overrides.catalog {
            config.catalog = v.clone();
            // A catalog given by flag brings its own styles.csv unless labels are named too.
            if overrides.labels.is_none() && env("LOOKALIKE_LABELS").is_none() {
                config.labels = None;
            }
        }
        if let Some(v) = &overrides.labels {
            config.labels = Some(v.clone());
        }
        if let Some(v) = &overrides.state_dir {
            config.state_dir = Some(v.clone());
        }
        if let Some(v) = &overrides.weights {
            config.weights = v.clone();
        }
        if let Some(v) = overrides.threads {
            config.threads = v;
        }
        if let Some(v) = overrides.device {
            config.device = v;
        }
        Ok(config)
    }

    /// Reads one TOML file; relative paths in it are taken from the file's folder.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read config file", path, e))?;
        let base = path.parent().unwrap_or(Path::new(""));
        let mut config = Config::from_toml(&text, base)
            .map_err(|e| Error::config(format!("invalid config file {}: {e}", path.display())))?;
        config.file = Some(path.to_path_buf());
        Ok(config)
    }

    pub fn from_toml(text: &str, base: &Path) -> Result<Config> {
        let file: FileConfig = toml::from_str(text).map_err(|e| Error::config(e.to_string()))?;
        let mut config = Config::default();
        let rel = |p: PathBuf| {
            if p.is_absolute() || base.as_os_str().is_empty() || crate::catalog::url_scheme(&p).is_some() {
                p
            } else {
                base.join(p)
            }
        };
        // Relative defaults also follow the config file, so the repo works from any folder.
        config.catalog = rel(file.catalog.dir.unwrap_or(config.catalog));
        // An empty weights setting means the default location.
        if let Some(w) = file.model.weights.filter(|p| !p.as_os_str().is_empty()) {
            config.weights = rel(w);
        }
        if let Some(d) = file.model.device {
            config.device = d.parse()?;
        }
        config.labels = file.catalog.labels.filter(|p| !p.as_os_str().is_empty()).map(rel);
        config.state_dir = file.store.state_dir.filter(|p| !p.as_os_str().is_empty()).map(rel);
        config.pulled_dir = file.store.pulled_dir.filter(|p| !p.as_os_str().is_empty()).map(rel);
        if let Some(r) = file.model.resize {
            config.resize = r;
        }
        if let Some(v) = file.catalog.fetch_concurrency {
            config.fetch.concurrency = in_range("catalog.fetch_concurrency", v, 1, 1024)?;
        }
        if let Some(v) = file.catalog.fetch_retries {
            config.fetch.retries = in_range("catalog.fetch_retries", v, 0, 100)?;
        }
        if let Some(v) = file.catalog.fetch_timeout_s {
            config.fetch.timeout_s = in_range("catalog.fetch_timeout_s", v, 1, 3600)? as u64;
        }
        if let Some(v) = file.catalog.fetch_keep_mib {
            config.fetch.keep_bytes = in_range("catalog.fetch_keep_mib", v, 0, 1 << 20)? << 20;
        }
        if let Some(v) = file.model.batch_size {
            config.batch_size = Some(in_range("model.batch_size", v, 1, 1024)?);
        }
        if let Some(v) = file.model.threads {
            config.threads = in_range("model.threads", v, 0, 1024)?;
        }
        if let Some(v) = file.search.k {
            config.k = in_range("search.k", v, 1, 10_000)?;
        }
        if let Some(v) = file.search.collapse {
            config.collapse = v;
        }
        if let Some(v) = file.search.feedback_like {
            config.feedback.like = in_range_f("search.feedback_like", v, 0.0, 10.0)?;
        }
        if let Some(v) = file.search.feedback_unlike {
            config.feedback.unlike = in_range_f("search.feedback_unlike", v, 0.0, 10.0)?;
        }
        let f = file.search;
        config.apply_search_settings(f.descriptor, f.power, f.whiten, f.shrink, f.expand, f.colour_weight)?;
        if let Some(m) = file.index.mode {
            config.index.mode = m;
        }
        if let Some(v) = file.index.n_trees {
            config.index.n_trees = in_range("index.n_trees", v, 1, 1024)?;
        }
        if let Some(v) = file.index.search_k {
            config.index.search_k = in_range("index.search_k", v, 1, i32::MAX as i64)?;
        }
        if let Some(v) = file.index.project_dims {
            config.index.project_dims = in_range("index.project_dims", v, 0, 4096)?;
        }
        if let Some(v) = file.index.backend {
            config.index.backend = v;
        }
        config.postgres.url = file.index.postgres_url.filter(|u| !u.is_empty()).map(Secret::new);
        if let Some(v) = file.index.postgres_ef_search {
            config.postgres.ef_search = in_range("index.postgres_ef_search", v, 1, 1000)?;
        }
        if let Some(v) = file.index.postgres_m {
            config.postgres.m = in_range("index.postgres_m", v, 2, 100)?;
        }
        if let Some(v) = file.index.postgres_ef_construction {
            config.postgres.ef_construction = in_range("index.postgres_ef_construction", v, 4, 1000)?;
        }
        if let Some(v) = file.index.postgres_pool_size {
            config.postgres.pool_size = in_range("index.postgres_pool_size", v, 1, 1024)?;
        }
        config.ui = file.ui;
        config.server = file.server;
        Ok(config)
    }

    /// Sets the given `[search]` descriptor settings, checking their ranges.
    pub fn apply_search_settings(
        &mut self,
        layers: Option<Layers>,
        power: Option<f64>,
        whiten: Option<i64>,
        shrink: Option<f64>,
        expand: Option<i64>,
        colour_weight: Option<f64>,
    ) -> Result<()> {
        if let Some(v) = layers {
            self.descriptor.layers = v;
        }
        if let Some(v) = power {
            self.descriptor.power = in_range_f("search.power", v, 0.05, 4.0)?;
        }
        if let Some(v) = whiten {
            self.descriptor.whiten = in_range("search.whiten", v, 0, crate::model::FEATURE_DIMS as i64)?;
        }
        if let Some(v) = shrink {
            self.descriptor.shrink = in_range_f("search.shrink", v, 0.0, 100.0)?;
        }
        if let Some(v) = expand {
            self.expand = in_range("search.expand", v, 0, 100)?;
        }
        if let Some(v) = colour_weight {
            self.descriptor.colour = in_range_f("search.colour_weight", v, 0.0, 0.9)?;
        }
        Ok(())
    }
}

fn in_range(key: &str, value: i64, min: i64, max: i64) -> Result<usize> {
    if value < min || value > max {
        return Err(Error::config(format!("{key} = {value} is out of range: allowed {min} to {max}")));
    }
    Ok(value as usize)
}

fn in_range_f(key: &str, value: f64, min: f64, max: f64) -> Result<f32> {
    if !(min..=max).contains(&value) {
        return Err(Error::config(format!("{key} = {value} is out of range: allowed {min} to {max}")));
    }
    Ok(value as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("", Path::new("")).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn relative_paths_follow_the_file() {
        let c = Config::from_toml("[catalog]\ndir = \"cat\"\n", Path::new("/etc/x")).unwrap();
        assert_eq!(c.catalog, PathBuf::from("/etc/x/cat"));
        assert_eq!(c.weights, default_weights());
        let c = Config::from_toml("[model]\nweights = \"w/r.safetensors\"\n", Path::new("/etc/x")).unwrap();
        assert_eq!(c.weights, PathBuf::from("/etc/x/w/r.safetensors"));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[model]\nbatchsize = 3\n", Path::new("")).unwrap_err();
        assert!(format!("{err:#}").contains("batchsize"), "{err:#}");
    }

    #[test]
    fn bad_value_is_named() {
        let err = Config::from_toml("[model]\nbatch_size = 0\n", Path::new("")).unwrap_err();
        assert!(format!("{err:#}").contains("model.batch_size"), "{err:#}");
        let err = Config::from_toml("[model]\nresize = \"squash\"\n", Path::new("")).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("resize") && msg.contains("stretch"), "{msg}");
    }

    #[test]
    fn repo_config_matches_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config.toml");
        let c = Config::from_file(&path).unwrap();
        let base = path.parent().unwrap();
        let d = Config::default();
        assert_eq!(c.catalog, base.join(&d.catalog));
        assert_eq!((c.resize, c.batch_size, c.threads, c.k), (d.resize, d.batch_size, d.threads, d.k));
        assert_eq!((c.descriptor, c.expand, c.index, c.device), (d.descriptor, d.expand, d.index, d.device));
        assert_eq!(c.weights, base.join("weights/resnet50.safetensors"));
        assert_eq!(c.ui.get("graphics").and_then(|g| g.as_str()), Some("auto"));
    }

    #[test]
    fn devices_are_read_and_checked() {
        let device = |d: &str| Config::from_toml(&format!("[model]\ndevice = \"{d}\"\n"), Path::new(""));
        assert_eq!(Config::default().device, Device::Auto);
        assert_eq!(device("cpu").unwrap().device, Device::Cpu);
        assert_eq!(device("auto").unwrap().device, Device::Auto);
        assert_eq!(device("cuda").unwrap().device, Device::Cuda(0));
        assert_eq!(device("cuda:2").unwrap().device, Device::Cuda(2));
        for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", "CPU"] {
            let err = device(bad).unwrap_err();
            assert!(matches!(err, Error::Device { ref device, .. } if device == bad), "{bad}: {err}");
            assert!(err.to_string().contains("\"auto\", \"cpu\" or \"cuda:N\""), "{err}");
        }
        for d in [Device::Auto, Device::Cpu, Device::Cuda(3)] {
            assert_eq!(d.to_string().parse::<Device>().unwrap(), d);
        }
    }

    #[test]
    fn the_batch_follows_the_device_unless_set() {
        let c = Config::from_toml("[model]\ndevice = \"cpu\"\n", Path::new("")).unwrap();
        assert_eq!(c.batch(), 16);
        let c = Config::from_toml("[model]\ndevice = \"cuda:0\"\nbatch_size = 8\n", Path::new("")).unwrap();
        assert_eq!(c.batch(), 8);
        // A build without CUDA runs every device setting on the CPU's batch size.
        let want = if candle_core::utils::cuda_is_available() { 64 } else { 16 };
        let c = Config { device: Device::Cuda(0), ..Config::default() };
        assert_eq!(c.batch(), want);
    }

    #[test]
    fn search_settings_are_read_and_checked() {
        let c = Config::from_toml(
            "[search]\ndescriptor = \"layer3+layer4\"\npower = 1\nwhiten = 0\nshrink = 0.5\nexpand = 0\n",
            Path::new(""),
        )
        .unwrap();
        let want = crate::descriptor::Recipe {
            layers: Layers::Both,
            power: 1.0,
            whiten: 0,
            shrink: 0.5,
            ..crate::descriptor::Recipe::DEFAULT
        };
        assert_eq!((c.descriptor, c.expand), (want, 0));
        for (bad, key) in
            [("power = 0", "search.power"), ("whiten = 5000", "search.whiten"), ("expand = -1", "search.expand")]
        {
            let err = Config::from_toml(&format!("[search]\n{bad}\n"), Path::new("")).unwrap_err();
            assert!(format!("{err:#}").contains(key), "{err:#}");
        }
        let err = Config::from_toml("[search]\ndescriptor = \"layer2\"\n", Path::new("")).unwrap_err();
        assert!(format!("{err:#}").contains("layer3"), "{err:#}");
    }
}
