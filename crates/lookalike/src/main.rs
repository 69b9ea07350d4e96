//! `lookalike`: the command line and the terminal UI over lookalike-core.

use std::alloc::{GlobalAlloc, Layout, System};

use clap::Parser;
use lookalike_core::ErrorKind;

mod cli;

/// Large buffers (activations, packed weights) start on a cache line, so the convolution
/// kernel's 32-byte loads and stores never straddle two lines.
struct CacheAligned;

impl CacheAligned {
    fn layout(l: Layout) -> Layout {
        match Layout::from_size_align(l.size(), 64) {
            Ok(aligned) if l.size() >= 4096 && l.align() < 64 => aligned,
            _ => l,
        }
    }
}

// SAFETY: every block is allocated and freed by System with the same adjusted layout.
unsafe impl GlobalAlloc for CacheAligned {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        System.alloc(Self::layout(l))
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        System.alloc_zeroed(Self::layout(l))
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, Self::layout(l))
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, size: usize) -> *mut u8 {
        let (old, new) = (Self::layout(l), Self::layout(Layout::from_size_align_unchecked(size, l.align())));
        if old.align() == new.align() {
            return System.realloc(p, old, size);
        }
        let q = System.alloc(new);
        if !q.is_null() {
            std::ptr::copy_nonoverlapping(p, q, l.size().min(size));
            System.dealloc(p, old);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: CacheAligned = CacheAligned;

fn main() -> std::process::ExitCode {
    tune_allocator();
    lookalike_s3::register();
    lookalike_postgres::register();
    let cli = cli::Cli::parse();
    if cli.prints_only() {
        die_on_closed_pipe();
    }
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            match advice(&err) {
                Some(advice) => eprintln!("error: {}: {advice}", one_line(&err)),
                None => eprintln!("error: {}", one_line(&err)),
            }
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once (a message that already
/// includes its cause's text does not repeat it).
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

/// What to run about an engine error; the core's messages say what and why only.
fn advice(err: &anyhow::Error) -> Option<&'static str> {
    let err = err.chain().find_map(|e| e.downcast_ref::<lookalike_core::Error>())?;
    Some(match (err.kind(), err) {
        (ErrorKind::NotIndexed | ErrorKind::Outdated, _) => "run `lookalike index`",
        (ErrorKind::WeightsMissing, _) => "run `lookalike fetch-weights` first",
        (ErrorKind::WeightsInvalid, _) => "run `lookalike fetch-weights --force`",
        (ErrorKind::Locked, _) => "wait for it to finish and run again",
        (ErrorKind::Damaged, e) if e.damaged_path().is_some_and(|p| p.ends_with("store.lks")) => {
            "run `lookalike index --full` to rebuild it"
        }
        (ErrorKind::Damaged, _) => "run `lookalike index` to rebuild it",
        (ErrorKind::Io, lookalike_core::Error::Io { action: "cannot create state folder", .. }) => {
            "set LOOKALIKE_STATE_DIR or [store] state_dir to a writable folder"
        }
        _ => return None,
    })
}

/// `lookalike query ... | head` closes the pipe early: a printing command then ends at
/// once and quietly, as Unix tools do, instead of panicking in `println!`. Rust ignores
/// SIGPIPE by default; the server and the TUI keep that (they write to sockets and a
/// terminal, and handle their errors).
fn die_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called in main before any other thread exists; SIG_DFL is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// candle allocates and frees tens of MiB per layer; glibc serves those with mmap and
/// returns them at once, so every layer page-faults afresh (a third of the CPU time was
/// in the kernel). Keeping freed memory in the heap makes it reusable.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
