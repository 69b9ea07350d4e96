use clap::Parser;

fn main() -> std::process::ExitCode {
    tune_allocator();
    let cli = lookalike::cli::Cli::parse();
    match lookalike::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
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
