//! What the TUI shows, as plain data: no I/O, no terminal, so tests can build and inspect it.

use std::path::{Path, PathBuf};

use lookalike_core::catalog::{self, Field, Filter};
use lookalike_core::dupes::Member;
use lookalike_core::review::{Decision, Decisions};
pub use lookalike_core::service::Facet;
use lookalike_core::{ColourMode, Crop, Feedback, Hit, Phase, Progress, Query};

/// Metadata fields offered by the `f` filter menu.
pub const FACET_FIELDS: [Field; 3] = [Field::ArticleType, Field::Gender, Field::BaseColour];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub is_dir: bool,
    pub size: u64,
}

impl DirEntry {
    pub fn hidden(&self) -> bool {
        self.name.starts_with('.')
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Files,
    Results,
    /// Stepping through groups of duplicate photos, recording keep and drop decisions.
    Review,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    Help,
    /// Picking which field to filter on; the last row clears all filters.
    FilterFields {
        selected: usize,
    },
    FilterValues {
        field: usize,
        selected: usize,
    },
    ConfirmRebuild,
}

/// The file picker: one folder's folders and images.
#[derive(Debug, Default)]
pub struct Files {
    pub dir: PathBuf,
    /// Folders first, then images, each sorted by name.
    pub entries: Vec<DirEntry>,
    pub loading: bool,
    /// Index into `visible()`.
    pub selected: usize,
    pub filter: String,
    /// Keys go to the filter text (after `/`).
    pub typing: bool,
    pub show_hidden: bool,
}

impl Files {
    pub fn visible(&self) -> Vec<&DirEntry> {
        let needle = self.filter.to_lowercase();
        self.entries
            .iter()
            .filter(|e| self.show_hidden || !e.hidden())
            .filter(|e| needle.is_empty() || e.name.to_lowercase().contains(&needle))
            .collect()
    }

    pub fn highlighted(&self) -> Option<&DirEntry> {
        self.visible().get(self.selected).copied()
    }

    pub fn highlighted_path(&self) -> Option<PathBuf> {
        self.highlighted().map(|e| self.dir.join(&e.name))
    }

    /// The highlighted entry's path when it is an image.
    pub fn highlighted_image(&self) -> Option<PathBuf> {
        self.highlighted().filter(|e| !e.is_dir).map(|e| self.dir.join(&e.name))
    }

    pub fn clamp(&mut self) {
        let n = self.visible().len();
        self.selected = self.selected.min(n.saturating_sub(1));
    }
}

/// What the current results were searched with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuerySource {
    /// Any image file, embedded by the model.
    File(PathBuf),
    /// A catalog item ("more like this"), searched with its stored vector.
    Item { rel: String, path: PathBuf },
}

impl QuerySource {
    pub fn engine_query(&self) -> Query {
        match self {
            QuerySource::File(p) => Query::Image(p.clone()),
            QuerySource::Item { rel, .. } => Query::Item(rel.clone()),
        }
    }

    pub fn image_path(&self) -> &Path {
        match self {
            QuerySource::File(p) => p,
            QuerySource::Item { path, .. } => path,
        }
    }

    pub fn label(&self) -> String {
        match self {
            QuerySource::File(p) => p.display().to_string(),
            QuerySource::Item { rel, .. } => format!("catalog item {}", catalog::product_id(rel)),
        }
    }
}

/// Results marked up or down, by catalog path, for the next refined search. Marks add up
/// over refinements of one query; a new query starts without them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    pub like: Vec<String>,
    pub unlike: Vec<String>,
}

impl Marks {
    /// `Some(true)` for marked up, `Some(false)` for down.
    pub fn of(&self, rel: &str) -> Option<bool> {
        if self.like.iter().any(|r| r == rel) {
            Some(true)
        } else if self.unlike.iter().any(|r| r == rel) {
            Some(false)
        } else {
            None
        }
    }

    /// Marks `rel` up (or down); the same mark again removes it.
    pub fn toggle(&mut self, rel: &str, up: bool) {
        let was = self.of(rel);
        self.like.retain(|r| r != rel);
        self.unlike.retain(|r| r != rel);
        if was != Some(up) {
            if up { &mut self.like } else { &mut self.unlike }.push(rel.to_string());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.like.is_empty() && self.unlike.is_empty()
    }

    pub fn feedback(&self) -> Feedback {
        Feedback { like: self.like.clone(), unlike: self.unlike.clone() }
    }
}

/// A region of the query photo in fractions of its width and height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl Region {
    pub const WHOLE: Region = Region { x: 0.0, y: 0.0, w: 1.0, h: 1.0 };
    /// What one key press moves or resizes by.
    pub const STEP: f32 = 0.05;
    /// The smallest side a region may shrink to.
    const MIN: f32 = 0.1;

