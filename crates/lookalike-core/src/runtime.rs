//! Process-wide settings and facts: the compute threads, the peak memory.

/// Sets the number of compute threads for the whole process (0 = one per core). Call it
/// once, before any search or index run; later calls keep the first setting.
pub fn set_threads(threads: usize) {
    // Fails only when a pool exists already, and then that pool stays.
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
}

/// The number of compute threads searches and index runs use.
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Peak resident memory of this process so far, in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}
