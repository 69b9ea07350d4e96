//! The search service: one opened catalog shared by any number of threads. Searches read
//! an immutable [`Snapshot`] (store, descriptors, vector index, metadata); `reload` swaps
//! in a new one after an index run, without loading the model again.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;

use crate::backend::Opening;
use crate::catalog::{self, CatalogSource, Field, Filter, Grouping, Product};
use crate::config::SearchMode;
use crate::descriptor::Space;
use crate::dupes::{Copies, GroupReport, KnownGroups, NearRun, SavedNear};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::index::device::DeviceExact;
use crate::index::exact::{dot, Exact};
use crate::index::forest::{self, Forest, ForestIndex};
use crate::index::{Request, Rows, Scored, VectorIndex};
use crate::model::{self, Opened};
use crate::steer::{self, ColourMode, Crop, Feedback, FeedbackWeights, Steering};
use crate::store::Store;

/// What to search with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Any image file; it is embedded.
    Image(PathBuf),
    /// An image's bytes (an upload); `name` says what it is in errors.
    Bytes { name: String, bytes: Vec<u8> },
    /// A catalog item, by product id or catalog-relative path; its stored vector is used
    /// and the item itself is left out of the results.
    Item(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    pub rank: usize,
    /// Where the user finds the item (the catalog's locator: a file path for folders).
    pub path: PathBuf,
    pub rel: String,
    pub id: String,
    /// Similarity to the query as given (before query expansion and feedback): an
    /// identical photo scores 1.
    pub score: f32,
    /// The similarity the ranking used (to the expanded, steered query): hits come in
    /// its order.
    pub rank_score: f32,
    pub metadata: Option<Product>,
    /// Ids of the catalog's copies of this photo, collapsed into this hit: byte-identical
    /// ones, and near-identical ones once a near run saved its groups.
    pub copies: Vec<String>,
}

/// Values of a metadata field in the catalog with their counts, most frequent first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Facet {
    pub field: String,
    pub values: Vec<(String, usize)>,
}

/// Value counts of `fields` over `products`, most frequent first (ties by value).
pub fn facets<'a>(products: impl Iterator<Item = &'a Product> + Clone, fields: &[Field]) -> Vec<Facet> {
    fields
        .iter()
        .map(|&field| {
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for p in products.clone() {
                let v = p.get(field);
                if !v.is_empty() {
                    *counts.entry(v).or_default() += 1;
                }
            }
            let mut values: Vec<(String, usize)> = counts.into_iter().map(|(v, n)| (v.to_string(), n)).collect();
            values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            Facet { field: field.column().to_string(), values }
        })
        .collect()
}

/// A catalog opened for searching; immutable, so any number of threads share it.
pub struct Snapshot {
    store: Store,
    space: Arc<Space>,
    rows: Arc<Rows>,
    index: Box<dyn VectorIndex>,
    note: Option<String>,
    /// The descriptors were made in memory: an index run would save them.
    unsaved: bool,
    expand: usize,
    source: Arc<dyn CatalogSource>,
    /// Byte-identical photos.
    exact: Copies,
    /// What searches collapse: the byte-identical groups joined with the saved
    /// near-identical ones.
    copies: Copies,
    /// The groups of the last near run that still hold for this version.
    near: Option<SavedNear>,
    /// Whether copies collapse into one hit (`[search] collapse`).
    collapse: bool,
    feedback: FeedbackWeights,
}

