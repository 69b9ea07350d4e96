//! Draw: the state and the thumbnails in, a frame out; no I/O, no decisions.

use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Gauge, List, ListItem, ListState, Paragraph, Wrap};
use ratatui::Frame;

use super::keymap::{Row, CROP_KEYMAP, KEYMAP, REVIEW_KEYMAP};
use super::layout::{self, Screen};
use super::state::{App, Overlay, Region, Review, ReviewPhoto, View, FACET_FIELDS};
use super::widgets::{self, drawn_area, human_size, render_key, render_thumb, Thumbs};
use lookalike_core::review::Decision;
use lookalike_core::{strength, ColourMode, Hit, Phase};

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

pub fn draw(frame: &mut Frame, app: &App, thumbs: &Thumbs) {
    let area = frame.area();
    if layout::too_small(area) {
        let text = format!(
            "Terminal too small ({}x{}): lookalike needs at least {}x{}. Enlarge it, or press q to quit.",
            area.width,
            area.height,
            layout::MIN_WIDTH,
            layout::MIN_HEIGHT
        );
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
        return;
    }
    let s = layout::screen(area);
    match app.view {
        View::Files => draw_files(frame, app, thumbs, &s),
        View::Results => draw_results(frame, app, thumbs, &s),
        View::Review => draw_review(frame, app, thumbs, &s),
    }
    if let Some(r) = &app.reindex {
        draw_reindex(frame, app, r, Rect::new(area.x, s.status.y.saturating_sub(3), area.width, 3));
    }
    draw_status(frame, app, s.status);
    match app.overlay {
        Some(Overlay::Help) => {
            let mode = match (app.view, app.cropping) {
                (View::Review, _) => HelpMode::Review,
                (_, Some(_)) => HelpMode::Region,
                _ => HelpMode::Main,
            };
            draw_help(frame, area, mode)
        }
        Some(Overlay::FilterFields { selected }) => draw_filter_fields(frame, app, area, selected),
        Some(Overlay::FilterValues { field, selected }) => draw_filter_values(frame, app, area, field, selected),
        Some(Overlay::ConfirmRebuild) => draw_confirm(frame, app, area),
        None => {}
    }
}

fn pane<'a>(title: impl Into<Line<'a>>, focused: bool) -> Block<'a> {
    let block = Block::bordered().title(title);
    if focused {
        block.border_style(Style::new().cyan())
    } else {
        block
    }
}

fn draw_files(frame: &mut Frame, app: &App, thumbs: &Thumbs, s: &Screen) {
    let files = &app.files;
    let title = format!(" Files: {} ", files.dir.display());
    let block = pane(title, true);
    let inner = block.inner(s.files);
    frame.render_widget(block, s.files);
    let [filter_line, list_area] = if files.typing || !files.filter.is_empty() {
        Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner)
    } else {
        [Rect::new(inner.x, inner.y, inner.width, 0), inner]
    };
    if filter_line.height > 0 {
        let cursor = if files.typing { "▏" } else { "" };
        frame.render_widget(Line::from(vec!["/".cyan(), files.filter.clone().into(), cursor.into()]), filter_line);
    }
    let visible = files.visible();
    if visible.is_empty() {
        let text = if files.loading {
            "reading folder…"
        } else if !files.filter.is_empty() {
            "nothing matches the filter (Esc clears it)"
        } else {
            "no folders or images here (Backspace goes up)"
        };
        frame.render_widget(Paragraph::new(text).dark_gray(), list_area);
    } else {
        let width = list_area.width as usize;
        let items: Vec<ListItem> = visible
            .iter()
            .map(|e| {
                if e.is_dir {
                    ListItem::new(Line::from(format!("▸ {}/", e.name)).blue().bold())
                } else {
                    let size = human_size(e.size);
                    let room = width.saturating_sub(size.len() + 3);
                    ListItem::new(Line::from(format!("  {:<room$} {size}", truncate(&e.name, room))))
                }
            })
            .collect();
        let mut state = ListState::default().with_selected(Some(files.selected));
        let list = List::new(items).highlight_style(Style::new().reversed());
        frame.render_stateful_widget(list, list_area, &mut state);
    }

    frame.render_widget(pane(" Preview ", false), s.preview);
    let (image, caption) = layout::picture(s.preview);
    match files.highlighted() {
        Some(e) if !e.is_dir => {
            let path = files.dir.join(&e.name);
            render_thumb(thumbs, &path, image, frame.buffer_mut());
            let facts = thumbs.facts(&path, image).unwrap_or_else(|| human_size(e.size));
            let lines = vec![Line::from(truncate(&e.name, caption.width as usize)), Line::from(facts)];
            frame.render_widget(Paragraph::new(lines).dark_gray(), caption);
        }
        Some(e) => frame.render_widget(
            Paragraph::new(format!("folder {}: Enter opens it", e.name)).wrap(Wrap { trim: true }).dark_gray(),
            image,
        ),
        None => {}
    }
}

