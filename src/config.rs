//! Settings: built-in defaults, then `config.toml`, then `LOOKALIKE_*` variables, then flags.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::descriptor::{Layers, Recipe};
use crate::model::ResizePolicy;

/// The file read when neither `--config` nor `LOOKALIKE_CONFIG` names one.
pub const DEFAULT_CONFIG_FILE: &str = "config.toml";

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Folder of product images, walked recursively.
    pub catalog: PathBuf,
    /// Kaggle-style `styles.csv`; `None` means `<catalog>/styles.csv` when present.
    pub labels: Option<PathBuf>,
    /// Where the store lives; `None` means a per-catalog folder under the user's data dir.
    pub state_dir: Option<PathBuf>,
    pub weights: PathBuf,
    pub resize: ResizePolicy,
    pub batch_size: usize,
    /// Compute threads; 0 means one per physical core.
    pub threads: usize,
    pub k: usize,
    /// What searches compare (pooling, power, whitening); changing it never re-embeds.
    pub descriptor: Recipe,
    /// Query expansion: neighbours averaged into each query; 0 = off.
    pub expand: usize,
    pub index: IndexConfig,
    pub graphics: Graphics,
}

/// How the TUI draws images; `auto` asks the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Graphics {
    #[default]
    Auto,
    Kitty,
    Sixel,
    Iterm2,
    Halfblocks,
}

