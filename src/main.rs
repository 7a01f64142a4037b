use clap::Parser;

// mimalloc: the allocator is a visible share of per-request CPU (many small, short-lived
// allocations while decoding), and musl's allocator in the static image is slow.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // One crypto provider for every TLS user in the process (server, kube client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    volguard::cli::run(volguard::cli::Cli::parse())
}