fn draw_results(frame: &mut Frame, app: &App, thumbs: &Thumbs, s: &Screen) {
    let title = match app.cropping {
        Some(_) => Line::from(" Query: choose a region ").yellow().bold(),
        None => Line::from(" Query "),
    };
    frame.render_widget(pane(title, app.cropping.is_some()), s.query);
    let (image, caption) = layout::picture(s.query);
    match &app.query {
        Some(q) => {
            // While a region is chosen the photo is drawn in cells, so the box shows on it.
            let key = match app.cropping {
                Some(_) => widgets::cell_key(q.image_path(), image),
                None => widgets::key(q.image_path(), image),
            };
            render_key(thumbs, &key, image, frame.buffer_mut());
            if let Some(region) = app.cropping.or(app.region) {
                if let Some(drawn) = drawn_area(thumbs, &key, image) {
                    draw_region(frame, region, drawn, app.cropping.is_some());
                }
            }
            let mut lines = vec![Line::from(truncate_left(&q.label(), caption.width as usize))];
            let steering = steering_label(app);
            if app.cropping.is_some() {
                lines.push(Line::from(truncate("HJKL size · Enter searches · Esc", caption.width as usize)).yellow());
            } else if !steering.is_empty() {
                lines.push(Line::from(truncate(&steering, caption.width as usize)).yellow());
            } else if let Some(facts) = thumbs.facts(q.image_path(), image) {
                lines.push(Line::from(facts));
            }
            frame.render_widget(Paragraph::new(lines).dark_gray(), caption);
        }
        None => frame.render_widget(
            Paragraph::new("No query yet: pick an image in the file picker (Tab), then Enter.")
                .wrap(Wrap { trim: true })
                .dark_gray(),
            layout::inner(s.query),
        ),
    }

    let details = pane(" Details ", false);
    frame.render_widget(
        Paragraph::new(detail_lines(app.selected_hit(), app.results.strong)).wrap(Wrap { trim: true }).block(details),
        s.details,
    );

    let grid_block = pane(results_title(app), true);
    frame.render_widget(grid_block, s.grid);
    let inner = layout::inner(s.grid);
    if app.results.hits.is_empty() {
        let text = if let Some(problem) = &app.catalog.problem {
            problem.clone()
        } else if app.searching.is_some() {
            format!("{} searching…", SPINNER[app.tick % SPINNER.len()])
        } else if app.query.is_none() {
            "Results appear here.".to_string()
        } else {
            "No matches.".to_string()
        };
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), inner);
        return;
    }
    if app.zoom.is_some() {
        draw_zoom(frame, app, thumbs, s.grid);
        return;
    }
    let grid = layout::grid(s.grid);
    let first = app.page * app.per_page;
    for (i, (hit, tile)) in app.page_hits().iter().zip(grid.tiles).enumerate() {
        let index = first + i;
        let look = Look {
            selected: index == app.results.selected,
            mark: app.marks.of(&hit.rel),
            standing: app.results.standing.get(index).copied().unwrap_or(0.0),
            strong: app.results.strong.is_none_or(|n| index < n),
        };
        draw_tile(frame, thumbs, hit, tile, look);
    }
}

