//! The TUI's state machine and screens, without a terminal: key sequences applied to the
//! state, and whole screens drawn on ratatui's TestBackend compared with insta snapshots.

use std::path::{Path, PathBuf};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use lookalike_core::catalog::{Field, Filter, Product};
use lookalike_core::dupes::Member;
use lookalike_core::review::{Decision, Decisions};
use lookalike_core::{Crop, Hit, IndexReport, Phase, Progress, Query};
use lookalike_tui::action::{Effect, Msg};
use lookalike_tui::keymap::{self, KEYMAP};
use lookalike_tui::layout;
use lookalike_tui::state::{
    App, DirEntry, Overlay, QuerySource, Region, ReviewData, ReviewGroup, ReviewPhoto, View, Zoom,
};
use lookalike_tui::view;
use lookalike_tui::widgets::{self, Thumb, Thumbs};
use ratatui::backend::TestBackend;
use ratatui::layout::Rect;
use ratatui::Terminal;
use ratatui_image::picker::Picker;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../lookalike/tests/fixtures/shirt.png");

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, keys: &str) -> Vec<Effect> {
    keys.chars().flat_map(|c| app.on_key(key(KeyCode::Char(c)))).collect()
}

fn entry(name: &str, is_dir: bool) -> DirEntry {
    DirEntry { name: name.to_string(), is_dir, size: if is_dir { 0 } else { 41_234 } }
}

fn app(width: u16, height: u16) -> App {
    let mut app = App::new("/shop/photos".into(), "/shop/catalog".into(), 10, "halfblocks".into(), true);
    app.resize(width, height);
    app.on_msg(Msg::Listed {
        dir: "/shop/photos".into(),
        entries: Ok(vec![
            entry(".cache", true),
            entry("summer", true),
            entry("blue shirt.jpg", false),
            entry("red dress.png", false),
            entry("sneaker.webp", false),
        ]),
    });
    app
}

fn product(i: usize) -> Product {
    let kinds = [("Tshirts", "Blue"), ("Shirts", "White"), ("Tops", "Navy Blue")];
    let (kind, colour) = kinds[i % kinds.len()];
    Product {
        id: format!("{}", 1500 + i),
        gender: "Men".into(),
        article_type: kind.into(),
        base_colour: colour.into(),
        sub_category: "Topwear".into(),
        season: "Summer".into(),
        usage: "Casual".into(),
        year: "2012".into(),
        name: format!("Roadster Men {colour} {kind} {i}"),
        ..Default::default()
    }
}

fn hits(n: usize) -> Vec<Hit> {
    (0..n)
        .map(|i| Hit {
            rank: i + 1,
            path: PathBuf::from(format!("/shop/catalog/images/{}.jpg", 1500 + i)),
            rel: format!("images/{}.jpg", 1500 + i),
            id: format!("{}", 1500 + i),
            score: 0.93 - i as f32 * 0.013,
            rank_score: 0.93 - i as f32 * 0.013,
            metadata: Some(product(i)),
            copies: Vec::new(),
        })
        .collect()
}

fn opened(app: &mut App, items: usize) {
    let facets = lookalike_core::service::facets(
        (0..items).map(product).collect::<Vec<_>>().iter(),
        &lookalike_tui::state::FACET_FIELDS,
    );
    app.on_msg(Msg::Opened { items, method: "exact", note: None, facets });
}

/// Answers the search the app asked for with `n` hits of `k` asked.
fn answer(app: &mut App, effects: &[Effect], available: usize) {
    let Some(Effect::Search { id, k, .. }) = effects.iter().find(|e| matches!(e, Effect::Search { .. })) else {
        panic!("no search in {effects:?}")
    };
    let all = hits(available);
    let found = all.into_iter().take(*k).collect();
    app.on_msg(Msg::Found { id: *id, k: *k, outcome: Ok((found, 0.012)) });
}

/// Real halfblocks thumbnails of the fixture photo for every image on screen.
fn thumbs_for(app: &App) -> Thumbs {
    let mut thumbs = Thumbs::default();
    let picker = Picker::halfblocks();
    let area = Rect::new(0, 0, app.size.0, app.size.1);
    for (path, rect, cells) in layout::images(app, area) {
        let fixture = (PathBuf::from(FIXTURE), rect.width, rect.height, cells);
        let made = widgets::make(&picker, &fixture, None, None).expect("thumbnail");
        thumbs.insert((path, rect.width, rect.height, cells), Thumb::Ready(Box::new(made)));
    }
    thumbs
}

