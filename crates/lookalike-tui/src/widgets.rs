//! Thumbnails: made off the UI thread in the terminal's graphics protocol, cached, drawn.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ratatui::buffer::Buffer;
use ratatui::layout::{Rect, Size};
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget};
use ratatui_image::picker::Picker;
use ratatui_image::protocol::Protocol;
use ratatui_image::{FilterType, Image, Resize};

use lookalike_core::catalog::CatalogSource;

use crate::photo_cache::PhotoCache;
use lookalike_core::model;

/// A thumbnail for one image at one size, in the session's protocol or (true) in cells.
pub type ThumbKey = (PathBuf, u16, u16, bool);

pub enum Thumb {
    Pending,
    Ready(Box<Ready>),
    Failed(String),
}

pub struct Ready {
    pub protocol: Protocol,
    /// The original image's size in pixels, and its file's in bytes.
    pub pixels: (u32, u32),
    pub bytes: u64,
}

/// Keeps at most this many thumbnails; more are dropped, least recently wanted first.
const CAPACITY: usize = 400;

#[derive(Default)]
pub struct Thumbs {
    map: HashMap<ThumbKey, (Thumb, u64)>,
    clock: u64,
}

pub fn key(path: &Path, area: Rect) -> ThumbKey {
    (path.to_path_buf(), area.width, area.height, false)
}

/// The key of a thumbnail drawn in cells (half blocks), so text can be drawn over it.
pub fn cell_key(path: &Path, area: Rect) -> ThumbKey {
    (path.to_path_buf(), area.width, area.height, true)
}

impl Thumbs {
    pub fn get(&self, key: &ThumbKey) -> Option<&Thumb> {
        self.map.get(key).map(|(t, _)| t)
    }

    /// "640x480 px · 41.2 KiB" for an image whose thumbnail is ready.
    pub fn facts(&self, path: &Path, area: Rect) -> Option<String> {
        match self.get(&key(path, area))? {
            Thumb::Ready(r) => Some(format!("{}x{} px · {}", r.pixels.0, r.pixels.1, human_size(r.bytes))),
            _ => None,
        }
    }

    pub fn insert(&mut self, key: ThumbKey, thumb: Thumb) {
        self.clock += 1;
        self.map.insert(key, (thumb, self.clock));
    }

    /// Marks what is on screen as recently used and returns the thumbnails still to make.
    pub fn wanted(&mut self, images: &[(PathBuf, Rect, bool)]) -> Vec<ThumbKey> {
        self.clock += 1;
        let mut missing = Vec::new();
        for (path, area, cells) in images {
            let k = (path.clone(), area.width, area.height, *cells);
            match self.map.get_mut(&k) {
                Some(entry) => entry.1 = self.clock,
                None => {
                    self.map.insert(k.clone(), (Thumb::Pending, self.clock));
                    missing.push(k);
                }
            }
        }
        if self.map.len() > CAPACITY {
            let mut ages: Vec<u64> = self.map.values().map(|(_, t)| *t).collect();
            ages.sort_unstable();
            let cutoff = ages[self.map.len() - CAPACITY];
            self.map.retain(|_, (_, t)| *t >= cutoff);
        }
        missing
    }
}

/// Decodes, scales and encodes one thumbnail; runs on a worker thread. A catalog item is
/// read through its catalog (a bucket's photos have no local file), anything else from disk.
pub fn make(
    picker: &Picker,
    key: &ThumbKey,
    catalog: Option<&dyn CatalogSource>,
    cache: Option<&PhotoCache>,
) -> Result<Ready, String> {
    let (path, w, h, cells) = key;
    let read = match (catalog.and_then(|c| Some((c, c.key_of(path)?))), cache) {
        (Some((c, rel)), Some(cache)) => cache.read(c, &rel, path),
        (Some((c, rel)), None) => c.read(&rel),
        (None, _) => lookalike_core::files::read_file(path),
    };
    let data = read.map_err(|e| e.to_string())?;
    let rgb = model::decode_bytes(&data).map_err(|e| e.to_string())?;
    let bytes = data.len() as u64;
    let pixels = rgb.dimensions();
    let halfblocks;
    let picker = if *cells {
        halfblocks = Picker::halfblocks();
        &halfblocks
    } else {
        picker
    };
    let protocol = picker
        .new_protocol(image::DynamicImage::ImageRgb8(rgb), Size::new(*w, *h), Resize::Scale(Some(FilterType::Triangle)))
        .map_err(|e| format!("cannot draw {}: {e}", path.display()))?;
    Ok(Ready { protocol, pixels, bytes })
}

/// Where the ready thumbnail of `key` is drawn inside `area`: centred when its aspect
/// leaves room.
pub fn drawn_area(thumbs: &Thumbs, key: &ThumbKey, area: Rect) -> Option<Rect> {
    let Some(Thumb::Ready(ready)) = thumbs.get(key) else { return None };
    let size = ready.protocol.size();
    let x = area.x + area.width.saturating_sub(size.width) / 2;
    let y = area.y + area.height.saturating_sub(size.height) / 2;
    Some(Rect::new(x, y, size.width.min(area.width), size.height.min(area.height)))
}

/// Draws the thumbnail of `path` into `area`, or says why there is none.
pub fn render_thumb(thumbs: &Thumbs, path: &Path, area: Rect, buf: &mut Buffer) {
    render_key(thumbs, &key(path, area), area, buf)
}

/// Draws the thumbnail `key` into `area`, or says why there is none.
pub fn render_key(thumbs: &Thumbs, key: &ThumbKey, area: Rect, buf: &mut Buffer) {
    if area.width == 0 || area.height == 0 {
        return;
    }
    let (text, style) = match thumbs.get(key) {
        Some(Thumb::Ready(ready)) => {
            let at = drawn_area(thumbs, key, area).unwrap_or(area);
            Image::new(&ready.protocol).render(at, buf);
            return;
        }
        Some(Thumb::Failed(_)) => ("no preview", Style::new().dark_gray()),
        _ => ("…", Style::new().dark_gray()),
    };
    let y = area.y + area.height / 2;
    Paragraph::new(Line::from(text).centered()).style(style).render(Rect::new(area.x, y, area.width, 1), buf);
}

/// "41.2 KiB": a byte count for people.
pub fn human_size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1024 * 1024 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)),
    }
}