/// The duplicate review: the group's photos with their decisions on the left, the photos
/// side by side on the right.
fn draw_review(frame: &mut Frame, app: &App, thumbs: &Thumbs, s: &Screen) {
    let side = s.query.union(s.details);
    let Some(review) = &app.review else {
        frame.render_widget(pane(" Duplicates ", false), side);
        let text = format!("{} loading the duplicate groups…", SPINNER[app.tick % SPINNER.len()]);
        frame.render_widget(Paragraph::new(text), layout::inner(s.grid));
        frame.render_widget(pane(" Photos ", true), s.grid);
        return;
    };
    let n = review.data.groups.len();
    let title = match n {
        0 => " Duplicates: none ".to_string(),
        _ => format!(" Duplicates {}/{n} ", review.group + 1),
    };
    let block = pane(title, false);
    let inner = block.inner(side);
    frame.render_widget(block, side);
    frame.render_widget(Paragraph::new(review_lines(review, inner.width as usize)).wrap(Wrap { trim: false }), inner);

    let Some(group) = review.current() else {
        frame.render_widget(pane(" Photos ", true), s.grid);
        let text = "No duplicate photos in this catalog. Esc goes back.";
        frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), layout::inner(s.grid));
        return;
    };
    let kind = if group.tier == "near" { "the same picture, edited" } else { "the same bytes" };
    frame.render_widget(pane(format!(" {} photos: {kind} ", group.photos.len()), true), s.grid);
    for (i, tile) in layout::review_panes(app, s.grid) {
        let photo = &group.photos[i];
        let decision = review.decision(photo);
        let mut title = format!(" {}{} ", i + 1, if photo.member.keeper { " keeper" } else { "" });
        if let Some(d) = decision {
            title.push_str(&format!("· {} ", d.name()));
        }
        let border = match decision {
            Some(Decision::Keep) => Style::new().green(),
            Some(Decision::Drop) => Style::new().red(),
            None => Style::new().gray(),
        };
        let tile = Tile {
            area: tile,
            path: &photo.path,
            title,
            border,
            selected: i == review.photo,
            marked: decision.is_some(),
        };
        draw_photo_tile(frame, thumbs, tile, [photo_name(photo), photo_facts(photo)]);
    }
}

/// A review photo's product name, or its id.
fn photo_name(photo: &ReviewPhoto) -> String {
    let m = &photo.member;
    match &m.metadata {
        Some(p) if !p.name.is_empty() => format!("{} {}", m.id, p.name),
        _ => m.id.clone(),
    }
}

/// "123 KiB · d 0.012" (the picture distance to the keeper) for a review photo.
fn photo_facts(photo: &ReviewPhoto) -> String {
    let m = &photo.member;
    match (m.distance, m.similarity) {
        _ if m.keeper => human_size(m.size),
        (Some(d), _) => format!("{} · d {d:.3}", human_size(m.size)),
        (None, Some(s)) => format!("{} · sim {s:.3}", human_size(m.size)),
        (None, None) => human_size(m.size),
    }
}

/// The side panel of the review: the group's photos with their decisions, the selected
/// one's metadata, progress and where the groups come from.
fn review_lines(review: &Review, width: usize) -> Vec<Line<'static>> {
    let field =
        |k: &str, v: String| Line::from(vec![Span::styled(format!("{k}: "), Style::new().bold()), Span::raw(v)]);
    let mut lines = Vec::new();
    if let Some(group) = review.current() {
        for (i, photo) in group.photos.iter().enumerate() {
            let decision = review.decision(photo);
            let mark = match decision {
                Some(d) => Span::styled(
                    format!("{:<5}", d.name()),
                    match d {
                        Decision::Keep => Style::new().green().bold(),
                        Decision::Drop => Style::new().red().bold(),
                    },
                ),
                None => Span::styled("  ·  ", Style::new().dark_gray()),
            };
            let pointer = if i == review.photo { "▸" } else { " " };
            let how = match photo.member.distance {
                _ if photo.member.keeper => "keeper".to_string(),
                Some(d) => format!("d {d:.3}"),
                None => "same bytes".to_string(),
            };
            let text = truncate(&format!(" {} · {how}", photo.member.id), width.saturating_sub(6));
            let mut line = Line::from(vec![Span::raw(pointer), mark, Span::raw(text)]);
            if i == review.photo {
                line = line.reversed();
            }
            lines.push(line);
        }
        lines.push(Line::from(""));
        if let Some(photo) = review.selected_photo() {
            if let Some(p) = &photo.member.metadata {
                for (k, v) in [("name", &p.name), ("type", &p.article_type), ("colour", &p.base_colour)] {
                    if !v.is_empty() {
                        lines.push(field(k, v.clone()));
                    }
                }
            }
            lines.push(field("file", photo.member.rel.clone()));
        }
        lines.push(Line::from(""));
    }
    let decided = review.data.decisions.len();
    lines.push(Line::from(format!(
        "{} of {} groups decided · {decided} decisions saved",
        review.decided_groups(),
        review.data.groups.len()
    )));
    lines.push(Line::from(review.data.source.clone()).dark_gray());
    lines.push(Line::from("+ keep · - drop · A keeper only · ? keys").cyan());
    lines
}

