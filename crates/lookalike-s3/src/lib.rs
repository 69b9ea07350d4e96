//! Catalogs in S3-compatible object storage: `s3://bucket/prefix` as a
//! [`CatalogSource`](lookalike_core::catalog::CatalogSource). The core stays free of
//! network code; the binary calls [`register`] once and every face opens S3 catalogs
//! through `lookalike_core::schemes::open`.

mod error;
mod location;
mod source;

pub use location::S3Location;
pub use source::S3Catalog;

/// Makes `s3://` catalogs open with [`S3Catalog`].
pub fn register() {
    lookalike_core::schemes::register_scheme("s3", |url, labels, config| {
        Ok(std::sync::Arc::new(S3Catalog::open(url, labels, config)?))
    });
}
