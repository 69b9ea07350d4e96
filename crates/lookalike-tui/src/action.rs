//! Update: keys and worker messages change the state and ask for effects; nothing here
//! touches the terminal, the disk or the model.

use std::path::PathBuf;

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};

pub use super::keymap::Action;
use super::state::{
    App, DirEntry, Facet, Marks, ModelState, Overlay, QuerySource, Region, Reindex, Review, ReviewData, Status, View,
    Zoom, FACET_FIELDS,
};
use super::{keymap, layout};
use lookalike_core::catalog::{Field, Filter};
use lookalike_core::review::{Decision, Decisions};
use lookalike_core::{strength, ColourMode, Feedback, Hit, IndexReport, Phase, Progress, Query, Steering};

/// Two clicks on one result within this time are a double-click.
const DOUBLE_CLICK: Duration = Duration::from_millis(400);

/// Results of work done off the UI thread.
#[derive(Debug)]
pub enum Msg {
    Listed {
        dir: PathBuf,
        entries: Result<Vec<DirEntry>, String>,
    },
    Opened {
        items: usize,
        method: &'static str,
        note: Option<String>,
        facets: Vec<Facet>,
    },
    OpenFailed(String),
    /// A worker started loading the model, or finished (with why not).
    ModelLoading,
    ModelLoaded(Result<(), String>),
    Found {
        id: u64,
        k: usize,
        outcome: Result<(Vec<Hit>, f64), String>,
    },
    Progress {
        progress: Progress,
        phase_seconds: f64,
    },
    Reindexed(Result<Box<IndexReport>, String>),
    /// The duplicate groups and the decisions saved so far, or why not.
    ReviewLoaded(Result<Box<ReviewData>, String>),
    /// An effect failed (no system viewer, ...).
    Problem(String),
}

/// Work the runtime does for the state.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    ListDir(PathBuf),
    Search {
        id: u64,
        query: Query,
        steering: Steering,
        k: usize,
        filters: Vec<Filter>,
    },
    /// Reopen the store (after a reindex).
    Reopen,
    Reindex {
        full: bool,
    },
    CancelReindex,
    /// Load the duplicate groups and the saved decisions.
    LoadReview,
    /// Save the review's decisions (each change saves them all, atomically).
    SaveReview(Decisions),
    Open(PathBuf),
    Copy(String),
}

pub fn action_for(app: &App, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return matches!(key.code, KeyCode::Char('c')).then_some(Action::Quit);
    }
    if app.overlay == Some(Overlay::ConfirmRebuild) {
        return Some(match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => Action::Yes,
            _ => Action::No,
        });
    }
    if app.cropping.is_some() && app.overlay.is_none() {
        return keymap::lookup_in(keymap::CROP_KEYMAP, key.code);
    }
    if app.view == View::Review && app.overlay.is_none() {
        return keymap::lookup_in(keymap::REVIEW_KEYMAP, key.code);
    }
    if app.view == View::Files && app.files.typing && app.overlay.is_none() {
        return match key.code {
            KeyCode::Char(c) => Some(Action::Type(c)),
            KeyCode::Backspace => Some(Action::Erase),
            KeyCode::Enter => Some(Action::Enter),
            KeyCode::Esc => Some(Action::Escape),
            KeyCode::Up => Some(Action::Up),
            KeyCode::Down => Some(Action::Down),
            KeyCode::Tab => Some(Action::SwitchView),
            _ => None,
        };
    }
    let action = keymap::lookup(key.code)?;
    Some(if app.view == View::Files { keymap::action_in_picker(key.code, action) } else { action })
}

impl App {
    fn say(&mut self, text: impl Into<String>) {
        self.status = Some(Status { text: text.into(), error: false });
    }

    fn complain(&mut self, text: impl Into<String>) {
        self.status = Some(Status { text: text.into(), error: true });
    }

    /// The terminal's size decides how many tiles make a page.
    pub fn resize(&mut self, width: u16, height: u16) {
        self.size = (width, height);
        let grid = layout::grid(layout::screen(ratatui::layout::Rect::new(0, 0, width, height)).grid);
        self.columns = grid.columns.max(1);
        self.per_page = (grid.columns * grid.rows).max(1);
        self.page = self.results.selected / self.per_page;
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        match action_for(self, key) {
            Some(action) => self.update(action),
            None => Vec::new(),
        }
    }