/// "region 10% 20%, 50%x60% · feedback 2 up, 1 down" for the query pane.
fn steering_label(app: &App) -> String {
    let mut parts = Vec::new();
    if let Some(r) = app.region {
        parts.push(r.label());
    }
    let f = &app.applied;
    if !f.is_empty() {
        parts.push(format!("feedback {} up, {} down", f.like.len(), f.unlike.len()));
    }
    let pending = app.marks.feedback() != app.applied && !app.marks.is_empty();
    if pending {
        parts.push("s searches the marks".to_string());
    }
    parts.join(" · ")
}

/// The region's outline over the drawn query photo.
fn draw_region(frame: &mut Frame, region: Region, drawn: Rect, editing: bool) {
    let at = |start: u16, len: u16, v: f32| start + ((v * len as f32).round() as u16).min(len);
    let (x0, y0) = (at(drawn.x, drawn.width, region.x), at(drawn.y, drawn.height, region.y));
    let (x1, y1) = (at(drawn.x, drawn.width, region.x + region.w), at(drawn.y, drawn.height, region.y + region.h));
    let rect = Rect::new(x0, y0, x1.saturating_sub(x0).max(2), y1.saturating_sub(y0).max(2)).intersection(drawn);
    let style = if editing { Style::new().yellow().bold() } else { Style::new().yellow() };
    frame.render_widget(Block::bordered().border_type(BorderType::Thick).border_style(style), rect);
}

/// The zoomed view: the selected result or the query over the whole results pane, or the
/// two side by side, each with what it is.
fn draw_zoom(frame: &mut Frame, app: &App, thumbs: &Thumbs, grid: Rect) {
    for (path, pane_area) in layout::zoomed(app, grid) {
        let hit = app.selected_hit().filter(|h| h.path == path);
        let title = match hit {
            Some(h) => format!(" {} · {:.1}% similar ", h.rank, h.score * 100.0),
            None => " Query ".to_string(),
        };
        frame.render_widget(Block::bordered().title(title).border_style(Style::new().cyan()), pane_area);
        let (image, caption) = layout::picture(pane_area);
        render_thumb(thumbs, &path, image, frame.buffer_mut());
        let w = caption.width as usize;
        let lines = match hit {
            Some(h) => {
                let (name, kind) = tile_text(h);
                vec![Line::from(truncate(&name, w)), Line::from(truncate(&kind, w)).dark_gray()]
            }
            None => {
                let label = app.query.as_ref().map(|q| q.label()).unwrap_or_default();
                let facts = thumbs.facts(&path, image).unwrap_or_default();
                vec![Line::from(truncate_left(&label, w)), Line::from(facts).dark_gray()]
            }
        };
        frame.render_widget(Paragraph::new(lines), caption);
    }
}