impl Snapshot {
    /// Opens the store and what searches need; `mode` overrides `[index] mode`. The
    /// descriptors and the Annoy index are used when they match the store; otherwise the
    /// search is exact over descriptors made in memory and [`Snapshot::note`] says why.
    pub fn open(engine: &Engine, mode: Option<SearchMode>) -> Result<Snapshot> {
        let store = engine.open_store()?;
        let config = engine.config();
        let state = engine.state();
        let (space, why_unsaved) = match Space::open(&state.descriptors()) {
            Ok(s) if s.matches(&store, &config.descriptor) => (s, None),
            found => {
                let why = match found {
                    Ok(_) => "saved ones are for other settings or another store".to_string(),
                    Err(e) => e.to_string(),
                };
                (Space::fit(&store, config.descriptor)?, Some(why))
            }
        };
        let space = Arc::new(space);
        let labels = engine.source().labels()?;
        let rows = Arc::new(Rows {
            products: store.entries().iter().map(|e| labels.get(catalog::product_id(&e.path)).cloned()).collect(),
        });
        let exact = Exact::new(space.clone(), rows.clone());
        let unsaved = why_unsaved.is_some();
        let mode = mode.unwrap_or(config.index.mode);
        // Large catalogs are searched exactly on the model's GPU, if it has one, rather
        // than by the Annoy trees (unless asked for), or by the CPU scan.
        let gpu = match mode != SearchMode::Approx && store.len() >= DEVICE_EXACT_FROM && engine.backend().is_none() {
            true => engine.device().ok().filter(Opened::is_gpu),
            false => None,
        };
        let (index, note): (Box<dyn VectorIndex>, _) = match why_unsaved {
            // Searches never write the state folder behind an index run's back.
            Some(why) => {
                let (index, gpu_note) = exact_index(exact, gpu.as_ref());
                let why = format!("searching exactly on descriptors made in memory ({why})");
                (index, Some(gpu_note.map_or(why.clone(), |n| format!("{why}; {n}"))))
            }
            None if engine.backend().is_some() => {
                let backend = engine.backend().unwrap();
                // In a database, `auto` means its HNSW index: its exact scan is the slow one
                // (25 ms against 2 at 9,583 items, bench/postgres_recall.py).
                let full_scan = mode == SearchMode::Exact;
                let catalog = engine.catalog_key()?;
                let opening =
                    Opening { catalog: &catalog, space: space.clone(), rows: rows.clone(), store: &store, full_scan };
                match backend.open(opening)? {
                    Ok(index) => (index, None),
                    // Never a query against another fit's vectors: this machine answers alone.
                    Err(why) => (Box::new(exact), Some(format!("searching here, not in {}: {why}", backend.at()))),
                }
            }
            None if mode != SearchMode::Exact && !space.is_empty() && gpu.is_none() => {
                match open_forest(engine, &store, &space, mode) {
                    Ok(Some(forest)) => (Box::new(ForestIndex::new(forest, exact)), None),
                    Ok(None) => (Box::new(exact), None),
                    Err(e) => (Box::new(exact), Some(format!("searching exactly: the Annoy index is unusable ({e})"))),
                }
            }
            None => exact_index(exact, gpu.as_ref()),
        };
        let exact_copies = Copies::exact(store.entries());
        let (near, note) = match SavedNear::load(&state.near_dupes(), &store) {
            Ok(near) => (near, note),
            // A damaged file only costs the collapsing of edited copies; the next near run rewrites it.
            Err(e) => (
                None,
                Some(
                    note.map_or_else(String::new, |n| format!("{n}; "))
                        + &format!("{e}: near-identical copies are not collapsed"),
                ),
            ),
        };
        let copies = match &near {
            Some(near) => exact_copies.with_near(store.entries(), near.row_sets(&store)),
            None => exact_copies.clone(),
        };
        Ok(Snapshot {
            exact: exact_copies,
            copies,
            near,
            collapse: config.collapse,
            feedback: config.feedback,
            store,
            unsaved,
            space,
            rows,
            index,
            note,
            expand: config.expand,
            source: engine.source().clone(),
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn len(&self) -> usize {
        self.store.len()
    }

    pub fn is_empty(&self) -> bool {
        self.store.is_empty()
    }

    /// The descriptors searches compare.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// The descriptors, shared.
    pub fn space_arc(&self) -> Arc<Space> {
        self.space.clone()
    }

    /// Neighbours averaged into each query (0 = no query expansion).
    pub fn expand(&self) -> usize {
        self.expand
    }

    /// "annoy" or "exact": what answers the searches.
    pub fn method(&self) -> &'static str {
        self.index.method()
    }

    /// Why the search is not what the settings asked for, if it is not.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// False when the descriptors were made in memory for this process (an index run
    /// saves them).
    pub fn descriptors_saved(&self) -> bool {
        !self.unsaved
    }

    pub fn product(&self, row: usize) -> Option<&Product> {
        self.rows.products.get(row).and_then(Option::as_ref)
    }

    /// Value counts of `fields` over the stored items, for filter menus.
    pub fn facets(&self, fields: &[Field]) -> Vec<Facet> {
        facets(self.rows.products.iter().flatten(), fields)
    }

    /// Row of a catalog item given by catalog-relative path or product id.
    pub fn find_item(&self, item: &str) -> Result<usize> {
        if let Some(row) = self.store.find(item) {
            return Ok(row);
        }
        let entries = self.store.entries();
        let rows: Vec<usize> = (0..entries.len()).filter(|&r| catalog::product_id(&entries[r].path) == item).collect();
        match rows.as_slice() {
            [row] => Ok(*row),
            [] => Err(Error::UnknownItem(item.to_string())),
            _ => Err(Error::AmbiguousItem {
                item: item.to_string(),
                candidates: rows.iter().map(|&r| entries[r].path.clone()).collect(),
            }),
        }
    }

    /// A query vector for a colour mode: as it is for `same`, without its colour for `any`.
    fn coloured(&self, vector: Vec<f32>, colour: ColourMode) -> Vec<f32> {
        match colour {
            ColourMode::Same => vector,
            ColourMode::Any => self.space.colourless(&vector),
        }
    }

    /// A colourless query at the weight a unit query's shape part has against the
    /// descriptors (whose shape parts carry `sqrt(1 - colour)`), so that adding
    /// descriptors to it (expansion, feedback) weighs them as a space without colour would.
    fn at_unit_weight(&self, vector: &[f32], colour: ColourMode) -> Vec<f32> {
        let share = if colour == ColourMode::Any { self.space.colour_share() } else { 0.0 };
        vector.iter().map(|x| x * (1.0 - share)).collect()
    }

    /// A query descriptor made ready to search: its colour dropped when the mode says
    /// so, then expanded by its `expand` nearest items (never the excluded ones; their
    /// colour dropped again). Gives the query as given (what hits' scores measure) and the
    /// vector the ranking uses.
    pub fn prepared(&self, query: Vec<f32>, exclude: &[usize], colour: ColourMode) -> Result<(Vec<f32>, Vec<f32>)> {
        let query = self.coloured(query, colour);
        if self.expand == 0 || self.space.is_empty() {
            return Ok((query.clone(), query));
        }
        let neighbours = self.index.search(&Request { vector: &query, k: self.expand, filters: &[], exclude })?;
        let vector = self.coloured(self.space.expand(&self.at_unit_weight(&query, colour), &neighbours), colour);
        Ok((query, vector))
    }

    /// A query vector moved by feedback on the given rows (Rocchio, `[search] feedback_*`).
    pub fn steered(&self, vector: &[f32], like: &[usize], unlike: &[usize], colour: ColourMode) -> Vec<f32> {
        let vectors = |rows: &[usize]| rows.iter().map(|&r| self.space.vector(r)).collect::<Vec<_>>();
        let moved =
            steer::rocchio(&self.at_unit_weight(vector, colour), &vectors(like), &vectors(unlike), self.feedback);
        self.coloured(moved, colour)
    }

    /// The k best rows for an (expanded) query vector.
    pub fn rank(&self, vector: &[f32], k: usize, filters: &[Filter], exclude: &[usize]) -> Result<Vec<Scored>> {
        self.index.search(&Request { vector, k, filters, exclude })
    }

    /// The groups of photos that collapse into one hit: byte-identical ones, and the
    /// near-identical ones a near run saved for this version.
    pub fn copies(&self) -> &Copies {
        &self.copies
    }

    /// The groups of byte-identical photos as `lookalike dupes` reports them.
    pub fn dupes(&self) -> Vec<GroupReport> {
        crate::dupes::report(self.store.entries(), &self.exact, |row| self.product(row).cloned())
    }

    /// The duplicate groups known without reading photos: the last near run's that still
    /// hold for this version, or the byte-identical ones when no near run was saved.
    pub fn known_dupes(&self) -> KnownGroups {
        match &self.near {
            Some(near) => KnownGroups {
                groups: near.reports(&self.store, |row| self.product(row).cloned()),
                near: self.saved_near_run(),
            },
            None => KnownGroups { groups: self.dupes(), near: None },
        }
    }

    /// The saved near run's threshold, and whether it looked at this very version (false:
    /// photos indexed since were not compared); `None` when no near run was saved.
    pub fn saved_near_run(&self) -> Option<(f32, bool)> {
        self.near.as_ref().map(|near| (near.threshold, near.is_current(&self.store)))
    }

    /// The near-identical groups of this version ([`crate::dupes::near_report`]): reads
    /// every photo again, so it takes minutes on a large catalog. The groups are saved
    /// in the state folder for searches opened later to collapse (where it is writable:
    /// the run says whether they were).
    pub fn near_dupes(&self, engine: &Engine, threshold: f32) -> Result<(Vec<GroupReport>, NearRun)> {
        let (groups, mut run) =
            crate::dupes::near_report(engine, self.store.entries(), &self.exact, &self.space, threshold)?;
        let path = engine.state().near_dupes();
        let saved = SavedNear::new(&self.store, threshold, &groups).save(&path);
        run.saved = Some(saved.map(|()| path).map_err(|e| e.to_string()));
        Ok((groups, run))
    }

    /// The groups of visually similar photos of this version
    /// ([`crate::dupes::similar_report`]): from the descriptors alone.
    pub fn similar_dupes(&self, threshold: f32) -> Result<Vec<GroupReport>> {
        crate::dupes::similar_report(self.store.entries(), &self.exact, &self.space, threshold, |row| {
            self.product(row).cloned()
        })
    }

    /// [`Snapshot::rank`] with copies collapsed into one hit (unless collapsing is off),
    /// so k hits are k different photos.
    pub fn rank_distinct(
        &self,
        vector: &[f32],
        k: usize,
        filters: &[Filter],
        exclude: &[usize],
    ) -> Result<Vec<Scored>> {
        if !self.collapse || self.copies.groups().is_empty() {
            return self.rank(vector, k, filters, exclude);
        }
        // Copies can take at most `extra_rows` places: asking for that many more fills k.
        let wanted = (k + self.copies.extra_rows()).min(self.len());
        Ok(self.copies.collapse(self.rank(vector, wanted, filters, exclude)?, k))
    }

    /// [`Snapshot::rank_distinct`] with at most `grouping.per` hits per value of its field:
    /// candidates are fetched in growing rounds until k hits pass or the catalog runs out.
    pub fn rank_grouped(
        &self,
        vector: &[f32],
        k: usize,
        filters: &[Filter],
        exclude: &[usize],
        grouping: Option<Grouping>,
    ) -> Result<Vec<Scored>> {
        let Some(g) = grouping else { return self.rank_distinct(vector, k, filters, exclude) };
        let mut wanted = (k * 4).min(self.len());
        loop {
            let ranked = self.rank_distinct(vector, wanted, filters, exclude)?;
            let exhausted = ranked.len() < wanted || wanted >= self.len();
            let mut seen: HashMap<&str, usize> = HashMap::new();
            let kept: Vec<Scored> = ranked
                .into_iter()
                .filter(|s| match self.product(s.row).map(|p| p.get(g.field)).filter(|v| !v.is_empty()) {
                    None => true,
                    Some(value) => {
                        let n = seen.entry(value).or_default();
                        *n += 1;
                        *n <= g.per
                    }
                })
                .take(k)
                .collect();
            if kept.len() == k || exhausted {
                return Ok(kept);
            }
            wanted = (wanted * 4).min(self.len());
        }
    }

    fn hit(&self, rank: usize, s: Scored, query: &[f32]) -> Hit {
        let entries = self.store.entries();
        let rel = entries[s.row].path.clone();
        let copies = self.copies.of(s.row).into_iter().filter(|&r| r != s.row);
        Hit {
            copies: copies.map(|r| catalog::product_id(&entries[r].path).to_string()).collect(),
            rank,
            path: self.source.locator(&rel),
            id: catalog::product_id(&rel).to_string(),
            metadata: self.product(s.row).cloned(),
            rel,
            score: dot(query, self.space.vector(s.row)),
            rank_score: s.score,
        }
    }
}

/// The Annoy trees of the state folder, rebuilt first (under the state lock) when they
/// are stale or damaged; none when `auto` finds from their measured cost that exact
/// search is the better choice.
/// Catalogs from this size on are searched on the model's GPU when it runs on one. A
/// provisional figure: exact search on the CPU takes about 1 ms at 10,000 items, and the
/// GPU's round trip is of that order; the GPU script (gpu/check.sh) measures both sides.
pub const DEVICE_EXACT_FROM: usize = 20_000;

/// Exact search, on `gpu` when given; a device that cannot take the descriptors (out of
/// memory) leaves the search on the CPU, and the note says why.
fn exact_index(exact: Exact, gpu: Option<&Opened>) -> (Box<dyn VectorIndex>, Option<String>) {
    let Some(gpu) = gpu else { return (Box::new(exact), None) };
    match DeviceExact::new(exact.clone(), &gpu.candle) {
        Ok(on_device) => (Box::new(on_device), None),
        Err(e) => (Box::new(exact), Some(format!("searching on the CPU, not on {}: {e}", gpu.name))),
    }
}

fn open_forest(engine: &Engine, store: &Store, space: &Space, mode: SearchMode) -> Result<Option<Forest>> {
    let (state, config) = (engine.state(), &engine.config().index);
    let (sidecar, delta) = match forest::current(state, store, space, config) {
        Some(current) => current,
        None => {
            let _lock = state.lock()?;
            match forest::build_for(state, store, space, config)? {
                Some(built) => built,
                None => return Ok(None),
            }
        }
    };
    if !forest::chooses(mode, &sidecar.cost) {
        return Ok(None);
    }
    Forest::open(state, &sidecar, delta).map(Some)
}

/// A query turned into a search vector against one snapshot.
pub struct QueryVector {
    snapshot: Arc<Snapshot>,
    /// The query's own descriptor, which hits' scores are measured against.
    query: Vec<f32>,
    /// What the ranking searches with: expanded, and steered by feedback.
    vector: Vec<f32>,
    exclude: Vec<usize>,
    colour: ColourMode,
}

impl QueryVector {
    /// The catalog version this vector searches.
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
}

/// The engine's searches, safe to share between threads (`Send + Sync`).
pub struct SearchService {
    engine: Arc<Engine>,
    mode: Option<SearchMode>,
    current: RwLock<Arc<Snapshot>>,
    /// The last query's vector: paging and filtering do not embed the image again.
    last: Mutex<Option<LastQuery>>,
}

/// A query's vector before feedback (which is cheap to apply again), and what it was for.
struct LastQuery {
    key: CacheKey,
    crop: Option<Crop>,
    colour: ColourMode,
    vector: Arc<QueryVector>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum CacheKey {
    Image { path: PathBuf, size: u64, modified: Option<std::time::SystemTime> },
    Item(String),
}

impl CacheKey {
    fn of(query: &Query) -> Option<CacheKey> {
        match query {
            Query::Image(path) => {
                let meta = std::fs::metadata(path).ok()?;
                Some(CacheKey::Image { path: path.clone(), size: meta.len(), modified: meta.modified().ok() })
            }
            Query::Item(item) => Some(CacheKey::Item(item.clone())),
            Query::Bytes { .. } => None,
        }
    }
}

impl SearchService {
    /// Opens the engine's catalog; `mode` overrides `[index] mode` for this service.
    pub fn open(engine: Arc<Engine>, mode: Option<SearchMode>) -> Result<SearchService> {
        let snapshot = Arc::new(Snapshot::open(&engine, mode)?);
        Ok(SearchService { engine, mode, current: RwLock::new(snapshot), last: Mutex::new(None) })
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The catalog as searches see it now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Opens the store again (after an index run); searches in flight finish on the old one.
    pub fn reload(&self) -> Result<()> {
        let snapshot = Arc::new(Snapshot::open(&self.engine, self.mode)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = snapshot;
        Ok(())
    }

    /// The query's expanded, steered search vector, embedding the image (or its region)
    /// when the query needs it.
    pub fn query_vector(&self, query: &Query, steering: &Steering) -> Result<Arc<QueryVector>> {
        let snapshot = self.snapshot();
        let key = CacheKey::of(query);
        let (crop, colour) = (steering.crop, steering.colour);
        let cached = self.last.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|last| {
            let same = Some(&last.key) == key.as_ref() && last.crop == crop && last.colour == colour;
            (same && Arc::ptr_eq(&last.vector.snapshot, &snapshot)).then(|| last.vector.clone())
        });
        let qv = match cached {
            Some(qv) => qv,
            None => {
                // Embedding can take a while: other threads' searches go on meanwhile.
                let features = match self.prepare(query, crop.as_ref()) {
                    None => None,
                    Some(photo) => {
                        let photo = photo?;
                        let features = self.engine.embedder()?.embed(std::slice::from_ref(&photo.input))?;
                        Some(model::row(&features, &photo.colour))
                    }
                };
                let qv = self.finish(&snapshot, query, steering, features)?;
                if let Some(key) = key {
                    *self.last.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(LastQuery { key, crop, colour, vector: qv.clone() });
                }
                qv
            }
        };
        self.steer(&qv, &steering.feedback)
    }

    /// An image query's network input and colour (decoded, cropped to the region);
    /// `None` for an item without a region, whose stored vector is used. With
    /// [`image_vector`](Self::image_vector) it lets a caller run the model itself (a
    /// server's batch worker) and do the rest on its own threads.
    pub fn prepare(&self, query: &Query, crop: Option<&Crop>) -> Option<Result<model::Photo>> {
        let policy = self.engine.config().resize;
        let (what, bytes) = match query {
            Query::Item(_) if crop.is_none() => return None,
            Query::Item(item) => {
                let snapshot = self.snapshot();
                let rel = match snapshot.find_item(item) {
                    Ok(row) => snapshot.store.entries()[row].path.clone(),
                    Err(e) => return Some(Err(e)),
                };
                (format!("catalog item {item}"), snapshot.source.read(&rel).map(Cow::Owned))
            }
            Query::Image(path) => (path.display().to_string(), crate::files::read_file(path).map(Cow::Owned)),
            // An upload is decoded where it is, not copied first.
            Query::Bytes { name, bytes } => (name.clone(), Ok(Cow::Borrowed(bytes.as_slice()))),
        };
        let img = match bytes.and_then(|b| model::decode_bytes(&b)) {
            Ok(img) => img,
            Err(reason) => return Some(Err(Error::BadImage { what, reason })),
        };
        Some(match crop {
            None => Ok(model::Photo::of(&img, policy)),
            Some(c) => c.apply(&img).map(|region| model::Photo::of(&region, policy)),
        })
    }

    /// Moves a query vector by feedback on catalog items (Rocchio): towards the ones
    /// liked (which stay in its results) and away from the ones unliked (left out).
    pub fn steer(&self, qv: &Arc<QueryVector>, feedback: &Feedback) -> Result<Arc<QueryVector>> {
        if feedback.is_empty() {
            return Ok(qv.clone());
        }
        let s = &qv.snapshot;
        let rows = |items: &[String]| items.iter().map(|i| s.find_item(i)).collect::<Result<Vec<usize>>>();
        let (like, unlike) = (rows(&feedback.like)?, rows(&feedback.unlike)?);
        let mut exclude = qv.exclude.clone();
        exclude.extend(unlike.iter().flat_map(|&r| s.copies.of(r)));
        exclude.sort_unstable();
        exclude.dedup();
        let vector = s.steered(&qv.vector, &like, &unlike, qv.colour);
        let query = qv.query.clone();
        Ok(Arc::new(QueryVector { snapshot: s.clone(), query, vector, exclude, colour: qv.colour }))
    }

    /// The steered search vector of a query whose prepared photo (from
    /// [`prepare`](Self::prepare)) the caller embedded: `row` is its features followed by
    /// its colour ([`model::row`]).
    pub fn image_vector(&self, query: &Query, steering: &Steering, row: Vec<f32>) -> Result<Arc<QueryVector>> {
        let qv = self.finish(&self.snapshot(), query, steering, Some(row))?;
        self.steer(&qv, &steering.feedback)
    }

    /// The search vector of a query, given the image's row (for image queries).
    fn finish(
        &self,
        snapshot: &Arc<Snapshot>,
        query: &Query,
        steering: &Steering,
        features: Option<Vec<f32>>,
    ) -> Result<Arc<QueryVector>> {
        let crop = steering.crop.as_ref();
        let (vector, exclude) = match (query, features) {
            (Query::Item(item), _) if crop.is_none() => {
                // The item is left out, and so are its copies.
                let row = snapshot.find_item(item)?;
                (snapshot.space.vector(row).to_vec(), snapshot.copies.of(row))
            }
            // A region of an item is a new photo, but the item itself is still left out.
            (Query::Item(item), Some(f)) => {
                (snapshot.space.describe(&f)?, snapshot.copies.of(snapshot.find_item(item)?))
            }
            (_, Some(f)) => (snapshot.space.describe(&f)?, Vec::new()),
            (_, None) => return Err(Error::failed("searching", "an image query without its features")),
        };
        let (query, vector) = snapshot.prepared(vector, &exclude, steering.colour)?;
        Ok(Arc::new(QueryVector { snapshot: snapshot.clone(), query, vector, exclude, colour: steering.colour }))
    }

    /// The k best matches of a query vector that pass every filter.
    pub fn search_vector(&self, query: &Arc<QueryVector>, k: usize, filters: &[Filter]) -> Result<Vec<Hit>> {
        self.search_grouped(query, k, filters, None)
    }

    /// [`search_vector`](Self::search_vector) with at most `grouping.per` hits per value
    /// of a metadata field.
    pub fn search_grouped(
        &self,
        query: &Arc<QueryVector>,
        k: usize,
        filters: &[Filter],
        grouping: Option<Grouping>,
    ) -> Result<Vec<Hit>> {
        let s = &query.snapshot;
        let ranked = s.rank_grouped(&query.vector, k, filters, &query.exclude, grouping)?;
        Ok(ranked.into_iter().enumerate().map(|(i, scored)| s.hit(i + 1, scored, &query.query)).collect())
    }

    pub fn search(&self, query: &Query, k: usize, filters: &[Filter]) -> Result<Vec<Hit>> {
        self.search_steered(query, &Steering::default(), k, filters)
    }

    pub fn search_steered(&self, query: &Query, steering: &Steering, k: usize, filters: &[Filter]) -> Result<Vec<Hit>> {
        self.search_vector(&self.query_vector(query, steering)?, k, filters)
    }

    /// Many searches at once: images are decoded in parallel and embedded in batches of
    /// `[model] batch_size`, so a list of photos costs about the batched embedding time. A
    /// bad query fails alone; the answers come in the order of the queries.
    pub fn search_many(
        &self,
        queries: &[Query],
        steering: &Steering,
        k: usize,
        filters: &[Filter],
        grouping: Option<Grouping>,
    ) -> Vec<Result<Vec<Hit>>> {
        let vectors = self.query_vectors(queries, steering);
        vectors.into_iter().map(|qv| self.search_grouped(&qv?, k, filters, grouping)).collect()
    }

    /// The search vectors of many queries against one snapshot, embedding their images
    /// together as [`search_many`](Self::search_many) does.
    pub fn query_vectors(&self, queries: &[Query], steering: &Steering) -> Vec<Result<Arc<QueryVector>>> {
        use rayon::prelude::*;
        let snapshot = self.snapshot();
        let crop = steering.crop.as_ref();
        let mut inputs: Vec<Option<Result<model::Photo>>> = queries.par_iter().map(|q| self.prepare(q, crop)).collect();
        let mut features: Vec<Option<Result<Vec<f32>>>> = (0..queries.len()).map(|_| None).collect();
        let ready: Vec<usize> = (0..queries.len()).filter(|&i| matches!(inputs[i], Some(Ok(_)))).collect();
        for chunk in ready.chunks(self.engine.config().batch()) {
            let photos: Vec<model::Photo> =
                chunk.iter().filter_map(|&i| inputs[i].take().and_then(Result::ok)).collect();
            let (batch, colours): (Vec<Vec<f32>>, Vec<Vec<f32>>) =
                photos.into_iter().map(|p| (p.input, p.colour)).unzip();
            match self.engine.embedder().and_then(|e| e.embed(&batch)) {
                Ok(out) => chunk
                    .iter()
                    .zip(out.chunks(model::FEATURE_DIMS).zip(&colours))
                    .for_each(|(&i, (f, c))| features[i] = Some(Ok(model::row(f, c)))),
                Err(e) => chunk.iter().for_each(|&i| features[i] = Some(Err(Error::Model(e.to_string())))),
            }
        }
        // Descriptors and query expansion on every core: serial, they would leave one idle
        // between model calls.
        inputs
            .into_par_iter()
            .zip(features)
            .zip(queries)
            .map(|((input, features), query)| {
                // A query that failed to decode keeps its error in `inputs`.
                let features = match (input, features) {
                    (Some(Err(e)), _) | (_, Some(Err(e))) => return Err(e),
                    (_, f) => f.and_then(Result::ok),
                };
                self.steer(&self.finish(&snapshot, query, steering, features)?, &steering.feedback)
            })
            .collect()
    }
}

// Servers share one service between their threads: checked at every build.
const fn assert_send_sync<T: Send + Sync>() {}
const _: () = assert_send_sync::<SearchService>();
const _: () = assert_send_sync::<Engine>();