    pub fn update(&mut self, action: Action) -> Vec<Effect> {
        // A key press acknowledges the last message.
        self.status = None;
        match (action, self.overlay) {
            (Action::Quit, _) => {
                self.quit = true;
                return if self.reindex.is_some() { vec![Effect::CancelReindex] } else { Vec::new() };
            }
            (Action::Yes, Some(Overlay::ConfirmRebuild)) => {
                self.overlay = None;
                return self.start_reindex(true);
            }
            (_, Some(Overlay::ConfirmRebuild)) => {
                self.overlay = None;
                self.say("full rebuild cancelled");
                return Vec::new();
            }
            (Action::Help, Some(Overlay::Help)) | (Action::Escape, Some(_)) => {
                self.overlay = None;
                return Vec::new();
            }
            (Action::Help, _) => {
                self.overlay = Some(Overlay::Help);
                return Vec::new();
            }
            (_, Some(Overlay::Help)) => return Vec::new(),
            (_, Some(Overlay::FilterFields { selected })) => return self.filter_fields(action, selected),
            (_, Some(Overlay::FilterValues { field, selected })) => return self.filter_values(action, field, selected),
            _ => {}
        }
        if let Some(region) = self.cropping {
            return self.crop_action(action, region);
        }
        if self.view == View::Review {
            return self.review_action(action);
        }
        match action {
            Action::SwitchView => {
                self.view = match self.view {
                    View::Files => View::Results,
                    _ => View::Files,
                };
                self.files.typing = false;
                Vec::new()
            }
            Action::Review => {
                self.before_review = self.view;
                self.view = View::Review;
                vec![Effect::LoadReview]
            }
            Action::Reindex => self.start_reindex(false),
            Action::FullRebuild => {
                if self.reindex.is_some() {
                    self.say("a reindex is already running (Esc cancels it)");
                } else {
                    self.overlay = Some(Overlay::ConfirmRebuild);
                }
                Vec::new()
            }
            Action::Escape if self.reindex.is_some() && !(self.view == View::Files && self.files.typing) => {
                if let Some(r) = &mut self.reindex {
                    r.cancelling = true;
                }
                self.say("cancelling the reindex after the current batch; finished work is kept");
                vec![Effect::CancelReindex]
            }
            _ => match self.view {
                View::Files => self.files_action(action),
                _ => self.results_action(action),
            },
        }
    }

    /// Keys in the duplicate review; every decision is saved at once.
    fn review_action(&mut self, action: Action) -> Vec<Effect> {
        if action == Action::Review {
            self.view = self.before_review;
            return Vec::new();
        }
        let Some(review) = &mut self.review else { return Vec::new() };
        let Some(group) = review.data.groups.get(review.group) else { return Vec::new() };
        let (n_groups, n_photos) = (review.data.groups.len(), group.photos.len());
        let Some(selected) = group.photos.get(review.photo).cloned() else { return Vec::new() };
        match action {
            Action::Left => review.photo = review.photo.saturating_sub(1),
            Action::Right => review.photo = (review.photo + 1).min(n_photos - 1),
            Action::Up | Action::Down => {
                review.group = if action == Action::Up {
                    review.group.saturating_sub(1)
                } else {
                    (review.group + 1).min(n_groups - 1)
                };
                review.photo = 0;
            }
            Action::Keep | Action::Drop | Action::Undecide => {
                let d = match action {
                    Action::Keep => Some(Decision::Keep),
                    Action::Drop => Some(Decision::Drop),
                    _ => None,
                };
                review.data.decisions.set(&selected.member.rel, d);
                return vec![Effect::SaveReview(review.data.decisions.clone())];
            }
            Action::AcceptSuggestion => {
                for p in &group.photos {
                    let d = if p.member.keeper { Decision::Keep } else { Decision::Drop };
                    review.data.decisions.set(&p.member.rel, Some(d));
                }
                if review.group + 1 < n_groups {
                    review.group += 1;
                    review.photo = 0;
                }
                return vec![Effect::SaveReview(review.data.decisions.clone())];
            }
            Action::Open => return self.open(selected.path),
            Action::Copy => return self.copy(selected.path),
            _ => {}
        }
        Vec::new()
    }