fn results_title(app: &App) -> Line<'static> {
    let mut spans = vec![Span::raw(" Results ")];
    let n = app.results.hits.len();
    if n > 0 {
        let first = app.page * app.per_page + 1;
        let last = (first + app.per_page - 1).min(n);
        let more = if app.results.exhausted { "" } else { "+" };
        spans.push(Span::raw(format!("{first}–{last} of {n}{more} · {:.0} ms ", app.results.seconds * 1000.0)));
    }
    if let Some(strong) = app.results.strong {
        spans.push(Span::styled(format!("· {} ", strength::describe(strong)), Style::new().green()));
    }
    if app.colour == ColourMode::Any {
        spans.push(Span::styled("· any colour ", Style::new().magenta()));
    }
    if app.zoom.is_some() {
        spans.push(Span::styled("zoomed (Esc: back) ", Style::new().cyan()));
    }
    if app.searching.is_some() && n > 0 {
        spans.push(Span::raw(format!("{} ", SPINNER[app.tick % SPINNER.len()])));
    }
    for f in &app.filters {
        spans.push(Span::styled(format!("[{}={}] ", f.field, f.value), Style::new().yellow()));
    }
    Line::from(spans)
}

/// How a tile is drawn besides its hit.
struct Look {
    selected: bool,
    /// Marked up (true) or down.
    mark: Option<bool>,
    /// Its place among this query's scores, 0 to 1.
    standing: f32,
    /// Above the adaptive cut (or no cut).
    strong: bool,
}

/// Four cells, one to four filled by a standing of 0 to 1.
fn standing_bar(standing: f32) -> String {
    let filled = (standing.clamp(0.0, 1.0) * 3.0).round() as usize + 1;
    format!("{}{}", "▰".repeat(filled), "▱".repeat(4 - filled))
}

fn draw_tile(frame: &mut Frame, thumbs: &Thumbs, hit: &Hit, tile: Rect, look: Look) {
    let mark = match look.mark {
        Some(true) => "+",
        Some(false) => "−",
        None => " ",
    };
    let title = format!("{mark}{} {:.1}% {} ", hit.rank, hit.score * 100.0, standing_bar(look.standing));
    let border = match look.mark {
        Some(true) => Style::new().green(),
        Some(false) => Style::new().red(),
        None if look.strong => Style::new().gray(),
        None => Style::new().dark_gray(),
    };
    let (name, kind) = tile_text(hit);
    let tile =
        Tile { area: tile, path: &hit.path, title, border, selected: look.selected, marked: look.mark.is_some() };
    draw_photo_tile(frame, thumbs, tile, [name, kind]);
}

/// A photo in a bordered tile.
struct Tile<'a> {
    area: Rect,
    path: &'a std::path::Path,
    title: String,
    border: Style,
    /// Drawn thick and bold: yellow, or the border's colour when it carries a mark.
    selected: bool,
    marked: bool,
}

/// A tile: its border and title, the photo, and two caption lines (the second dimmed).
fn draw_photo_tile(frame: &mut Frame, thumbs: &Thumbs, tile: Tile, caption: [String; 2]) {
    let block = if tile.selected {
        let style = if tile.marked { tile.border.bold() } else { Style::new().yellow().bold() };
        Block::bordered().border_type(BorderType::Thick).border_style(style).title(tile.title.bold())
    } else {
        Block::bordered().border_style(tile.border).title(tile.title)
    };
    frame.render_widget(block, tile.area);
    let (image, text) = layout::picture(tile.area);
    render_thumb(thumbs, tile.path, image, frame.buffer_mut());
    let w = text.width as usize;
    let [first, second] = caption;
    let lines = vec![Line::from(truncate(&first, w)), Line::from(truncate(&second, w)).dark_gray()];
    frame.render_widget(Paragraph::new(lines), text);
}

/// A hit's name (or path) and its "type · colour".
fn tile_text(hit: &Hit) -> (String, String) {
    match &hit.metadata {
        Some(m) => {
            let name = if m.name.is_empty() { hit.id.clone() } else { m.name.clone() };
            let kind: Vec<&str> =
                [m.article_type.as_str(), m.base_colour.as_str()].into_iter().filter(|s| !s.is_empty()).collect();
            (name, kind.join(" · "))
        }
        None => (hit.rel.clone(), String::new()),
    }
}