fn render(app: &App, thumbs: &Thumbs) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(app.size.0, app.size.1)).unwrap();
    terminal.draw(|f| view::draw(f, app, thumbs)).unwrap();
    terminal
}

fn results_app() -> App {
    let mut app = app(80, 24);
    opened(&mut app, 48);
    press(&mut app, "jj");
    let effects = app.on_key(key(KeyCode::Enter));
    answer(&mut app, &effects, 48);
    app
}

#[test]
fn picker_moves_filters_and_hides_dotfiles() {
    let mut app = app(80, 24);
    assert_eq!(app.files.visible().len(), 4, "hidden .cache is not listed by default");
    press(&mut app, "j");
    assert_eq!(app.files.highlighted().unwrap().name, "blue shirt.jpg");
    press(&mut app, ".");
    assert_eq!(app.files.visible().len(), 5);
    assert_eq!(app.files.highlighted().unwrap().name, "summer", "the selection index stays put");
    press(&mut app, ".");
    press(&mut app, "/dre");
    assert!(app.files.typing);
    assert_eq!(app.files.visible().iter().map(|e| e.name.as_str()).collect::<Vec<_>>(), ["red dress.png"]);
    // While typing, letters are text, not commands: q did not quit.
    press(&mut app, "q");
    assert!(!app.quit);
    assert_eq!(app.files.filter, "dreq");
    app.on_key(key(KeyCode::Backspace));
    app.on_key(key(KeyCode::Esc));
    assert!(app.files.filter.is_empty() && !app.files.typing);
    let effects = press(&mut app, "l");
    assert_eq!(effects, [Effect::ListDir("/shop/photos/summer".into())]);
    assert!(app.files.loading);
    let effects = press(&mut app, "h");
    assert_eq!(effects, [Effect::ListDir("/shop/photos".into())]);
}