    /// Moved by (dx, dy), kept inside the photo.
    pub fn moved(self, dx: f32, dy: f32) -> Region {
        Region { x: (self.x + dx).clamp(0.0, 1.0 - self.w), y: (self.y + dy).clamp(0.0, 1.0 - self.h), ..self }
    }

    /// Resized by (dw, dh) around its top-left corner, kept inside the photo.
    pub fn resized(self, dw: f32, dh: f32) -> Region {
        let w = (self.w + dw).clamp(Self::MIN, 1.0 - self.x);
        let h = (self.h + dh).clamp(Self::MIN, 1.0 - self.y);
        Region { w, h, ..self }
    }

    /// The region between two corners (any order), at least the smallest size.
    pub fn spanning(a: (f32, f32), b: (f32, f32)) -> Region {
        let side = |p: f32, q: f32| {
            let (lo, hi) = (p.min(q), p.max(q));
            let len = (hi - lo).max(Self::MIN);
            (lo.min(1.0 - len), len)
        };
        let ((x, w), (y, h)) = (side(a.0, b.0), side(a.1, b.1));
        Region { x, y, w, h }
    }

    pub fn crop(self) -> Crop {
        Crop::Fraction { x: self.x, y: self.y, w: self.w, h: self.h }
    }

    /// "region 10% 20%, 50%x60%" for captions.
    pub fn label(self) -> String {
        let p = |v: f32| (v * 100.0).round();
        format!("region {}% {}%, {}%x{}%", p(self.x), p(self.y), p(self.w), p(self.h))
    }
}

/// What covers the results grid instead of the tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zoom {
    Result,
    Query,
    SideBySide,
}

#[derive(Debug, Default)]
pub struct Results {
    pub hits: Vec<Hit>,
    /// Index into `hits`.
    pub selected: usize,
    pub seconds: f64,
    /// The last search returned fewer hits than asked for: there are no more pages.
    pub exhausted: bool,
    /// Strong matches: the hits before the sharpest drop in the ranking's scores.
    pub strong: Option<usize>,
    /// Each hit's place between the lowest (0) and highest (1) score of these results.
    pub standing: Vec<f32>,
}

/// One photo of a duplicate group, with where its image is read from.
#[derive(Debug, Clone)]
pub struct ReviewPhoto {
    pub path: PathBuf,
    pub member: Member,
}

/// A group of duplicate photos, its suggested keeper first.
#[derive(Debug, Clone)]
pub struct ReviewGroup {
    /// "exact" (the same bytes) or "near" (the same picture, edited).
    pub tier: &'static str,
    pub photos: Vec<ReviewPhoto>,
}

/// What the review steps through, as the search worker loaded it.
#[derive(Debug, Clone)]
pub struct ReviewData {
    pub groups: Vec<ReviewGroup>,
    /// Where the groups come from, in a line.
    pub source: String,
    pub decisions: Decisions,
}

/// The duplicate review: groups, where it stands, and the decisions made.
#[derive(Debug, Clone)]
pub struct Review {
    pub data: ReviewData,
    pub group: usize,
    /// Index into the group's photos.
    pub photo: usize,
}

impl Review {
    pub fn current(&self) -> Option<&ReviewGroup> {
        self.data.groups.get(self.group)
    }

    pub fn selected_photo(&self) -> Option<&ReviewPhoto> {
        self.current()?.photos.get(self.photo)
    }

    pub fn decision(&self, photo: &ReviewPhoto) -> Option<Decision> {
        self.data.decisions.get(&photo.member.rel)
    }

    /// Groups whose every photo has a decision.
    pub fn decided_groups(&self) -> usize {
        let decided = |g: &&ReviewGroup| g.photos.iter().all(|p| self.decision(p).is_some());
        self.data.groups.iter().filter(decided).count()
    }
}

/// The open catalog, as the search worker reported it.
#[derive(Debug, Default)]
pub struct CatalogState {
    pub dir: PathBuf,
    pub items: Option<usize>,
    pub method: &'static str,
    pub note: Option<String>,
    pub facets: Vec<Facet>,
    /// Why searching is not possible yet, and what to do about it.
    pub problem: Option<String>,
    pub model: ModelState,
}