fn detail_lines(hit: Option<&Hit>, strong: Option<usize>) -> Vec<Line<'static>> {
    let Some(hit) = hit else { return vec![Line::from("Select a result to see its details.").dark_gray()] };
    let field =
        |k: &str, v: String| Line::from(vec![Span::styled(format!("{k}: "), Style::new().bold()), Span::raw(v)]);
    let standing = match strong {
        Some(1) if hit.rank == 1 => " (the one strong match)".to_string(),
        Some(n) if hit.rank <= n => format!(" (one of {})", strength::describe(n)),
        Some(n) => format!(" (below the {})", strength::describe(n)),
        None => String::new(),
    };
    let mut lines = vec![
        field("rank", format!("{}{standing}", hit.rank)),
        field("similarity", format!("{:.1}% to the query", hit.score * 100.0)),
        field("id", hit.id.clone()),
    ];
    if let Some(m) = &hit.metadata {
        for (k, v) in [
            ("name", &m.name),
            ("type", &m.article_type),
            ("colour", &m.base_colour),
            ("gender", &m.gender),
            ("category", &m.sub_category),
            ("season", &m.season),
            ("usage", &m.usage),
            ("year", &m.year),
        ] {
            if !v.is_empty() {
                lines.push(field(k, v.clone()));
            }
        }
    } else {
        lines.push(Line::from("no metadata for this product").dark_gray());
    }
    lines.push(field("file", hit.rel.clone()));
    lines
}

fn draw_reindex(frame: &mut Frame, app: &App, r: &super::state::Reindex, area: Rect) {
    frame.render_widget(Clear, area);
    let what = if r.full { "Full rebuild" } else { "Reindex" };
    let title = if r.cancelling { format!(" {what}: cancelling… ") } else { format!(" {what} (Esc cancels) ") };
    let (ratio, label) = match r.progress {
        None => (0.0, format!("{} starting", SPINNER[app.tick % SPINNER.len()])),
        Some(p) => {
            let phase = match p.phase {
                Phase::Scanning => "scanning the catalog",
                Phase::Hashing => "checking changed files",
                Phase::Colours => "computing colours (no model)",
                Phase::Embedding => "embedding",
                Phase::Saving => "saving",
                Phase::Describing => "fitting the whitening",
                Phase::Trees => "building the Annoy index",
                Phase::Syncing => "publishing to the database",
            };
            let ratio = if p.total > 0 { p.done as f64 / p.total as f64 } else { 0.0 };
            let mut label = format!("{phase} {}/{}", p.done, p.total);
            if let Some(rate) = r.rate {
                label.push_str(&format!(" · {rate:.1} images/s"));
            }
            if let Some(eta) = r.eta_seconds() {
                label.push_str(&format!(" · ETA {}", human_duration(eta)));
            }
            (ratio.clamp(0.0, 1.0), label)
        }
    };
    let gauge = Gauge::default()
        .block(Block::bordered().title(title).border_style(Style::new().magenta()))
        .gauge_style(Style::new().magenta().on_black())
        .ratio(ratio)
        .label(label);
    frame.render_widget(gauge, area);
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let style = Style::new().on_dark_gray().white();
    if let Some(status) = &app.status {
        let style = if status.error { Style::new().on_red().white().bold() } else { style };
        frame.render_widget(Paragraph::new(truncate(&status.text, area.width as usize)).style(style), area);
        return;
    }
    let catalog = app.catalog.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let items = match app.catalog.items {
        Some(n) => format!("{n} items"),
        None => "not indexed".to_string(),
    };
    let left =
        format!(" {catalog} · {items} · {} · {} · {}", app.catalog.model.label(), app.catalog.method, app.graphics);
    let right = " ? help  q quit ";
    let room = (area.width as usize).saturating_sub(right.chars().count());
    let line = Line::from(vec![Span::raw(format!("{:<room$}", truncate(&left, room))), Span::raw(right)]);
    frame.render_widget(Paragraph::new(line).style(style), area);
}

fn overlay_area(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(area.x + (area.width - w) / 2, area.y + (area.height - h) / 2, w, h)
}

/// Which keys the help lists.
enum HelpMode {
    Main,
    Region,
    Review,
}