#[test]
fn picking_an_image_searches_with_it() {
    let mut app = app(80, 24);
    opened(&mut app, 48);
    press(&mut app, "jj");
    let effects = app.on_key(key(KeyCode::Enter));
    assert_eq!(app.view, View::Results);
    match effects.as_slice() {
        [Effect::Search { query: Query::Image(p), k, filters, .. }] => {
            assert_eq!(p, Path::new("/shop/photos/red dress.png"));
            assert!(*k >= 10 && filters.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(app.searching.is_some());
}

#[test]
fn results_navigation_paging_and_more_like_this() {
    let mut app = results_app();
    let per_page = app.per_page;
    let cols = app.columns;
    assert!(per_page >= 2 && cols >= 2, "80x24 fits a grid ({cols} columns, {per_page} per page)");
    assert_eq!(app.results.hits.len(), 10.max(per_page));
    press(&mut app, "l");
    assert_eq!(app.results.selected, 1);
    press(&mut app, "j");
    assert_eq!(app.results.selected, 1 + cols);
    press(&mut app, "k");
    press(&mut app, "h");
    assert_eq!(app.results.selected, 0);

    // Next pages: past the fetched hits, the app asks for more.
    let mut effects = Vec::new();
    while effects.is_empty() {
        effects = press(&mut app, "n");
        assert!(app.page < 48, "paging never asked for more results");
    }
    let asked = match &effects[..] {
        [Effect::Search { k, .. }] => *k,
        other => panic!("{other:?}"),
    };
    assert_eq!(asked, (app.page + 1) * per_page);
    answer(&mut app, &effects, 48);
    assert_eq!(app.results.selected, app.page * per_page);
    assert_eq!(app.page_hits()[0].rank, app.page * per_page + 1);
    press(&mut app, "p");
    assert_eq!(app.results.selected, (app.page) * per_page);

    // Enter: more like this, with the selected product's stored vector.
    let chosen = app.selected_hit().unwrap().rel.clone();
    let effects = app.on_key(key(KeyCode::Enter));
    match &effects[..] {
        [Effect::Search { query: Query::Item(rel), .. }] => assert_eq!(rel, &chosen),
        other => panic!("{other:?}"),
    }
    assert_eq!(app.history.len(), 1);
    assert_eq!(app.page, 0);
    // Backspace: back to the photo query.
    let effects = app.on_key(key(KeyCode::Backspace));
    assert!(matches!(&effects[..], [Effect::Search { query: Query::Image(_), .. }]));
    assert!(matches!(app.query, Some(QuerySource::File(_))));
    assert!(app.history.is_empty());
}

#[test]
fn last_page_says_no_more() {
    let mut app = app(80, 24);
    opened(&mut app, 48);
    press(&mut app, "jj");
    let effects = app.on_key(key(KeyCode::Enter));
    answer(&mut app, &effects, 3);
    assert!(app.results.exhausted);
    let effects = press(&mut app, "n");
    assert!(effects.is_empty());
    assert_eq!(app.status.as_ref().unwrap().text, "no more results");
    press(&mut app, "llll");
    assert_eq!(app.results.selected, 2);
}

#[test]
fn an_older_search_answer_is_dropped() {
    let mut app = results_app();
    let first = app.on_key(key(KeyCode::Enter));
    let second = app.on_key(key(KeyCode::Backspace));
    let (Effect::Search { id: old, .. }, Effect::Search { id: new, .. }) = (&first[0], &second[0]) else { panic!() };
    app.on_msg(Msg::Found { id: *old, k: 10, outcome: Ok((hits(1), 0.0)) });
    assert_eq!(app.searching, Some(*new), "the stale answer did not end the newer search");
    assert_ne!(app.results.hits.len(), 1);
}

#[test]
fn filter_menu_adds_and_clears_filters() {
    let mut app = results_app();
    press(&mut app, "f");
    assert_eq!(app.overlay, Some(Overlay::FilterFields { selected: 0 }));
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.overlay, Some(Overlay::FilterValues { field: 0, selected: 0 }));
    press(&mut app, "j");
    let effects = app.on_key(key(KeyCode::Enter));
    let wanted =
        Filter { field: Field::ArticleType, value: app.facet(Field::ArticleType).unwrap().values[1].0.clone() };
    assert_eq!(app.filters, std::slice::from_ref(&wanted));
    assert!(matches!(&effects[..], [Effect::Search { filters, .. }] if filters == std::slice::from_ref(&wanted)));
    assert_eq!(app.overlay, None);
    // Esc in the results clears the filters and searches again.
    let effects = app.on_key(key(KeyCode::Esc));
    assert!(app.filters.is_empty());
    assert!(matches!(&effects[..], [Effect::Search { filters, .. }] if filters.is_empty()));
}

#[test]
fn reindex_progress_cancel_and_rebuild_confirmation() {
    let mut app = results_app();
    assert_eq!(press(&mut app, "r"), [Effect::Reindex { full: false }]);
    assert!(press(&mut app, "r").is_empty(), "a second reindex does not start");
    app.on_msg(Msg::Progress {
        progress: Progress { phase: Phase::Embedding, done: 32, total: 100 },
        phase_seconds: 8.0,
    });
    let r = app.reindex.as_ref().unwrap();
    assert_eq!(r.rate, Some(4.0));
    assert_eq!(r.eta_seconds(), Some(17.0));
    assert_eq!(app.on_key(key(KeyCode::Esc)), [Effect::CancelReindex]);
    assert!(app.reindex.as_ref().unwrap().cancelling);
    let report = IndexReport { items: 50, cancelled: true, ..Default::default() };
    assert_eq!(app.on_msg(Msg::Reindexed(Ok(Box::new(report)))), [Effect::Reopen]);
    assert!(app.reindex.is_none());
    assert!(app.status.as_ref().unwrap().text.contains("cancelled"));
    // The reopened store triggers a fresh search of the current query.
    opened(&mut app, 50);
    assert!(app.searching.is_some());

    assert!(press(&mut app, "R").is_empty());
    assert_eq!(app.overlay, Some(Overlay::ConfirmRebuild));
    assert!(press(&mut app, "n").is_empty());
    assert_eq!(app.overlay, None);
    press(&mut app, "R");
    assert_eq!(press(&mut app, "y"), [Effect::Reindex { full: true }]);
    // Quitting during a reindex cancels it (the runtime then waits for it).
    assert_eq!(app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), [Effect::CancelReindex]);
    assert!(app.quit);
}

#[test]
fn open_is_local_only_and_copy_uses_osc52() {
    let mut app = results_app();
    let path = app.selected_hit().unwrap().path.clone();
    assert_eq!(press(&mut app, "o"), [Effect::Open(path.clone())]);
    assert_eq!(press(&mut app, "y"), [Effect::Copy(path.display().to_string())]);
    app.local = false;
    assert!(press(&mut app, "o").is_empty());
    assert!(app.status.as_ref().unwrap().error);
    let seq = lookalike_tui::worker::osc52("/a b/ü.jpg");
    assert_eq!(seq, "\x1b]52;c;L2EgYi/DvC5qcGc=\x07");
}

#[test]
fn search_before_indexing_explains_what_to_do() {
    let mut app = app(80, 24);
    app.on_msg(Msg::OpenFailed("Catalog /shop/catalog is not indexed yet: press r to index it.".into()));
    press(&mut app, "jj");
    let effects = app.on_key(key(KeyCode::Enter));
    assert!(effects.is_empty());
    assert!(app.status.as_ref().unwrap().error);
    insta::assert_snapshot!("not_indexed", render(&app, &Thumbs::default()).backend());
}

#[test]
fn snapshot_picker() {
    let mut app = app(80, 24);
    press(&mut app, "jj");
    let thumbs = thumbs_for(&app);
    let terminal = render(&app, &thumbs);
    insta::assert_snapshot!("picker", terminal.backend());
    // The preview is a real image: halfblock cells with the photo's colours.
    let (_, rect, _) = layout::images(&app, Rect::new(0, 0, 80, 24)).remove(0);
    let buf = terminal.backend().buffer();
    let coloured = (rect.y..rect.bottom())
        .flat_map(|y| (rect.x..rect.right()).map(move |x| (x, y)))
        .filter(|&(x, y)| buf[(x, y)].fg != ratatui::style::Color::Reset)
        .count();
    assert!(coloured > (rect.width * rect.height / 4) as usize, "only {coloured} coloured cells in the preview");
}

#[test]
fn snapshot_results_with_thumbnails() {
    let mut app = results_app();
    press(&mut app, "l");
    let thumbs = thumbs_for(&app);
    insta::assert_snapshot!("results", render(&app, &thumbs).backend());
}

#[test]
fn snapshot_results_large_terminal() {
    let mut app = results_app();
    app.resize(160, 48);
    let effects = press(&mut app, "n");
    if !effects.is_empty() {
        answer(&mut app, &effects, 48);
    }
    let thumbs = thumbs_for(&app);
    insta::assert_snapshot!("results_160x48", render(&app, &thumbs).backend());
}

#[test]
fn snapshot_reindex_progress() {
    let mut app = results_app();
    press(&mut app, "r");
    app.on_msg(Msg::Progress {
        progress: Progress { phase: Phase::Embedding, done: 96, total: 320 },
        phase_seconds: 24.0,
    });
    insta::assert_snapshot!("reindex", render(&app, &thumbs_for(&app)).backend());
}

#[test]
fn snapshot_help_and_filter_menu() {
    let mut app = results_app();
    press(&mut app, "?");
    insta::assert_snapshot!("help", render(&app, &Thumbs::default()).backend());
    press(&mut app, "?");
    assert_eq!(app.overlay, None);
    press(&mut app, "f");
    app.on_key(key(KeyCode::Enter));
    insta::assert_snapshot!("filter_values", render(&app, &Thumbs::default()).backend());
}

#[test]
fn snapshot_error_and_too_small() {
    let mut app = app(80, 24);
    opened(&mut app, 48);
    press(&mut app, "jj");
    let Effect::Search { id, .. } = app.on_key(key(KeyCode::Enter)).remove(0) else { panic!() };
    app.on_msg(Msg::Found {
        id,
        k: 10,
        outcome: Err("cannot decode /shop/photos/red dress.png: not an image (format not recognised)".into()),
    });
    insta::assert_snapshot!("error", render(&app, &thumbs_for(&app)).backend());
    app.resize(40, 12);
    insta::assert_snapshot!("too_small", render(&app, &Thumbs::default()).backend());
}

/// Two groups: a byte-identical pair, and an original with two edited copies.
fn review_data(decisions: Decisions) -> ReviewData {
    let photo = |i: usize, keeper: bool, distance: Option<f32>| {
        let id = format!("{}", 1500 + i);
        ReviewPhoto {
            path: PathBuf::from(format!("/shop/catalog/images/{id}.jpg")),
            member: Member {
                rel: format!("images/{id}.jpg"),
                id,
                size: 60_000 - i as u64 * 1000,
                keeper,
                distance,
                similarity: None,
                metadata: Some(product(i)),
            },
        }
    };
    ReviewData {
        groups: vec![
            ReviewGroup { tier: "exact", photos: vec![photo(0, true, None), photo(1, false, None)] },
            ReviewGroup {
                tier: "near",
                photos: vec![photo(2, true, Some(0.0)), photo(3, false, Some(0.012)), photo(4, false, Some(0.031))],
            },
        ],
        source: "byte-identical and edited copies (the last near run, threshold 0.035)".into(),
        decisions,
    }
}

fn saved(effects: &[Effect]) -> Vec<(String, Decision)> {
    match effects {
        [Effect::SaveReview(d)] => d.list().into_iter().map(|x| (x.id, x.decision)).collect(),
        other => panic!("expected one save, got {other:?}"),
    }
}

#[test]
fn review_steps_through_groups_and_saves_every_decision() {
    let mut app = results_app();
    assert_eq!(press(&mut app, "D"), vec![Effect::LoadReview]);
    assert_eq!(app.view, View::Review);
    // Loading: keys wait for the groups; a decision from earlier is shown once they arrive.
    assert!(press(&mut app, "+").is_empty());
    let mut earlier = Decisions::default();
    earlier.set("images/1503.jpg", Some(Decision::Keep));
    app.on_msg(Msg::ReviewLoaded(Ok(Box::new(review_data(earlier)))));

    // The copy of the first group is dropped.
    press(&mut app, "l");
    assert_eq!(saved(&press(&mut app, "-")), [("1501".into(), Decision::Drop), ("1503".into(), Decision::Keep)]);
    // Right stops at the group's last photo; j goes to the next group at its first photo.
    press(&mut app, "llj");
    let review = app.review.as_ref().unwrap();
    assert_eq!((review.group, review.photo), (1, 0));
    insta::assert_snapshot!("review", render(&app, &thumbs_for(&app)).backend());

    // A: keep the keeper, drop the rest (overriding the earlier keep of 1503).
    let after = saved(&press(&mut app, "A"));
    assert_eq!(
        after,
        [
            ("1501".into(), Decision::Drop),
            ("1502".into(), Decision::Keep),
            ("1503".into(), Decision::Drop),
            ("1504".into(), Decision::Drop)
        ]
    );
    assert_eq!(app.review.as_ref().unwrap().decided_groups(), 1, "the first group's keeper is undecided");
    // k goes back to the first group; u forgets a decision.
    press(&mut app, "kl");
    assert_eq!(saved(&press(&mut app, "u")), after.iter().filter(|(id, _)| id != "1501").cloned().collect::<Vec<_>>());
    assert!(saved(&press(&mut app, "-")).contains(&("1501".into(), Decision::Drop)));

    // The help shows the review's keys; Esc leaves the review for the view it came from.
    press(&mut app, "?");
    let help = format!("{:?}", render(&app, &Thumbs::default()).backend());
    assert!(help.contains("reviewing duplicates") && help.contains("keep the suggested keeper"), "{help}");
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.overlay, None);
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.view, View::Results);
    // A late answer after leaving is dropped.
    app.on_msg(Msg::ReviewLoaded(Ok(Box::new(review_data(Decisions::default())))));
    assert_eq!(app.view, View::Results);
    // Reopened, the review keeps this session's decisions, even where the file it read
    // does not hold them yet, and the group it was at.
    assert_eq!(press(&mut app, "D"), vec![Effect::LoadReview]);
    app.on_msg(Msg::ReviewLoaded(Ok(Box::new(review_data(Decisions::default())))));
    let review = app.review.as_ref().unwrap();
    assert_eq!((review.data.decisions.get("images/1501.jpg"), review.group), (Some(Decision::Drop), 0));
    assert_eq!(review.data.decisions.len(), 4);
    app.on_key(key(KeyCode::Esc));
    // A failed load says why and leaves the review.
    press(&mut app, "D");
    app.on_msg(Msg::ReviewLoaded(Err("review.json is damaged".into())));
    assert_eq!(app.view, View::Results);
    assert!(app.status.as_ref().unwrap().text.contains("review.json is damaged"));
}

