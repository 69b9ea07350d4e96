//! The terminal UI over lookalike-core. One loop receives key presses, worker results and
//! ticks as events; `action` updates the `state`, `view` draws it, `worker` does
//! everything slow (listing, searching, indexing, thumbnails) through one shared engine.

pub mod action;
pub mod keymap;
pub mod layout;
pub mod photo_cache;
pub mod state;
pub mod view;
pub mod widgets;
pub mod worker;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use crossterm::event::MouseEventKind;
use ratatui::layout::Rect;
use ratatui_image::picker::cap_parser::QueryStdioOptions;
use ratatui_image::picker::{Picker, ProtocolType};

use action::Effect;
use lookalike_core::Config;
use state::{App, QuerySource};
use widgets::{Thumb, Thumbs};
use worker::{Event, Workers};

/// How long the terminal may take to answer the graphics query; SSH adds latency.
const QUERY_TIMEOUT: Duration = Duration::from_millis(1500);
/// The hidden subcommand that runs the query in a child process.
pub const PROBE_COMMAND: &str = "__probe-graphics";
const TICK: Duration = Duration::from_millis(100);

/// How the TUI draws images (`[ui] graphics`, `--graphics`); `auto` asks the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Graphics {
    #[default]
    Auto,
    Kitty,
    Sixel,
    Iterm2,
    Halfblocks,
}

impl Graphics {
    pub const ALL: [Graphics; 5] =
        [Graphics::Auto, Graphics::Kitty, Graphics::Sixel, Graphics::Iterm2, Graphics::Halfblocks];

    pub fn name(self) -> &'static str {
        match self {
            Graphics::Auto => "auto",
            Graphics::Kitty => "kitty",
            Graphics::Sixel => "sixel",
            Graphics::Iterm2 => "iterm2",
            Graphics::Halfblocks => "halfblocks",
        }
    }

    /// The `[ui] graphics` setting of a configuration (auto when absent); unknown keys
    /// and values in `[ui]` are errors that name them.
    pub fn from_config(config: &Config) -> Result<Graphics> {
        Ok(UiSettings::from_config(config)?.graphics.unwrap_or_default())
    }
}

/// The `[ui]` section: read here, checked by every command.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UiSettings {
    graphics: Option<Graphics>,
    /// Bound of the on-disk cache of a remote catalog's photos, MiB; 0 = no cache.
    photo_cache_mib: Option<u64>,
    /// Clicks and the wheel (default on); off leaves the mouse to the terminal (selecting text).
    mouse: Option<bool>,
}

impl UiSettings {
    fn from_config(config: &Config) -> Result<UiSettings> {
        config.ui.clone().try_into().context("invalid [ui] section")
    }

    /// Bytes the photo cache may hold (default 256 MiB).
    fn photo_cache_bytes(&self) -> u64 {
        self.photo_cache_mib.unwrap_or(256).saturating_mul(1 << 20)
    }
}

/// Opens the TUI. `start` is a folder for the file picker, or an image to search with at once.
pub fn run(config: Config, start: Option<PathBuf>, graphics: Option<Graphics>) -> Result<()> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("the TUI needs a terminal; for scripts use the subcommands (`lookalike --help`)");
    }
    let start = match start {
        Some(p) => p,
        None => std::env::current_dir().context("cannot read the current folder")?,
    };
    let start = std::fs::canonicalize(&start).with_context(|| format!("cannot open {}", start.display()))?;
    let (dir, query) = if start.is_dir() {
        (start, None)
    } else {
        (start.parent().map(PathBuf::from).unwrap_or_default(), Some(QuerySource::File(start)))
    };

    // Restores the terminal on panic too (ratatui installs the hook).
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let graphics = match graphics {
        Some(g) => g,
        None => Graphics::from_config(&config)?,
    };
    let picker = picker(graphics);
    let mouse = UiSettings::from_config(&config)?.mouse.unwrap_or(true);
    if mouse {
        crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture)
            .context("cannot turn on mouse reporting")?;
    }
    let result = event_loop(&mut terminal, config, picker, dir, query);
    if mouse {
        let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
    }
    ratatui::restore();
    result
}

/// The graphics protocol: asked of the terminal (bounded by a timeout) unless configured.
fn picker(setting: Graphics) -> Picker {
    let forced = match setting {
        Graphics::Auto => None,
        Graphics::Halfblocks => return Picker::halfblocks(),
        Graphics::Kitty => Some(ProtocolType::Kitty),
        Graphics::Sixel => Some(ProtocolType::Sixel),
        Graphics::Iterm2 => Some(ProtocolType::Iterm2),
    };
    // The query also measures the font's cell size, which a forced protocol needs too.
    let mut picker = probe().unwrap_or_else(Picker::halfblocks);
    if let Some(protocol) = forced {
        picker.set_protocol_type(protocol);
    }
    picker
}

