// No production function over 80 lines (clippy.toml sets the threshold). Clippy counts
// code lines only (no blanks or comments), so this is a looser net than counting raw lines;
// tests are exempt.
#![cfg_attr(not(test), warn(clippy::too_many_lines))]

use clap::Parser;

// mimalloc: the allocator is a visible share of per-request CPU (many small, short-lived
// allocations while decoding), and musl's allocator in the static image is slow.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in the mimalloc that libmimalloc-sys 0.1.49 builds (v3,
/// `c_src/mimalloc/v3/include/mimalloc.h`): how long freed memory waits before it is returned
/// to the OS. The Rust bindings have no constant for it; `purge_delay_option_index` checks it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
/// What volguard sets: mimalloc v2's default. v3's is 1000 ms (`src/options.c`), and with it
/// memory freed by one thread was not reused by the others in time: two clients resending a
/// 3 MiB worst-case Pod drove the process past the chart's 128Mi (OOM-killed). 10 ms keeps
/// that attack well inside it for a few percent more CPU per large request; 0 ms costs twice
/// that. The runs: bench/README.md, "Figures behind the code".
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// Sets the purge delay unless the environment (`MIMALLOC_PURGE_DELAY`) chose one.
fn set_purge_delay() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets a process-wide integer option of the allocator; mimalloc documents
        // `mi_option_set` as callable at any time from any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

/// Run by a server thread that has run out of work: at most every 100 ms per thread, gives
/// back to the OS what the thread's heap has freed. mimalloc purges a thread's freed pages
/// only when that thread calls into it again, so after a burst of large reviews idle threads
/// kept megabytes of freed memory. Rate-limited because a forced collect on every park cost a
/// fifth or more of the CPU per review, while once every 100 ms costs nothing measurable
/// (bench/README.md, "Figures behind the code").
fn collect_idle_heap() {
    use std::cell::Cell;
    use std::time::{Duration, Instant};
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    if LAST
        .get()
        .is_some_and(|t| now.duration_since(t) < Duration::from_millis(100))
    {
        return;
    }
    LAST.set(Some(now));
    // SAFETY: `mi_collect` returns the calling thread's unused heap memory to the OS;
    // mimalloc documents it as callable at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

fn main() -> std::process::ExitCode {
    set_purge_delay();
    volguard::server::set_idle_hook(collect_idle_heap);
    // One crypto provider for every TLS user in the process (server, kube client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    volguard::cli::run(volguard::cli::Cli::parse())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purge_delay_option_index() {
        // SAFETY: reads an allocator option.
        let get = || unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        // c_src/mimalloc/v3/src/options.c: `{ 1000, ..., MI_OPTION_LEGACY(purge_delay,
        // reset_delay) }`, between deprecated_eager_commit_delay (1) and use_numa_nodes (0),
        // so 1000 identifies the index.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(
                get(),
                1000,
                "index {MI_OPTION_PURGE_DELAY} is not purge_delay"
            );
            set_purge_delay();
            assert_eq!(get(), PURGE_DELAY_MS);
        }
    }
}