#[test]
fn review_of_a_catalog_without_duplicates_says_so() {
    let mut app = app(80, 24);
    press(&mut app, "D");
    let data = ReviewData { groups: Vec::new(), ..review_data(Decisions::default()) };
    app.on_msg(Msg::ReviewLoaded(Ok(Box::new(data))));
    assert!(press(&mut app, "+-Aljk").is_empty(), "nothing to decide");
    let screen = format!("{:?}", render(&app, &Thumbs::default()).backend());
    assert!(screen.contains("No duplicate photos in this catalog"), "{screen}");
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.view, View::Files);
}

#[test]
fn every_key_is_in_the_readme() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    for row in KEYMAP.iter().chain(keymap::CROP_KEYMAP).chain(keymap::REVIEW_KEYMAP) {
        assert!(
            readme.contains(&format!("| `{}` | {} |", row.keys, row.help)),
            "README lacks the row for {}",
            row.keys
        );
    }
}

#[test]
fn the_help_names_every_bound_key_and_each_key_does_one_thing() {
    for table in [KEYMAP, keymap::CROP_KEYMAP, keymap::REVIEW_KEYMAP] {
        let mut seen = std::collections::HashSet::new();
        for row in table {
            check_row(row, &mut seen);
        }
    }
}

fn check_row(row: &keymap::Row, seen: &mut std::collections::HashSet<KeyCode>) {
    for (code, _) in row.bindings {
        let name = keymap::key_name(*code);
        assert!(
            row.keys.contains(&name) || row.help.contains(&name),
            "{name} is bound but the help row says {:?}",
            row.keys
        );
        assert!(seen.insert(*code), "{name} is bound twice");
    }
}

