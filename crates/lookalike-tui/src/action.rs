//! Update: keys and worker messages change the state and ask for effects; nothing here
//! touches the terminal, the disk or the model.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

pub use super::keymap::Action;
use super::state::{App, DirEntry, Facet, ModelState, Overlay, QuerySource, Reindex, Status, View, FACET_FIELDS};
use super::{keymap, layout};
use lookalike_core::catalog::{Field, Filter};
use lookalike_core::{Hit, IndexReport, Phase, Progress, Query};

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
        k: usize,
        filters: Vec<Filter>,
    },
    /// Reopen the store (after a reindex).
    Reopen,
    Reindex {
        full: bool,
    },
    CancelReindex,
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
        match action {
            Action::SwitchView => {
                self.view = match self.view {
                    View::Files => View::Results,
                    View::Results => View::Files,
                };
                self.files.typing = false;
                Vec::new()
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
                View::Results => self.results_action(action),
            },
        }
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
            Action::Escape if !self.filters.is_empty() => {
                self.filters.clear();
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
        self.reset_results();
        self.search()
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
        vec![Effect::Search { id, query: query.engine_query(), k, filters: self.filters.clone() }]
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