/// The model, which a worker loads as soon as the catalog is open, so the first photo
/// query costs what later ones do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ModelState {
    #[default]
    NotLoaded,
    Loading,
    Loaded,
    /// Why not (photo queries say so again; item queries need no model).
    Failed(String),
}

impl ModelState {
    /// How the status bar names the model.
    pub fn label(&self) -> &'static str {
        match self {
            ModelState::NotLoaded | ModelState::Loaded => "resnet50",
            ModelState::Loading => "resnet50 loading…",
            ModelState::Failed(_) => "resnet50 not loaded",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reindex {
    pub full: bool,
    pub progress: Option<Progress>,
    /// Items per second in the current phase, once measurable.
    pub rate: Option<f64>,
    pub cancelling: bool,
}

impl Reindex {
    pub fn eta_seconds(&self) -> Option<f64> {
        let p = self.progress?;
        let rate = self.rate.filter(|r| *r > 0.0)?;
        (p.phase == Phase::Embedding).then(|| (p.total.saturating_sub(p.done)) as f64 / rate)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    pub error: bool,
}

pub struct App {
    pub view: View,
    pub overlay: Option<Overlay>,
    pub files: Files,
    pub query: Option<QuerySource>,
    /// Earlier queries, for Backspace in the results.
    pub history: Vec<QuerySource>,
    pub results: Results,
    pub filters: Vec<Filter>,
    /// Marks on results for the next refined search, and the feedback the current
    /// results were searched with.
    pub marks: Marks,
    pub applied: Feedback,
    /// The region of the query photo searched with, and the one being chosen (crop mode).
    pub region: Option<Region>,
    pub cropping: Option<Region>,
    /// Whether results share the query's colours (`a` toggles; kept across queries).
    pub colour: ColourMode,
    pub zoom: Option<Zoom>,
    /// The last click on a result (its index and when), to tell a double-click.
    pub last_click: Option<(usize, std::time::Instant)>,
    /// Where a drag over the query photo started (fractions), while choosing a region.
    pub drag_from: Option<(f32, f32)>,
    /// Id of the search in flight; older answers are dropped.
    pub searching: Option<u64>,
    pub next_search: u64,
    pub page: usize,
    /// Tiles per page, from the terminal size.
    pub per_page: usize,
    pub columns: usize,
    pub reindex: Option<Reindex>,
    /// The duplicate review, once loaded (`None` while loading or never opened).
    pub review: Option<Review>,
    /// The view the review returns to.
    pub before_review: View,
    pub catalog: CatalogState,
    pub status: Option<Status>,
    /// Graphics protocol in use, for the status bar.
    pub graphics: String,
    pub size: (u16, u16),
    /// Results per search at least (`[search] k`).
    pub k: usize,
    /// `o` may launch a viewer (not over SSH).
    pub local: bool,
    pub tick: usize,
    pub quit: bool,
}

impl App {
    pub fn new(start_dir: PathBuf, catalog: PathBuf, k: usize, graphics: String, local: bool) -> App {
        App {
            view: View::Files,
            overlay: None,
            files: Files { dir: start_dir, loading: true, ..Default::default() },
            query: None,
            history: Vec::new(),
            results: Results::default(),
            filters: Vec::new(),
            marks: Marks::default(),
            applied: Feedback::default(),
            region: None,
            colour: ColourMode::Same,
            cropping: None,
            zoom: None,
            last_click: None,
            drag_from: None,
            searching: None,
            next_search: 1,
            page: 0,
            per_page: 1,
            columns: 1,
            reindex: None,
            review: None,
            before_review: View::Files,
            catalog: CatalogState { dir: catalog, method: "exact", ..Default::default() },
            status: None,
            graphics,
            size: (0, 0),
            k: k.max(1),
            local,
            tick: 0,
            quit: false,
        }
    }

    /// The hits on the current page.
    pub fn page_hits(&self) -> &[Hit] {
        let start = (self.page * self.per_page).min(self.results.hits.len());
        let end = (start + self.per_page).min(self.results.hits.len());
        &self.results.hits[start..end]
    }

    pub fn selected_hit(&self) -> Option<&Hit> {
        self.results.hits.get(self.results.selected)
    }
}
