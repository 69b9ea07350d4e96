//! Vector indexes: nearest neighbours by cosine over unit vectors, behind one seam.
//! [`exact::Exact`] scans every row; [`forest::ForestIndex`] asks Annoy trees for
//! candidates and re-ranks them exactly. Filters reach an index as data, so an index in a
//! database can apply them itself.

pub mod annoy;
pub mod device;
pub mod exact;
pub mod forest;

use crate::catalog::{Filter, Product};
use crate::error::Result;

/// A search hit: row in the store and cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub row: usize,
    pub score: f32,
}

/// One search: the k best rows for `vector` among those that pass every filter and are
/// not excluded.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub vector: &'a [f32],
    pub k: usize,
    pub filters: &'a [Filter],
    pub exclude: &'a [usize],
}

pub trait VectorIndex: Send + Sync {
    /// "exact", "annoy", ...: what answers the searches.
    fn method(&self) -> &'static str;

    /// Best first; ties go to the lower row. Local indexes never fail; one in a database
    /// can (the database is down).
    fn search(&self, request: &Request) -> Result<Vec<Scored>>;
}

/// The metadata of every row, for indexes that apply filters in memory.
#[derive(Debug, Default)]
pub struct Rows {
    pub products: Vec<Option<Product>>,
}

impl Rows {
    /// True when `row` passes the request's filters and exclusions.
    pub fn keep(&self, request: &Request, row: usize) -> bool {
        !request.exclude.contains(&row) && self.passes(request.filters, row)
    }

    /// True when `row` passes every filter (exclusions aside).
    pub fn passes(&self, filters: &[Filter], row: usize) -> bool {
        filters.iter().all(|f| f.matches(self.products.get(row).and_then(Option::as_ref)))
    }
}