/// How searches pick between exact and Annoy search, and how the Annoy index is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexConfig {
    pub mode: SearchMode,
    pub n_trees: usize,
    pub search_k: usize,
    /// Catalogs smaller than this are searched exactly in `auto` mode.
    pub exact_below: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig { mode: SearchMode::Auto, n_trees: 16, search_k: 4000, exact_below: 20_000 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// Annoy from `exact_below` items on, exact below.
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
            weights: PathBuf::from("weights/resnet50.safetensors"),
            resize: ResizePolicy::Crop,
            batch_size: 16,
            threads: 0,
            k: 10,
            descriptor: Recipe::DEFAULT,
            expand: 5,
            index: IndexConfig::default(),
            graphics: Graphics::Auto,
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
    ui: UiSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UiSection {
    graphics: Option<Graphics>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexSection {
    mode: Option<SearchMode>,
    n_trees: Option<i64>,
    search_k: Option<i64>,
    exact_below: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogSection {
    dir: Option<PathBuf>,
    labels: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    state_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelSection {
    weights: Option<PathBuf>,
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
}

impl Config {
    /// Resolves the configuration the way the binary does: file, environment, flags.
    pub fn load(overrides: &Overrides) -> Result<Config> {
        let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let explicit = overrides.config_file.clone().or_else(|| env("LOOKALIKE_CONFIG").map(PathBuf::from));
        let mut config = match &explicit {
            Some(path) => Config::from_file(path)?,
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => Config::from_file(Path::new(DEFAULT_CONFIG_FILE))?,
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
        if let Some(v) = env("LOOKALIKE_WEIGHTS") {
            config.weights = v.into();
        }
        if let Some(v) = env("LOOKALIKE_THREADS") {
            let text = v.to_string_lossy();
            config.threads = text
                .parse()
                .with_context(|| format!("LOOKALIKE_THREADS: {text:?} is not a thread count (0 = all cores)"))?;
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
        Ok(config)
    }

    /// Reads one TOML file; relative paths in it are taken from the file's folder.
    pub fn from_file(path: &Path) -> Result<Config> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        Config::from_toml(&text, base).with_context(|| format!("invalid config file {}", path.display()))
    }

    pub fn from_toml(text: &str, base: &Path) -> Result<Config> {
        let file: FileConfig = toml::from_str(text)?;
        let mut config = Config::default();
        let rel = |p: PathBuf| {
            if p.is_absolute() || base.as_os_str().is_empty() {
                p
            } else {
                base.join(p)
            }
        };
        // Relative defaults also follow the config file, so the repo works from any folder.
        config.catalog = rel(file.catalog.dir.unwrap_or(config.catalog));
        config.weights = rel(file.model.weights.unwrap_or(config.weights));
        config.labels = file.catalog.labels.filter(|p| !p.as_os_str().is_empty()).map(rel);
        config.state_dir = file.store.state_dir.filter(|p| !p.as_os_str().is_empty()).map(rel);
        if let Some(r) = file.model.resize {
            config.resize = r;
        }
        if let Some(v) = file.model.batch_size {
            config.batch_size = in_range("model.batch_size", v, 1, 1024)?;
        }
        if let Some(v) = file.model.threads {
            config.threads = in_range("model.threads", v, 0, 1024)?;
        }
        if let Some(v) = file.search.k {
            config.k = in_range("search.k", v, 1, 10_000)?;
        }
        let f = file.search;
        config.apply_search_settings(f.descriptor, f.power, f.whiten, f.shrink, f.expand)?;
        if let Some(m) = file.index.mode {
            config.index.mode = m;
        }
        if let Some(v) = file.index.n_trees {
            config.index.n_trees = in_range("index.n_trees", v, 1, 1024)?;
        }
        if let Some(v) = file.index.search_k {
            config.index.search_k = in_range("index.search_k", v, 1, i32::MAX as i64)?;
        }
        if let Some(v) = file.index.exact_below {
            config.index.exact_below = in_range("index.exact_below", v, 0, i64::MAX)?;
        }
        if let Some(g) = file.ui.graphics {
            config.graphics = g;
        }
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
        Ok(())
    }

    /// The styles.csv to use, if any: the configured one, or `<catalog>/styles.csv`.
    pub fn labels_path(&self) -> Option<PathBuf> {
        match &self.labels {
            Some(p) => Some(p.clone()),
            None => Some(self.catalog.join("styles.csv")).filter(|p| p.is_file()),
        }
    }

    /// The state folder: configured, or `<data dir>/lookalike/<catalog name>-<path hash>`
    /// so a read-only catalog works and several catalogs never share a store.
    pub fn state_dir(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.state_dir {
            return Ok(dir.clone());
        }
        let catalog = std::fs::canonicalize(&self.catalog)
            .with_context(|| format!("catalog folder {} not found", self.catalog.display()))?;
        let base = dirs::data_local_dir()
            .or_else(|| std::env::current_dir().ok().map(|d| d.join(".lookalike")))
            .context("no data folder: set LOOKALIKE_STATE_DIR or [store] state_dir")?;
        let name: String = catalog
            .file_name()
            .map(|n| n.to_string_lossy().chars().filter(|c| c.is_alphanumeric() || *c == '-' || *c == '_').collect())
            .unwrap_or_default();
        let hash = crate::store::hex(&sha2_of(catalog.as_os_str().as_encoded_bytes())[..6]);
        Ok(base.join("lookalike").join(format!("{name}-{hash}")))
    }
}

fn sha2_of(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

fn in_range(key: &str, value: i64, min: i64, max: i64) -> Result<usize> {
    if value < min || value > max {
        bail!("{key} = {value} is out of range: allowed {min} to {max}");
    }
    Ok(value as usize)
}

fn in_range_f(key: &str, value: f64, min: f64, max: f64) -> Result<f32> {
    if !(min..=max).contains(&value) {
        bail!("{key} = {value} is out of range: allowed {min} to {max}");
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
        assert_eq!(c.weights, PathBuf::from("/etc/x/weights/resnet50.safetensors"));
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
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let c = Config::from_file(&path).unwrap();
        let base = path.parent().unwrap();
        let d = Config::default();
        assert_eq!(c.catalog, base.join(&d.catalog));
        assert_eq!((c.resize, c.batch_size, c.threads, c.k), (d.resize, d.batch_size, d.threads, d.k));
        assert_eq!((c.descriptor, c.expand, c.index), (d.descriptor, d.expand, d.index));
    }

    #[test]
    fn search_settings_are_read_and_checked() {
        let c = Config::from_toml(
            "[search]\ndescriptor = \"layer3+layer4\"\npower = 1\nwhiten = 0\nshrink = 0.5\nexpand = 0\n",
            Path::new(""),
        )
        .unwrap();
        let want = crate::descriptor::Recipe { layers: Layers::Both, power: 1.0, whiten: 0, shrink: 0.5 };
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
