//! URL schemes: which catalog source opens a catalog named `scheme://...`, and which
//! [`Remote`] holds the published states of a `scheme://...` state folder. The core has no
//! network code; a face registers the schemes it links (the binary: `s3`), and every face
//! then opens catalogs and published states alike through [`open`] and [`open_published`].

use std::path::Path;
use std::sync::{Arc, RwLock};

use crate::catalog::{url_scheme, CatalogSource, LocalFolder};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::published::{self, PullReport, Remote};

/// Opens a catalog named by a URL of one scheme, with optional labels (a path or a URL).
pub type Opener = fn(url: &str, labels: Option<&str>, config: &Config) -> Result<Arc<dyn CatalogSource>>;
/// Opens the prefix of published states a URL of one scheme names.
pub type PublishedOpener = fn(url: &str, config: &Config) -> Result<Box<dyn Remote>>;

#[derive(Clone, Copy)]
struct Scheme {
    name: &'static str,
    catalog: Opener,
    published: PublishedOpener,
}

static SCHEMES: RwLock<Vec<Scheme>> = RwLock::new(Vec::new());

/// Makes catalogs and state folders named `scheme://...` open with these openers (the
/// binary registers S3).
pub fn register_scheme(name: &'static str, catalog: Opener, published: PublishedOpener) {
    let mut schemes = SCHEMES.write().unwrap_or_else(|e| e.into_inner());
    schemes.retain(|s| s.name != name);
    schemes.push(Scheme { name, catalog, published });
}

/// The registered scheme of `url`, or why there is none.
fn scheme_of(url: &Path) -> std::result::Result<Scheme, String> {
    let name = url_scheme(url).unwrap_or_default();
    let schemes = SCHEMES.read().unwrap_or_else(|e| e.into_inner());
    schemes.iter().find(|s| s.name == name).copied().ok_or_else(|| {
        let known: Vec<String> = schemes.iter().map(|s| format!("{}://", s.name)).collect();
        format!(
            "no support for {name}:// URLs in this build (it reads local folders{})",
            if known.is_empty() { String::new() } else { format!(" and {}", known.join(", ")) }
        )
    })
}

/// The catalog the configuration names: a local folder, or a URL of a registered scheme.
pub fn open(config: &Config) -> Result<Arc<dyn CatalogSource>> {
    let labels = config.labels.as_deref();
    if url_scheme(&config.catalog).is_none() {
        if let Some(l) = labels.filter(|l| url_scheme(l).is_some()) {
            return Err(Error::config(format!(
                "labels {}: a URL needs a catalog behind the same kind of URL; copy the file next to {}",
                l.display(),
                config.catalog.display()
            )));
        }
        return Ok(Arc::new(LocalFolder::new(config.catalog.clone(), config.labels.clone())));
    }
    let url = config.catalog.to_string_lossy();
    let scheme = scheme_of(&config.catalog).map_err(|reason| Error::Catalog { catalog: url.to_string(), reason })?;
    (scheme.catalog)(&url, labels.map(|l| l.to_str().unwrap_or_default()), config)
}

/// The published states under `url` (`lookalike publish` and `pull`).
pub fn open_published(url: &str, config: &Config) -> Result<Box<dyn Remote>> {
    let bad = |reason: String| Error::Published { at: url.to_string(), reason };
    if url_scheme(Path::new(url)).is_none() {
        return Err(bad("states are published to a URL such as s3://bucket/prefix".into()));
    }
    let scheme = scheme_of(Path::new(url)).map_err(bad)?;
    (scheme.published)(url, config)
}

/// Pulls the published state at `url` into its local folder (see [`published::pull`]).
pub fn pull(url: &str, config: &Config) -> Result<PullReport> {
    let remote = open_published(url, config)?;
    published::pull(remote.as_ref(), &published::local_folder(remote.as_ref(), config)?)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn an_unknown_scheme_is_a_clear_error() {
        let config = Config { catalog: PathBuf::from("gopher://host/cat"), ..Config::default() };
        let err = open(&config).err().expect("no gopher source");
        assert!(format!("{err}").contains("no support for gopher:// URLs"), "{err}");
        let err = open_published("gopher://host/state", &config).err().expect("no gopher remote");
        assert!(format!("{err}").contains("published state gopher://host/state: no support"), "{err}");
    }
}
