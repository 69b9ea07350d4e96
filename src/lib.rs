//! lookalike: visual similarity search over fashion product catalogs.
//!
//! One module per concern: `model` (weights + embedding), `catalog` (files + metadata),
//! `store` (persisted vectors), `descriptor` (what searches compare: pooling, whitening,
//! query expansion), `index` (search), `engine` (the API the CLI and TUI share),
//! `eval` and `bench` (measurements), `weights` (fetching the model), `config`, `cli`,
//! `tui` (the terminal UI: state, actions, views, widgets, workers).

pub mod bench;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod demo;
pub mod descriptor;
pub mod engine;
pub mod eval;
pub mod index;
pub mod model;
pub mod store;
pub mod tui;
pub mod weights;
