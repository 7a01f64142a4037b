use clap::Parser;

fn main() -> std::process::ExitCode {
    // One crypto provider for every TLS user in the process (server, kube client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    volguard::cli::run(volguard::cli::Cli::parse())
}
