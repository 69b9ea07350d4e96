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
    /// Mark the selected result up or down for the next refined search (again: unmark).
    Like,
    Unlike,
    ClearMarks,
    /// Search again with the marks (relevance feedback).
    Refine,
    /// Choose a region of the query photo; `ClearRegion` searches the whole photo again.
    Crop,
    ClearRegion,
    /// Results in the query's colours, or in any colour.
    ToggleColour,
    /// The selected result, or the query, over the whole results pane; or both side by side.
    ZoomResult,
    ZoomQuery,
    SideBySide,
    /// Resizing the region (crop mode).
    Narrower,
    Wider,
    Shorter,
    Taller,
    /// Open the duplicate review, or leave it.
    Review,
    /// Review: record keep or drop for the selected photo, or forget its decision.
    Keep,
    Drop,
    Undecide,
    /// Review: keep the suggested keeper, drop the group's other photos, go on.
    AcceptSuggestion,
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

/// The arrows and vi keys, which move the selection (and, after `c`, the region).
const MOVE: &[(KeyCode, Action)] = &[
    (KeyCode::Up, Action::Up),
    (KeyCode::Down, Action::Down),
    (KeyCode::Left, Action::Left),
    (KeyCode::Right, Action::Right),
    (c('k'), Action::Up),
    (c('j'), Action::Down),
    (c('h'), Action::Left),
    (c('l'), Action::Right),
];

/// Every binding outside text entry and confirmations. In the file picker `h` and `l`
/// mean parent folder and open (see [`action_in_picker`]).
pub const KEYMAP: &[Row] = &[
    Row { keys: "↑↓←→ / hjkl", help: "move (h: parent folder in the picker)", bindings: MOVE },
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
    Row {
        keys: "~ / .",
        help: "go to the home folder / show or hide hidden files",
        bindings: &[(c('~'), Action::Home), (c('.'), Action::ToggleHidden)],
    },
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
        keys: "+ / -",
        help: "mark the selected result as more / less like what you want (again: unmark)",
        bindings: &[(c('+'), Action::Like), (c('-'), Action::Unlike)],
    },
    Row {
        keys: "s / x",
        help: "search again moved by the marks / clear the marks",
        bindings: &[(c('s'), Action::Refine), (c('x'), Action::ClearMarks)],
    },
    Row {
        keys: "c / C",
        help: "choose a region of the query photo / the whole photo again",
        bindings: &[(c('c'), Action::Crop), (c('C'), Action::ClearRegion)],
    },
    Row {
        keys: "a",
        help: "results in any colour / in the query's colours (searches again)",
        bindings: &[(c('a'), Action::ToggleColour)],
    },
    Row {
        keys: "z / Z",
        help: "zoom the selected result / the query over the results (again: back)",
        bindings: &[(c('z'), Action::ZoomResult), (c('Z'), Action::ZoomQuery)],
    },
    Row { keys: "v", help: "query and selected result side by side", bindings: &[(c('v'), Action::SideBySide)] },
    Row {
        keys: "r / R",
        help: "reindex new and changed images / rebuild all (asks first)",
        bindings: &[(c('r'), Action::Reindex), (c('R'), Action::FullRebuild)],
    },
    Row { keys: "D", help: "review duplicate photos: keep or drop each copy", bindings: &[(c('D'), Action::Review)] },
    Row {
        keys: "Esc",
        help: "close overlay, cancel reindex, clear filters",
        bindings: &[(KeyCode::Esc, Action::Escape)],
    },
    Row { keys: "?", help: "this help", bindings: &[(c('?'), Action::Help)] },
    // Ctrl-C is handled before the table: it quits whatever is open.
    Row { keys: "q / Ctrl-C", help: "quit", bindings: &[(c('q'), Action::Quit)] },
];

/// The keys while a region of the query photo is being chosen (after `c`).
pub const CROP_KEYMAP: &[Row] = &[
    Row { keys: "↑↓←→ / hjkl", help: "move the region", bindings: MOVE },
    Row {
        keys: "H / L",
        help: "make the region narrower / wider",
        bindings: &[(c('H'), Action::Narrower), (c('L'), Action::Wider)],
    },
    Row {
        keys: "K / J",
        help: "make the region shorter / taller",
        bindings: &[(c('K'), Action::Shorter), (c('J'), Action::Taller)],
    },
    Row { keys: "c", help: "start again from the whole photo", bindings: &[(c('c'), Action::Crop)] },
    Row { keys: "Enter", help: "search with the region", bindings: &[(KeyCode::Enter, Action::Enter)] },
    Row { keys: "Esc", help: "leave the region as it was", bindings: &[(KeyCode::Esc, Action::Escape)] },
    Row { keys: "?", help: "this help", bindings: &[(c('?'), Action::Help)] },
];

/// The keys in the duplicate review (after `D`).
pub const REVIEW_KEYMAP: &[Row] = &[
    Row {
        keys: "←→ / hl",
        help: "previous / next photo of the group",
        bindings: &[
            (KeyCode::Left, Action::Left),
            (KeyCode::Right, Action::Right),
            (c('h'), Action::Left),
            (c('l'), Action::Right),
        ],
    },
    Row {
        keys: "↑↓ / jk / n p",
        help: "previous / next group",
        bindings: &[
            (KeyCode::Up, Action::Up),
            (KeyCode::Down, Action::Down),
            (c('k'), Action::Up),
            (c('j'), Action::Down),
            (c('p'), Action::Up),
            (c('n'), Action::Down),
        ],
    },
    Row {
        keys: "+ / -",
        help: "keep / drop the selected photo",
        bindings: &[(c('+'), Action::Keep), (c('-'), Action::Drop)],
    },
    Row { keys: "u", help: "no decision on the selected photo", bindings: &[(c('u'), Action::Undecide)] },
    Row {
        keys: "A",
        help: "keep the suggested keeper, drop the rest, next group",
        bindings: &[(c('A'), Action::AcceptSuggestion)],
    },
    Row {
        keys: "o / y",
        help: "open the photo (local only) / copy its path",
        bindings: &[(c('o'), Action::Open), (c('y'), Action::Copy)],
    },
    Row {
        keys: "Esc / D",
        help: "leave the review (decisions are saved as you go)",
        bindings: &[(KeyCode::Esc, Action::Review), (c('D'), Action::Review)],
    },
    Row { keys: "?", help: "this help", bindings: &[(c('?'), Action::Help)] },
    Row { keys: "q / Ctrl-C", help: "quit", bindings: &[(c('q'), Action::Quit)] },
];

/// The action bound to a key in a table, if any.
pub fn lookup_in(table: &[Row], code: KeyCode) -> Option<Action> {
    table.iter().flat_map(|row| row.bindings).find(|(k, _)| *k == code).map(|&(_, a)| a)
}

/// The action bound to a key, if any.
pub fn lookup(code: KeyCode) -> Option<Action> {
    lookup_in(KEYMAP, code)
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