fn draw_help(frame: &mut Frame, area: Rect, mode: HelpMode) {
    let rows = |table: &[Row]| -> Vec<Line<'static>> {
        table
            .iter()
            .map(|r| {
                Line::from(vec![
                    Span::styled(format!("{:>14} ", r.keys), Style::new().cyan().bold()),
                    Span::raw(r.help),
                ])
            })
            .collect()
    };
    // The keys of the mode the help was opened in, so each list fits an 80x24 terminal.
    let (heading, table) = match mode {
        HelpMode::Main => (None, KEYMAP),
        HelpMode::Region => (Some(" choosing a region (after c):"), CROP_KEYMAP),
        HelpMode::Review => (Some(" reviewing duplicates (after D):"), REVIEW_KEYMAP),
    };
    let mut lines: Vec<Line> = heading.map(|h| Line::from(h).bold()).into_iter().collect();
    lines.extend(rows(table));
    let width = table.iter().map(|r| r.help.chars().count()).max().unwrap_or(40) as u16 + 15 + 2;
    let rect = overlay_area(area, width, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let block = Block::bordered().title(" Keys (? or Esc closes) ").border_style(Style::new().cyan());
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}

fn menu(frame: &mut Frame, area: Rect, title: String, rows: Vec<Line<'static>>, selected: usize) {
    let width = rows.iter().map(|l| l.width()).max().unwrap_or(20).max(title.chars().count()) as u16 + 4;
    let rect = overlay_area(area, width, rows.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let mut state = ListState::default().with_selected(Some(selected));
    let list = List::new(rows)
        .block(Block::bordered().title(title).border_style(Style::new().yellow()))
        .highlight_style(Style::new().reversed());
    frame.render_stateful_widget(list, rect, &mut state);
}

fn draw_filter_fields(frame: &mut Frame, app: &App, area: Rect, selected: usize) {
    let mut rows: Vec<Line> = FACET_FIELDS
        .iter()
        .map(|field| {
            let current = app.filters.iter().find(|f| f.field == *field).map(|f| f.value.as_str()).unwrap_or("any");
            Line::from(format!(" {field}: {current} "))
        })
        .collect();
    rows.push(Line::from(" clear all filters ").add_modifier(Modifier::ITALIC));
    menu(frame, area, " Filter by (Enter picks, Esc closes) ".to_string(), rows, selected);
}

fn draw_filter_values(frame: &mut Frame, app: &App, area: Rect, field: usize, selected: usize) {
    let name = FACET_FIELDS[field];
    let rows: Vec<Line> = app
        .facet(name)
        .map(|f| f.values.iter().map(|(v, n)| Line::from(format!(" {v} ({n}) "))).collect())
        .unwrap_or_default();
    let max_rows = area.height.saturating_sub(4) as usize;
    // Scroll the window so the selected value stays visible.
    let start = selected.saturating_sub(max_rows.saturating_sub(1));
    let shown: Vec<Line> = rows.into_iter().skip(start).take(max_rows).collect();
    menu(frame, area, format!(" {name} (Enter picks, ← back) "), shown, selected - start);
}

fn draw_confirm(frame: &mut Frame, app: &App, area: Rect) {
    let items = app.catalog.items.map(|n| format!("all {n} images")).unwrap_or_else(|| "every image".to_string());
    let text = vec![
        Line::from(format!("Re-embed {items} from scratch?")),
        Line::from("The current index keeps working until the rebuild is done."),
        Line::from(""),
        Line::from(vec!["y".green().bold(), Span::raw(" rebuild   "), "any other key".bold(), Span::raw(" cancel")]),
    ];
    let rect = overlay_area(area, 64, 6);
    frame.render_widget(Clear, rect);
    let block = Block::bordered().title(" Full rebuild ").border_style(Style::new().red());
    frame.render_widget(Paragraph::new(text).alignment(Alignment::Center).block(block), rect);
}

fn human_duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

fn truncate(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Keeps the end of a path, where the file name is.
fn truncate_left(text: &str, width: usize) -> String {
    let n = text.chars().count();
    if n <= width {
        return text.to_string();
    }
    let mut out = String::from("…");
    out.extend(text.chars().skip(n - width.saturating_sub(1)));
    out
}