/// The bottom row of the screen.
fn status_bar(app: &App) -> String {
    let terminal = render(app, &Thumbs::default());
    let buffer = terminal.backend().buffer();
    let y = buffer.area.height - 1;
    (0..buffer.area.width).map(|x| buffer[(x, y)].symbol().to_string()).collect()
}

#[test]
fn the_status_bar_says_while_the_model_loads_and_why_it_did_not() {
    let mut app = app(100, 30);
    opened(&mut app, 12);
    assert!(app.on_msg(Msg::ModelLoading).is_empty());
    assert!(status_bar(&app).contains("12 items · resnet50 loading…"), "{}", status_bar(&app));
    app.on_msg(Msg::ModelLoaded(Ok(())));
    assert!(status_bar(&app).contains("12 items · resnet50 · exact"), "{}", status_bar(&app));
    app.on_msg(Msg::ModelLoaded(Err("model weights not found at /w: run `lookalike fetch-weights`".into())));
    let bar = status_bar(&app);
    assert!(bar.contains("item searches only: the model is not loaded (model weights not found at /w"), "{bar}");
}

/// The search an effect list asks for.
fn searched(effects: &[Effect]) -> (&Query, &lookalike_core::Steering) {
    match effects {
        [Effect::Search { query, steering, .. }] => (query, steering),
        other => panic!("no single search in {other:?}"),
    }
}