/// Queries the terminal from a child process. When the terminal never answers (tmux
/// without a graphics-capable client, some SSH setups), ratatui-image's reader thread
/// stays blocked on stdin and would swallow key presses; killing the child ends it.
fn probe() -> Option<Picker> {
    let exe = std::env::current_exe().ok()?;
    let mut child =
        std::process::Command::new(exe).arg(PROBE_COMMAND).stderr(std::process::Stdio::piped()).spawn().ok()?;
    let deadline = std::time::Instant::now() + QUERY_TIMEOUT + Duration::from_millis(500);
    while child.try_wait().ok()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take()?, &mut answer).ok()?;
    let mut words = answer.split_whitespace();
    let protocol = match words.next()? {
        "kitty" => ProtocolType::Kitty,
        "sixel" => ProtocolType::Sixel,
        "iterm2" => ProtocolType::Iterm2,
        _ => ProtocolType::Halfblocks,
    };
    let (w, h): (u16, u16) = (words.next()?.parse().ok()?, words.next()?.parse().ok()?);
    // The font size came from the child's query; this constructor is the one that takes it.
    #[allow(deprecated)]
    let mut picker = Picker::from_fontsize(ratatui_image::FontSize::new(w, h));
    picker.set_protocol_type(protocol);
    Some(picker)
}

/// The child side of `probe`: answers "PROTOCOL WIDTH HEIGHT" on stderr.
pub fn probe_main() -> Result<()> {
    let options = QueryStdioOptions { timeout: QUERY_TIMEOUT, ..Default::default() };
    let picker = Picker::from_query_stdio_with_options(options).map_err(|e| anyhow::anyhow!("{e}"))?;
    let font = picker.font_size();
    eprintln!("{} {} {}", protocol_name(picker.protocol_type()), font.width, font.height);
    Ok(())
}

pub fn protocol_name(protocol: ProtocolType) -> &'static str {
    match protocol {
        ProtocolType::Halfblocks => "halfblocks",
        ProtocolType::Sixel => "sixel",
        ProtocolType::Kitty => "kitty",
        ProtocolType::Iterm2 => "iterm2",
    }
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    config: Config,
    picker: Picker,
    dir: PathBuf,
    query: Option<QuerySource>,
) -> Result<()> {
    let (tx, rx) = mpsc::channel();
    let input = tx.clone();
    std::thread::Builder::new().name("input".into()).spawn(move || loop {
        let event = match crossterm::event::read() {
            Ok(crossterm::event::Event::Key(key)) => Event::Key(key),
            // Motion would redraw the screen for nothing: clicks, drags and the wheel matter.
            Ok(crossterm::event::Event::Mouse(m)) if m.kind != MouseEventKind::Moved => Event::Mouse(m),
            Ok(crossterm::event::Event::Resize(w, h)) => Event::Resize(w, h),
            Ok(_) => continue,
            Err(_) => return,
        };
        if input.send(event).is_err() {
            return;
        }
    })?;

    let mut app = App::new(
        dir.clone(),
        config.catalog.clone(),
        config.k,
        protocol_name(picker.protocol_type()).to_string(),
        worker::is_local(),
    );
    let size = terminal.size()?;
    app.resize(size.width, size.height);
    let cache_bytes = UiSettings::from_config(&config)?.photo_cache_bytes();
    let mut workers = Workers::start(&config, picker, tx, cache_bytes);
    let mut thumbs = Thumbs::default();
    let mut effects = vec![Effect::ListDir(dir)];
    if let Some(q) = query {
        app.query = Some(q);
        app.view = state::View::Results;
        effects.extend(app.search());
    }
    let result = (|| -> Result<()> {
        loop {
            for effect in effects.drain(..) {
                if let Some(output) = workers.run(effect) {
                    let mut out = std::io::stdout();
                    out.write_all(output.as_bytes())?;
                    out.flush()?;
                }
            }
            if app.quit {
                return Ok(());
            }
            let area = Rect::new(0, 0, app.size.0, app.size.1);
            workers.thumbnails(thumbs.wanted(&layout::images(&app, area)));
            terminal.draw(|frame| view::draw(frame, &app, &thumbs))?;
            let event = match rx.recv_timeout(TICK) {
                Ok(event) => event,
                Err(RecvTimeoutError::Timeout) => {
                    app.tick += 1;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            effects = match event {
                Event::Key(key) => app.on_key(key),
                Event::Mouse(m) => {
                    // Where the query photo is drawn, for drawing a region over it.
                    let photo = app.query.as_ref().and_then(|q| {
                        let pane = layout::picture(layout::screen(Rect::new(0, 0, app.size.0, app.size.1)).query).0;
                        widgets::drawn_area(&thumbs, &widgets::cell_key(q.image_path(), pane), pane)
                    });
                    app.on_mouse(m, std::time::Instant::now(), photo)
                }
                Event::Resize(w, h) => {
                    app.resize(w, h);
                    Vec::new()
                }
                Event::Msg(msg) => app.on_msg(msg),
                Event::Thumb(key, made) => {
                    thumbs.insert(key, made.map(|r| Thumb::Ready(Box::new(r))).unwrap_or_else(Thumb::Failed));
                    Vec::new()
                }
            };
        }
    })();
    workers.finish();
    result
}
