//! The key bindings, once: what each key does and how the help overlay (and the README)
//! describe it. `action` looks keys up here, `view` draws the help from here.

use crossterm::event::KeyCode;

/// What a key means in the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Help,
    SwitchView,
    Up,
    Down,
    Left,
    Right,
    /// Open a folder, query an image, or search with the selected result.
    Enter,
    /// Parent folder, or the previous query.
    Back,
    Home,
    ToggleHidden,
    StartTyping,
    Type(char),
    Erase,
    Escape,
    Reindex,
    FullRebuild,
    Yes,
    No,
    FilterMenu,
    NextPage,
    PrevPage,
    Open,
    Copy,
}

/// One line of the help: the keys as shown, what they do, and the bindings behind it.
pub struct Row {
    pub keys: &'static str,
    pub help: &'static str,
    pub bindings: &'static [(KeyCode, Action)],
}

const fn c(ch: char) -> KeyCode {
    KeyCode::Char(ch)
}

/// Every binding outside text entry and confirmations. In the file picker `h` and `l`
/// mean parent folder and open (see [`action_in_picker`]).
pub const KEYMAP: &[Row] = &[
    Row {
        keys: "↑↓←→ / hjkl",
        help: "move (h: parent folder in the picker)",
        bindings: &[
            (KeyCode::Up, Action::Up),
            (KeyCode::Down, Action::Down),
            (KeyCode::Left, Action::Left),
            (KeyCode::Right, Action::Right),
            (c('k'), Action::Up),
            (c('j'), Action::Down),
            (c('h'), Action::Left),
            (c('l'), Action::Right),
        ],
    },
    Row {
        keys: "Enter / l",
        help: "open folder or query image; on a result: more like this",
        bindings: &[(KeyCode::Enter, Action::Enter)],
    },
    Row {
        keys: "Backspace / h",
        help: "parent folder; in results: previous query",
        bindings: &[(KeyCode::Backspace, Action::Back)],
    },
    Row {
        keys: "Tab",
        help: "switch between file picker and results",
        bindings: &[(KeyCode::Tab, Action::SwitchView), (KeyCode::BackTab, Action::SwitchView)],
    },
    Row { keys: "/", help: "type to filter the file list (Esc clears)", bindings: &[(c('/'), Action::StartTyping)] },
    Row { keys: "~", help: "go to the home folder", bindings: &[(c('~'), Action::Home)] },
    Row { keys: ".", help: "show or hide hidden files", bindings: &[(c('.'), Action::ToggleHidden)] },
    Row {
        keys: "f",
        help: "filter results by articleType, gender or colour",
        bindings: &[(c('f'), Action::FilterMenu)],
    },
    Row {
        keys: "n / p",
        help: "next / previous page of results (also PgDn / PgUp)",
        bindings: &[
            (c('n'), Action::NextPage),
            (c('p'), Action::PrevPage),
            (KeyCode::PageDown, Action::NextPage),
            (KeyCode::PageUp, Action::PrevPage),
        ],
    },
    Row {
        keys: "o",
        help: "open the selected file in the system viewer (local only)",
        bindings: &[(c('o'), Action::Open)],
    },
    Row {
        keys: "y",
        help: "copy the selected file's path (OSC 52, works over SSH)",
        bindings: &[(c('y'), Action::Copy)],
    },
    Row {
        keys: "r",
        help: "reindex: embed new and changed images, drop removed ones",
        bindings: &[(c('r'), Action::Reindex)],
    },
    Row { keys: "R", help: "rebuild the whole index (asks first)", bindings: &[(c('R'), Action::FullRebuild)] },
    Row {
        keys: "Esc",
        help: "close overlay, cancel reindex, clear filters",
        bindings: &[(KeyCode::Esc, Action::Escape)],
    },
    Row { keys: "?", help: "this help", bindings: &[(c('?'), Action::Help)] },
    // Ctrl-C is handled before the table: it quits whatever is open.
    Row { keys: "q / Ctrl-C", help: "quit", bindings: &[(c('q'), Action::Quit)] },
];

/// The action bound to a key, if any.
pub fn lookup(code: KeyCode) -> Option<Action> {
    KEYMAP.iter().flat_map(|row| row.bindings).find(|(k, _)| *k == code).map(|&(_, a)| a)
}

/// In the file picker `h` goes to the parent folder and `l` opens, like Backspace and Enter.
pub fn action_in_picker(code: KeyCode, action: Action) -> Action {
    match (code, action) {
        (KeyCode::Char('h'), Action::Left) => Action::Back,
        (KeyCode::Char('l'), Action::Right) => Action::Enter,
        _ => action,
    }
}

/// How the help names a key.
pub fn key_name(code: KeyCode) -> String {
    match code {
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Backspace => "Backspace".into(),
        KeyCode::Tab | KeyCode::BackTab => "Tab".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Char(ch) => ch.to_string(),
        other => format!("{other:?}"),
    }
}