#[test]
fn marks_steer_the_next_search_and_are_cleared() {
    let mut app = results_app();
    let (first, second) = (app.results.hits[0].rel.clone(), app.results.hits[1].rel.clone());
    assert!(press(&mut app, "+").is_empty(), "marking does not search by itself");
    press(&mut app, "l-");
    assert_eq!(app.marks.of(&first), Some(true));
    assert_eq!(app.marks.of(&second), Some(false));
    insta::assert_snapshot!("marks", render(&app, &thumbs_for(&app)).backend());
    // The same mark again removes it; the other mark replaces it.
    press(&mut app, "-");
    assert_eq!(app.marks.of(&second), None);
    press(&mut app, "+");
    assert_eq!(app.marks.of(&second), Some(true));
    press(&mut app, "h-");
    let effects = press(&mut app, "s");
    let (query, steering) = searched(&effects);
    assert!(matches!(query, Query::Image(_)), "feedback refines the same query");
    assert_eq!(steering.feedback.like, std::slice::from_ref(&second));
    assert_eq!(steering.feedback.unlike, std::slice::from_ref(&first));
    answer(&mut app, &effects, 48);
    // Searching again with nothing new says so; x clears and searches without feedback.
    assert!(press(&mut app, "s").is_empty());
    let effects = press(&mut app, "x");
    assert!(searched(&effects).1.feedback.is_empty() && app.marks.is_empty());
    // With no marks, s explains itself.
    answer(&mut app, &effects, 48);
    assert!(press(&mut app, "s").is_empty());
    assert!(app.status.as_ref().unwrap().error);
    // A new query starts without marks.
    press(&mut app, "+");
    app.on_key(key(KeyCode::Enter));
    assert!(app.marks.is_empty() && app.applied.is_empty());
}

