//! Where things go on the screen. The update uses it too (tiles per page, which
//! thumbnails to prepare), so views and state agree on one geometry.

use std::path::PathBuf;

use ratatui::layout::{Constraint, Layout, Rect};

use super::state::{App, View, Zoom};

/// Below this the layout does not fit; the screen says so instead.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;
const TILE_WIDTH: u16 = 16;
/// Border, at least four rows of image, two lines of text.
const TILE_HEIGHT: u16 = 8;
/// Text lines under an image in a tile, the query pane and the preview.
pub const CAPTION_LINES: u16 = 2;

pub fn too_small(area: Rect) -> bool {
    area.width < MIN_WIDTH || area.height < MIN_HEIGHT
}

pub struct Screen {
    pub status: Rect,
    /// Files view.
    pub files: Rect,
    pub preview: Rect,
    /// Results view.
    pub query: Rect,
    pub details: Rect,
    pub grid: Rect,
}

pub fn screen(area: Rect) -> Screen {
    let [body, status] = Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
    let [files, preview] = Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body);
    let side = (body.width / 3).clamp(24, 44);
    let [left, grid] = Layout::horizontal([Constraint::Length(side), Constraint::Min(0)]).areas(body);
    let [query, details] = Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(left);
    Screen { status, files, preview, query, details, grid }
}

pub struct Grid {
    pub columns: usize,
    pub rows: usize,
    /// Tiles in reading order.
    pub tiles: Vec<Rect>,
}

/// Tiles inside the results block (its border excluded).
pub fn grid(area: Rect) -> Grid {
    let inner = inner(area);
    let columns = (inner.width / TILE_WIDTH).max(1);
    let rows = (inner.height / TILE_HEIGHT).max(1);
    let (w, h) = (inner.width / columns, inner.height / rows);
    let tiles =
        (0..rows).flat_map(|r| (0..columns).map(move |c| Rect::new(inner.x + c * w, inner.y + r * h, w, h))).collect();
    Grid { columns: columns as usize, rows: rows as usize, tiles }
}

/// The area inside a one-cell border.
pub fn inner(area: Rect) -> Rect {
    Rect::new(area.x + 1, area.y + 1, area.width.saturating_sub(2), area.height.saturating_sub(2))
}

/// Splits a bordered pane into its image and the caption lines below it.
pub fn picture(area: Rect) -> (Rect, Rect) {
    let inner = inner(area);
    let caption = CAPTION_LINES.min(inner.height);
    let image = Rect::new(inner.x, inner.y, inner.width, inner.height - caption);
    (image, Rect::new(inner.x, inner.y + image.height, inner.width, caption))
}

/// The bordered panes covering the results grid when zoomed, each with its image: the
/// selected result or the query alone, or the two side by side.
pub fn zoomed(app: &App, grid: Rect) -> Vec<(PathBuf, Rect)> {
    let query = app.query.as_ref().map(|q| q.image_path().to_path_buf());
    let result = app.selected_hit().map(|h| h.path.clone());
    let inner = inner(grid);
    match app.zoom {
        None => Vec::new(),
        Some(Zoom::Result) => result.map(|p| (p, inner)).into_iter().collect(),
        Some(Zoom::Query) => query.map(|p| (p, inner)).into_iter().collect(),
        Some(Zoom::SideBySide) => {
            let [left, right] =
                Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(inner);
            [query.map(|p| (p, left)), result.map(|p| (p, right))].into_iter().flatten().collect()
        }
    }
}

/// Photos of a duplicate group shown at once, side by side.
const REVIEW_PAGE: usize = 6;

/// The panes of the review's photos over the results grid's area, each with its index in
/// the group: all of a small group side by side, else the page of the selected photo.
pub fn review_panes(app: &App, grid: Rect) -> Vec<(usize, Rect)> {
    let Some(review) = &app.review else { return Vec::new() };
    let Some(group) = review.current() else { return Vec::new() };
    let start = review.photo / REVIEW_PAGE * REVIEW_PAGE;
    let shown = (group.photos.len() - start).min(REVIEW_PAGE);
    let columns = shown.min(3) as u16;
    let rows = shown.div_ceil(3) as u16;
    let inner = inner(grid);
    let (w, h) = (inner.width / columns.max(1), inner.height / rows.max(1));
    (0..shown)
        .map(|i| {
            let (c, r) = ((i % 3) as u16, (i / 3) as u16);
            (start + i, Rect::new(inner.x + c * w, inner.y + r * h, w, h))
        })
        .collect()
}

/// The images on screen now, where they go, and whether they are drawn in cells (half
/// blocks) whatever the terminal's protocol: the query photo while a region is chosen
/// over it, because sixel and iTerm2 images cover any text drawn on them.
pub fn images(app: &App, area: Rect) -> Vec<(PathBuf, Rect, bool)> {
    if too_small(area) {
        return Vec::new();
    }
    let s = screen(area);
    let mut out = Vec::new();
    match app.view {
        View::Files => {
            if let Some(path) = app.files.highlighted_image() {
                out.push((path, picture(s.preview).0, false));
            }
        }
        View::Results => {
            if let Some(q) = &app.query {
                out.push((q.image_path().to_path_buf(), picture(s.query).0, app.cropping.is_some()));
            }
            if app.zoom.is_some() {
                out.extend(zoomed(app, s.grid).into_iter().map(|(path, pane)| (path, picture(pane).0, false)));
            } else {
                for (hit, tile) in app.page_hits().iter().zip(grid(s.grid).tiles) {
                    out.push((hit.path.clone(), picture(tile).0, false));
                }
            }
        }
        View::Review => {
            let group = app.review.as_ref().and_then(|r| r.current());
            for (i, pane) in review_panes(app, s.grid) {
                if let Some(photo) = group.and_then(|g| g.photos.get(i)) {
                    out.push((photo.path.clone(), picture(pane).0, false));
                }
            }
        }
    }
    out.retain(|(_, r, _)| r.width > 0 && r.height > 0);
    out
}
