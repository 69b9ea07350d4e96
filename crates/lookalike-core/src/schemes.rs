//! Catalog URL schemes: which source opens a catalog named `scheme://...`. The core has no
//! network code; a face registers the remote sources it links (the binary: `s3`), and
//! every face then opens catalogs alike through [`open`].

use std::sync::{Arc, RwLock};

use crate::catalog::{url_scheme, CatalogSource, LocalFolder};
use crate::config::Config;
use crate::error::{Error, Result};

/// Opens a catalog named by a URL of one scheme, with optional labels (a path or a URL).
pub type Opener = fn(url: &str, labels: Option<&str>, config: &Config) -> Result<Arc<dyn CatalogSource>>;

static SCHEMES: RwLock<Vec<(&str, Opener)>> = RwLock::new(Vec::new());

/// Makes catalogs named `scheme://...` open with `opener` (the binary registers S3).
pub fn register_scheme(scheme: &'static str, opener: Opener) {
    let mut schemes = SCHEMES.write().unwrap_or_else(|e| e.into_inner());
    schemes.retain(|(s, _)| *s != scheme);
    schemes.push((scheme, opener));
}

/// The catalog the configuration names: a local folder, or a URL of a registered scheme.
pub fn open(config: &Config) -> Result<Arc<dyn CatalogSource>> {
    let labels = config.labels.as_deref();
    let Some(scheme) = url_scheme(&config.catalog) else {
        if let Some(l) = labels.filter(|l| url_scheme(l).is_some()) {
            return Err(Error::config(format!(
                "labels {}: a URL needs a catalog behind the same kind of URL; copy the file next to {}",
                l.display(),
                config.catalog.display()
            )));
        }
        return Ok(Arc::new(LocalFolder::new(config.catalog.clone(), config.labels.clone())));
    };
    let url = config.catalog.to_string_lossy();
    let schemes = SCHEMES.read().unwrap_or_else(|e| e.into_inner());
    match schemes.iter().find(|(s, _)| *s == scheme) {
        Some((_, opener)) => opener(&url, labels.map(|l| l.to_str().unwrap_or_default()), config),
        None => {
            let known: Vec<String> = schemes.iter().map(|(s, _)| format!("{s}://")).collect();
            Err(Error::Catalog {
                catalog: url.into_owned(),
                reason: format!(
                    "no catalog source for {scheme}:// URLs in this build (it reads local folders{})",
                    if known.is_empty() { String::new() } else { format!(" and {}", known.join(", ")) }
                ),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn an_unknown_scheme_is_a_clear_error() {
        let config = Config { catalog: PathBuf::from("gopher://host/cat"), ..Config::default() };
        let err = open(&config).err().expect("no gopher source");
        assert!(format!("{err}").contains("no catalog source for gopher:// URLs"), "{err}");
    }
}