    fn files_action(&mut self, action: Action) -> Vec<Effect> {
        let files = &mut self.files;
        let n = files.visible().len();
        match action {
            Action::Up => files.selected = files.selected.saturating_sub(1),
            Action::Down => files.selected = (files.selected + 1).min(n.saturating_sub(1)),
            Action::StartTyping => files.typing = true,
            Action::Type(c) => {
                files.filter.push(c);
                files.selected = 0;
            }
            Action::Erase => {
                files.filter.pop();
                files.clamp();
            }
            Action::Escape => {
                files.typing = false;
                files.filter.clear();
                files.clamp();
            }
            Action::ToggleHidden => {
                files.show_hidden = !files.show_hidden;
                files.clamp();
            }
            Action::Home => match dirs::home_dir() {
                Some(home) => return self.go_to(home),
                None => self.complain("no home folder is known (HOME is not set)"),
            },
            Action::Back => {
                if let Some(parent) = files.dir.parent().map(PathBuf::from) {
                    return self.go_to(parent);
                }
            }
            Action::Enter | Action::Right => {
                files.typing = false;
                match files.highlighted() {
                    Some(e) if e.is_dir => {
                        let dir = files.dir.join(&e.name);
                        return self.go_to(dir);
                    }
                    Some(_) if action == Action::Enter => {
                        let path = files.highlighted_path().expect("highlighted entry");
                        return self.new_query(QuerySource::File(path));
                    }
                    _ => {}
                }
            }
            Action::Copy => {
                if let Some(path) = files.highlighted_path() {
                    return self.copy(path);
                }
            }
            Action::Open => {
                if let Some(path) = files.highlighted_path() {
                    return self.open(path);
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn results_action(&mut self, action: Action) -> Vec<Effect> {
        let cols = self.columns;
        let selected = self.results.selected;
        let target = match action {
            Action::Left => Some(selected.saturating_sub(1)),
            Action::Right => Some(selected + 1),
            Action::Up => Some(selected.saturating_sub(cols)),
            Action::Down => Some(selected + cols),
            Action::NextPage => Some((self.page + 1) * self.per_page),
            Action::PrevPage => Some(self.page.saturating_sub(1) * self.per_page),
            _ => None,
        };
        if let Some(target) = target {
            return self.select(target);
        }
        match action {
            Action::Enter => {
                if let Some(hit) = self.selected_hit() {
                    let q = QuerySource::Item { rel: hit.rel.clone(), path: hit.path.clone() };
                    return self.new_query(q);
                }
            }
            Action::Back => {
                if let Some(previous) = self.history.pop() {
                    self.query = Some(previous);
                    self.forget_steering();
                    self.reset_results();
                    return self.search();
                }
                self.say("no earlier query");
            }
            Action::FilterMenu => {
                if self.catalog.facets.iter().all(|f| f.values.is_empty()) {
                    self.complain("no product metadata to filter on (no styles.csv for this catalog)");
                } else {
                    self.overlay = Some(Overlay::FilterFields { selected: 0 });
                }
            }
            Action::Escape if self.zoom.is_some() => self.zoom = None,
            Action::Escape if !self.filters.is_empty() => {
                self.filters.clear();
                self.reset_results();
                return self.search();
            }
            Action::ZoomResult | Action::ZoomQuery | Action::SideBySide => {
                let zoom = match action {
                    Action::ZoomResult => Zoom::Result,
                    Action::ZoomQuery => Zoom::Query,
                    _ => Zoom::SideBySide,
                };
                self.zoom = if self.zoom == Some(zoom) { None } else { Some(zoom) };
            }
            Action::Like | Action::Unlike => {
                if let Some(hit) = self.selected_hit() {
                    let rel = hit.rel.clone();
                    self.marks.toggle(&rel, action == Action::Like);
                    let (up, down) = (self.marks.like.len(), self.marks.unlike.len());
                    self.say(format!("marked {up} up, {down} down: s searches again with them, x clears them"));
                }
            }
            Action::Refine => {
                if self.marks.is_empty() {
                    self.complain("no marks yet: + and - mark the selected result first");
                } else if self.marks.feedback() == self.applied {
                    self.say("these results already use every mark");
                } else {
                    self.applied = self.marks.feedback();
                    self.reset_results();
                    return self.search();
                }
            }
            Action::ClearMarks => {
                self.marks = Marks::default();
                if !self.applied.is_empty() {
                    self.applied = Feedback::default();
                    self.reset_results();
                    return self.search();
                }
            }
            Action::Crop => match &self.query {
                Some(_) => self.cropping = Some(self.region.unwrap_or(Region::WHOLE)),
                None => self.complain("no query photo yet: pick one in the file picker (Tab)"),
            },
            Action::ToggleColour => {
                self.colour = match self.colour {
                    ColourMode::Same => ColourMode::Any,
                    ColourMode::Any => ColourMode::Same,
                };
                self.say(match self.colour {
                    ColourMode::Any => "this look in any colour (a: the query's colours again)",
                    ColourMode::Same => "this look in the query's colours (a: any colour)",
                });
                if self.query.is_some() {
                    self.reset_results();
                    return self.search();
                }
            }
            Action::ClearRegion if self.region.is_some() => {
                self.region = None;
                self.reset_results();
                return self.search();
            }
            Action::Open => {
                if let Some(hit) = self.selected_hit() {
                    let path = hit.path.clone();
                    return self.open(path);
                }
            }
            Action::Copy => {
                if let Some(hit) = self.selected_hit() {
                    let path = hit.path.clone();
                    return self.copy(path);
                }
            }
            _ => {}
        }
        Vec::new()
    }

    /// Keys while choosing a region of the query photo.
    fn crop_action(&mut self, action: Action, region: Region) -> Vec<Effect> {
        let step = Region::STEP;
        let next = match action {
            Action::Up => region.moved(0.0, -step),
            Action::Down => region.moved(0.0, step),
            Action::Left => region.moved(-step, 0.0),
            Action::Right => region.moved(step, 0.0),
            Action::Narrower => region.resized(-step, 0.0),
            Action::Wider => region.resized(step, 0.0),
            Action::Shorter => region.resized(0.0, -step),
            Action::Taller => region.resized(0.0, step),
            Action::Crop => Region::WHOLE,
            Action::Enter => {
                self.cropping = None;
                // The whole photo is no region at all.
                self.region = (region != Region::WHOLE).then_some(region);
                self.reset_results();
                return self.search();
            }
            Action::Escape => {
                self.cropping = None;
                return Vec::new();
            }
            _ => region,
        };
        self.cropping = Some(next);
        Vec::new()
    }

    /// A mouse event: a click selects a result, a double-click searches for more like it,
    /// the wheel moves through the results or the file list; while choosing a region, a
    /// drag over the query photo (drawn at `photo`) draws the region.
    pub fn on_mouse(&mut self, event: MouseEvent, now: Instant, photo: Option<ratatui::layout::Rect>) -> Vec<Effect> {
        if self.overlay.is_some() {
            return Vec::new();
        }
        if self.cropping.is_some() {
            if let Some(photo) = photo {
                self.drag_region(event, photo);
            }
            return Vec::new();
        }
        match event.kind {
            MouseEventKind::ScrollDown => return self.update(Action::Down),
            MouseEventKind::ScrollUp => return self.update(Action::Up),
            MouseEventKind::Down(MouseButton::Left) if self.view == View::Results && self.zoom.is_none() => {}
            _ => return Vec::new(),
        }
        let area = ratatui::layout::Rect::new(0, 0, self.size.0, self.size.1);
        if layout::too_small(area) {
            return Vec::new();
        }
        let grid = layout::grid(layout::screen(area).grid);
        let at = ratatui::layout::Position::new(event.column, event.row);
        let Some(i) = grid.tiles.iter().position(|t| t.contains(at)) else { return Vec::new() };
        let index = self.page * self.per_page + i;
        if index >= self.results.hits.len() {
            return Vec::new();
        }
        let double = self.last_click.is_some_and(|(j, t)| j == index && now.duration_since(t) <= DOUBLE_CLICK);
        self.status = None;
        self.results.selected = index;
        if double {
            self.last_click = None;
            return self.update(Action::Enter);
        }
        self.last_click = Some((index, now));
        Vec::new()
    }

    /// A press on the photo anchors a corner of the region; dragging sets the other one.
    fn drag_region(&mut self, event: MouseEvent, photo: ratatui::layout::Rect) {
        let at = |col: u16, row: u16| {
            let f =
                |v: u16, start: u16, len: u16| ((v.saturating_sub(start)) as f32 / len.max(1) as f32).clamp(0.0, 1.0);
            (f(col, photo.x, photo.width), f(row, photo.y, photo.height))
        };
        let (x, y) = at(event.column, event.row);
        match event.kind {
            MouseEventKind::Down(MouseButton::Left) if photo.contains((event.column, event.row).into()) => {
                self.drag_from = Some((x, y));
            }
            MouseEventKind::Drag(MouseButton::Left) => {
                if let Some((x0, y0)) = self.drag_from {
                    self.cropping = Some(Region::spanning((x0, y0), (x, y)));
                }
            }
            MouseEventKind::Up(_) => self.drag_from = None,
            _ => {}
        }
    }

    /// Moves the selection, fetching more results when it goes past the ones we have.
    fn select(&mut self, target: usize) -> Vec<Effect> {
        let n = self.results.hits.len();
        if n == 0 {
            return Vec::new();
        }
        if target < n {
            self.results.selected = target;
            self.page = target / self.per_page;
            return Vec::new();
        }
        if self.results.exhausted {
            if target / self.per_page > self.page {
                self.say("no more results");
            }
            self.results.selected = n - 1;
            self.page = (n - 1) / self.per_page;
            return Vec::new();
        }
        if self.searching.is_some() {
            return Vec::new();
        }
        // Past the hits we have: ask for more; the selection is clamped when they arrive.
        self.results.selected = target;
        self.page = target / self.per_page;
        self.search()
    }

    fn go_to(&mut self, dir: PathBuf) -> Vec<Effect> {
        self.files.dir = dir.clone();
        self.files.entries.clear();
        self.files.selected = 0;
        self.files.filter.clear();
        self.files.typing = false;
        self.files.loading = true;
        vec![Effect::ListDir(dir)]
    }

    fn reset_results(&mut self) {
        self.results = Default::default();
        self.page = 0;
    }

    fn new_query(&mut self, query: QuerySource) -> Vec<Effect> {
        if let Some(old) = self.query.replace(query) {
            self.history.push(old);
        }
        self.view = View::Results;
        self.forget_steering();
        self.reset_results();
        self.search()
    }

    /// A new query starts without the old one's marks, region and zoom.
    fn forget_steering(&mut self) {
        self.marks = Marks::default();
        self.applied = Feedback::default();
        self.region = None;
        self.cropping = None;
        self.zoom = None;
    }

    /// Asks for the current query's results up to the end of the current page.
    pub fn search(&mut self) -> Vec<Effect> {
        let Some(query) = &self.query else { return Vec::new() };
        if let Some(problem) = &self.catalog.problem {
            let problem = problem.clone();
            self.complain(problem);
            return Vec::new();
        }
        let id = self.next_search;
        self.next_search += 1;
        self.searching = Some(id);
        let k = self.k.max((self.page + 1) * self.per_page);
        let steering =
            Steering { crop: self.region.map(Region::crop), feedback: self.applied.clone(), colour: self.colour };
        vec![Effect::Search { id, query: query.engine_query(), steering, k, filters: self.filters.clone() }]
    }

    fn start_reindex(&mut self, full: bool) -> Vec<Effect> {
        if self.reindex.is_some() {
            self.say("a reindex is already running (Esc cancels it)");
            return Vec::new();
        }
        self.reindex = Some(Reindex { full, progress: None, rate: None, cancelling: false });
        vec![Effect::Reindex { full }]
    }

    fn open(&mut self, path: PathBuf) -> Vec<Effect> {
        if self.local {
            vec![Effect::Open(path)]
        } else {
            self.complain("this is a remote session: o opens files only locally; y copies the path");
            Vec::new()
        }
    }

    fn copy(&mut self, path: PathBuf) -> Vec<Effect> {
        let text = path.display().to_string();
        self.say(format!("copied {text} (OSC 52)"));
        vec![Effect::Copy(text)]
    }

    fn filter_fields(&mut self, action: Action, selected: usize) -> Vec<Effect> {
        let rows = FACET_FIELDS.len() + 1;
        match action {
            Action::Up => self.overlay = Some(Overlay::FilterFields { selected: selected.saturating_sub(1) }),
            Action::Down => self.overlay = Some(Overlay::FilterFields { selected: (selected + 1).min(rows - 1) }),
            Action::Enter | Action::Right | Action::FilterMenu => {
                if selected == FACET_FIELDS.len() {
                    self.overlay = None;
                    self.filters.clear();
                    self.reset_results();
                    return self.search();
                }
                self.overlay = Some(Overlay::FilterValues { field: selected, selected: 0 });
            }
            Action::Quit => self.quit = true,
            _ => {}
        }
        Vec::new()
    }

    fn filter_values(&mut self, action: Action, field: usize, selected: usize) -> Vec<Effect> {
        let values = self.facet(FACET_FIELDS[field]).map(|f| f.values.len()).unwrap_or(0);
        match action {
            Action::Up => self.overlay = Some(Overlay::FilterValues { field, selected: selected.saturating_sub(1) }),
            Action::Down => {
                self.overlay =
                    Some(Overlay::FilterValues { field, selected: (selected + 1).min(values.saturating_sub(1)) })
            }
            Action::Back | Action::Left => self.overlay = Some(Overlay::FilterFields { selected: field }),
            Action::Enter => {
                self.overlay = None;
                let name = FACET_FIELDS[field];
                let Some(value) = self.facet(name).and_then(|f| f.values.get(selected)).map(|v| v.0.clone()) else {
                    return Vec::new();
                };
                self.filters.retain(|f| f.field != name);
                self.filters.push(Filter { field: name, value });
                self.reset_results();
                return self.search();
            }
            _ => {}
        }
        Vec::new()
    }

    pub fn facet(&self, field: Field) -> Option<&Facet> {
        self.catalog.facets.iter().find(|f| f.field == field.column())
    }

    pub fn on_msg(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Listed { dir, entries } => {
                if dir != self.files.dir {
                    return Vec::new();
                }
                self.files.loading = false;
                match entries {
                    Ok(entries) => self.files.entries = entries,
                    Err(e) => self.complain(e),
                }
                self.files.clamp();
            }
            Msg::Opened { items, method, note, facets } => {
                self.catalog.items = Some(items);
                self.catalog.method = method;
                self.catalog.note = note;
                self.catalog.facets = facets;
                self.catalog.problem = None;
                if self.query.is_some() {
                    return self.search();
                }
            }
            Msg::OpenFailed(problem) => {
                self.catalog.items = None;
                self.catalog.problem = Some(problem);
            }
            Msg::ModelLoading => self.catalog.model = ModelState::Loading,
            Msg::ModelLoaded(Ok(())) => self.catalog.model = ModelState::Loaded,
            Msg::ModelLoaded(Err(why)) => {
                self.say(format!("item searches only: the model is not loaded ({why})"));
                self.catalog.model = ModelState::Failed(why);
            }
            Msg::Found { id, k, outcome } => {
                if self.searching != Some(id) {
                    return Vec::new();
                }
                self.searching = None;
                match outcome {
                    Ok((hits, seconds)) => {
                        self.results.exhausted = hits.len() < k;
                        let scores: Vec<f32> = hits.iter().map(|h| h.score).collect();
                        self.results.standing = strength::standing(&scores);
                        self.results.strong = strength::strong_hits(&hits);
                        self.results.hits = hits;
                        self.results.seconds = seconds;
                        let n = self.results.hits.len();
                        self.results.selected = self.results.selected.min(n.saturating_sub(1));
                        self.page = self.results.selected / self.per_page;
                        if n == 0 {
                            self.say(if self.filters.is_empty() {
                                "no matches"
                            } else {
                                "no matches with these filters (Esc clears them)"
                            });
                        }
                    }
                    Err(e) => self.complain(e),
                }
            }
            Msg::Progress { progress, phase_seconds } => {
                if let Some(r) = &mut self.reindex {
                    r.rate = (progress.phase == Phase::Embedding && phase_seconds > 0.5 && progress.done > 0)
                        .then(|| progress.done as f64 / phase_seconds);
                    r.progress = Some(progress);
                }
            }
            Msg::Problem(text) => self.complain(text),
            Msg::ReviewLoaded(loaded) => match loaded {
                // Only while the review is open: a late answer after leaving it is dropped.
                Ok(data) if self.view == View::Review => {
                    let mut data = *data;
                    if data.groups.is_empty() {
                        self.say("no duplicate photos in this catalog");
                    }
                    // Decisions made since the TUI started are the newest: the file may not
                    // hold the last of them yet (its save can still be on its way).
                    let group = match self.review.take() {
                        Some(old) => {
                            data.decisions = old.data.decisions;
                            old.group.min(data.groups.len().saturating_sub(1))
                        }
                        None => 0,
                    };
                    self.review = Some(Review { data, group, photo: 0 });
                }
                Ok(_) => {}
                Err(e) => {
                    if self.view == View::Review {
                        self.view = self.before_review;
                    }
                    self.complain(format!("cannot review duplicates: {e}"));
                }
            },
            Msg::Reindexed(outcome) => {
                self.reindex = None;
                match outcome {
                    Ok(report) => {
                        self.say(summary(&report));
                        return vec![Effect::Reopen];
                    }
                    Err(e) => self.complain(format!("reindex failed: {e}")),
                }
            }
        }
        Vec::new()
    }
}

fn summary(r: &IndexReport) -> String {
    let verb = if r.cancelled { "reindex cancelled, work so far kept" } else { "reindexed" };
    let mut text = format!("{verb}: {}", r.counts());
    if let Some(first) = r.skipped.first() {
        text.push_str(&format!(" (e.g. {}: {})", first.path, first.reason));
    }
    text
}
