//! S3-compatible object storage: `s3://bucket/prefix` as a catalog
//! ([`CatalogSource`](lookalike_core::catalog::CatalogSource)) and as the place states are
//! published to ([`Remote`](lookalike_core::published::Remote)). The core stays free of
//! network code; the binary calls [`register`] once and every face opens S3 catalogs and
//! published states through `lookalike_core::schemes`.

mod client;
mod error;
mod location;
mod profile;
mod published;
mod source;

pub use location::S3Location;
pub use published::S3Published;
pub use source::S3Catalog;

/// Makes `s3://` catalogs open with [`S3Catalog`] and `s3://` state folders with
/// [`S3Published`].
pub fn register() {
    lookalike_core::schemes::register_scheme(
        "s3",
        |url, labels, config| Ok(std::sync::Arc::new(S3Catalog::open(url, labels, config)?)),
        |url, config| Ok(Box::new(S3Published::open(url, config)?)),
    );
}
