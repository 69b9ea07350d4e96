//! lookalike's engine, with no UI: catalogs, the model, the store, the descriptors, the
//! vector indexes, the index run and the search service. The CLI, the TUI (and servers)
//! are faces over it.
//!
//! Five seams let other backends plug in: [`catalog::CatalogSource`] (where photos and
//! labels come from), [`index::VectorIndex`] (what answers a search),
//! [`backend::SharedIndex`] (a database that holds the descriptors for many machines),
//! [`model::Embedder`] on a [`model::Device`] (what turns photos into features) and
//! [`published::Remote`] (where states are published for other machines); remote ones are
//! registered by URL scheme in [`schemes`], shared backends in [`backend`].

pub mod backend;
pub mod batcher;
pub mod bench;
pub mod catalog;
pub mod colour;
pub mod config;
pub mod demo;
pub mod descriptor;
pub mod dupes;
pub mod engine;
pub mod error;
pub mod eval;
pub mod files;
pub mod index;
pub mod indexer;
pub mod model;
pub mod near;
pub mod published;
pub mod review;
pub mod runtime;
pub mod schemes;
pub mod service;
pub mod state;
pub mod steer;
pub mod store;
pub mod strength;
pub mod weights;

pub use config::Config;
pub use engine::Engine;
pub use error::{Error, ErrorKind, Result};
pub use indexer::{Cancel, IndexReport, Phase, Progress};
pub use runtime::{peak_rss_mib, set_threads, threads};
pub use service::{Hit, Query, SearchService, Snapshot};
pub use steer::{ColourMode, Crop, Feedback, Steering};