#[test]
fn a_searches_in_any_colour_and_back_and_the_choice_stays_for_the_next_query() {
    let mut app = results_app();
    let effects = press(&mut app, "a");
    assert_eq!(searched(&effects).1.colour, lookalike_core::ColourMode::Any);
    answer(&mut app, &effects, 48);
    let screen = format!("{:?}", render(&app, &thumbs_for(&app)).backend());
    assert!(screen.contains("any colour"), "the title does not say so");
    // More like a result keeps the choice; `a` again goes back to the query's colours.
    let effects = app.on_key(key(KeyCode::Enter));
    assert_eq!(searched(&effects).1.colour, lookalike_core::ColourMode::Any);
    answer(&mut app, &effects, 48);
    let effects = press(&mut app, "a");
    assert_eq!(searched(&effects).1.colour, lookalike_core::ColourMode::Same);
}

#[test]
fn a_region_of_the_query_is_chosen_with_the_keyboard_and_searched() {
    let mut app = results_app();
    press(&mut app, "c");
    assert_eq!(app.cropping, Some(Region::WHOLE));
    // While choosing, the photo is wanted in cells, so the box can be drawn over it.
    let area = Rect::new(0, 0, app.size.0, app.size.1);
    assert!(layout::images(&app, area)[0].2, "the query photo is not drawn in cells");
    // While choosing, letters move and resize the region; nothing else happens.
    assert!(press(&mut app, "HHKKlj").is_empty());
    let r = app.cropping.unwrap();
    assert!((r.w - 0.9).abs() < 1e-4 && (r.h - 0.9).abs() < 1e-4, "{r:?}");
    assert!((r.x - 0.05).abs() < 1e-4 && (r.y - 0.05).abs() < 1e-4, "{r:?}");
    // Moving never leaves the photo.
    press(&mut app, "llll");
    assert!((app.cropping.unwrap().x - 0.1).abs() < 1e-4);
    assert!(!app.quit && app.zoom.is_none());
    insta::assert_snapshot!("crop_box", render(&app, &thumbs_for(&app)).backend());
    let effects = app.on_key(key(KeyCode::Enter));
    let (query, steering) = searched(&effects);
    assert!(matches!(query, Query::Image(_)));
    match steering.crop {
        Some(Crop::Fraction { x, y, w, h }) => {
            assert!(
                (x - 0.1).abs() < 1e-4 && (y - 0.05).abs() < 1e-4 && (w - 0.9).abs() < 1e-4 && (h - 0.9).abs() < 1e-4
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(app.cropping.is_none() && app.region.is_some());
    answer(&mut app, &effects, 48);
    // Esc while choosing leaves the region as it was; C searches the whole photo again.
    press(&mut app, "cH");
    app.on_key(key(KeyCode::Esc));
    assert!(app.cropping.is_none());
    assert!((app.region.unwrap().w - 0.9).abs() < 1e-4);
    let effects = press(&mut app, "C");
    assert_eq!(searched(&effects).1.crop, None);
    // Enter on the whole photo is no region.
    answer(&mut app, &effects, 48);
    press(&mut app, "c");
    let effects = app.on_key(key(KeyCode::Enter));
    assert_eq!(searched(&effects).1.crop, None);
}

#[test]
fn zoom_and_side_by_side_cover_the_results_and_go_back() {
    let mut app = results_app();
    press(&mut app, "l");
    press(&mut app, "z");
    assert_eq!(app.zoom, Some(Zoom::Result));
    let area = Rect::new(0, 0, app.size.0, app.size.1);
    let images = layout::images(&app, area);
    assert_eq!(images.len(), 2, "the query and the zoomed result: {images:?}");
    assert_eq!(images[1].0, app.results.hits[1].path);
    insta::assert_snapshot!("zoom_result", render(&app, &thumbs_for(&app)).backend());
    // Moving the selection zooms the next result.
    press(&mut app, "l");
    assert_eq!(layout::images(&app, area)[1].0, app.results.hits[2].path);
    press(&mut app, "v");
    assert_eq!(app.zoom, Some(Zoom::SideBySide));
    insta::assert_snapshot!("side_by_side", render(&app, &thumbs_for(&app)).backend());
    press(&mut app, "v");
    assert_eq!(app.zoom, None);
    press(&mut app, "Z");
    assert_eq!(app.zoom, Some(Zoom::Query));
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.zoom, None);
}

#[test]
fn the_mouse_selects_searches_and_scrolls() {
    use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
    let mut app = results_app();
    let area = Rect::new(0, 0, app.size.0, app.size.1);
    let tiles = layout::grid(layout::screen(area).grid).tiles;
    let click = |t: Rect| MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: t.x + 2,
        row: t.y + 2,
        modifiers: KeyModifiers::NONE,
    };
    let t0 = std::time::Instant::now();
    assert!(app.on_mouse(click(tiles[1]), t0, None).is_empty());
    assert_eq!(app.results.selected, 1);
    // A second click on another tile is a click, not a double-click.
    assert!(app.on_mouse(click(tiles[2]), t0 + std::time::Duration::from_millis(100), None).is_empty());
    assert_eq!(app.results.selected, 2);
    let chosen = app.results.hits[2].rel.clone();
    let effects = app.on_mouse(click(tiles[2]), t0 + std::time::Duration::from_millis(300), None);
    assert!(matches!(searched(&effects).0, Query::Item(rel) if *rel == chosen), "double-click: more like this");
    answer(&mut app, &effects, 48);
    let wheel = MouseEvent { kind: MouseEventKind::ScrollDown, column: 0, row: 0, modifiers: KeyModifiers::NONE };
    app.on_mouse(wheel, t0, None);
    assert_eq!(app.results.selected, app.columns);
    // While choosing a region, a drag over the photo draws it (corners in any order).
    press(&mut app, "c");
    let photo = Rect::new(2, 2, 20, 10);
    let at = |kind, column, row| MouseEvent { kind, column, row, modifiers: KeyModifiers::NONE };
    app.on_mouse(at(MouseEventKind::Down(MouseButton::Left), 17, 7), t0, Some(photo));
    app.on_mouse(at(MouseEventKind::Drag(MouseButton::Left), 7, 4), t0, Some(photo));
    app.on_mouse(at(MouseEventKind::Up(MouseButton::Left), 7, 4), t0, Some(photo));
    let r = app.cropping.unwrap();
    assert!((r.x - 0.25).abs() < 1e-4 && (r.y - 0.2).abs() < 1e-4, "{r:?}");
    assert!((r.w - 0.5).abs() < 1e-4 && (r.h - 0.3).abs() < 1e-4, "{r:?}");
    app.on_key(key(KeyCode::Esc));
    // Slow clicks are two clicks.
    app.on_mouse(click(tiles[0]), t0, None);
    assert!(app.on_mouse(click(tiles[0]), t0 + std::time::Duration::from_secs(1), None).is_empty());
}

#[test]
fn scores_are_honest_and_a_sharp_drop_is_a_cut() {
    let mut app = app(80, 24);
    opened(&mut app, 48);
    press(&mut app, "jj");
    let effects = app.on_key(key(KeyCode::Enter));
    let Effect::Search { id, k, .. } = &effects[0] else { panic!() };
    // Three close matches, then a drop; the first is the query's own photo.
    let mut found = hits(12);
    for (i, h) in found.iter_mut().enumerate() {
        h.rank_score = if i < 3 { 0.9 - 0.01 * i as f32 } else { 0.6 - 0.01 * i as f32 };
        h.score = h.rank_score;
    }
    found[0].score = 1.0;
    app.on_msg(Msg::Found { id: *id, k: *k, outcome: Ok((found, 0.01)) });
    assert_eq!(app.results.strong, Some(3));
    assert_eq!(app.results.standing[0], 1.0);
    let screen = format!("{:?}", render(&app, &thumbs_for(&app)).backend());
    assert!(screen.contains("3 strong matches"), "{screen}");
    assert!(screen.contains("100.0%"), "{screen}");
}
