use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    return_large_buffers_to_the_os();
    // Logs go to stderr; stdout carries what commands print (JSON, the first-start token).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = hookhub::cli::Cli::parse();
    actix_web::rt::System::new().block_on(hookhub::cli::run(cli))
}

/// glibc serves an allocation of 128 KiB or more from a mapping of its own, and returns it
/// to the OS when freed, but after the first such free it raises that threshold to the
/// freed size (up to 32 MiB). Then request bodies and delivery frames of megabytes come
/// from the heap, and what an agent or a sender held stays with the process after they
/// leave. A fixed threshold keeps large buffers in mappings of their own for good.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_buffers_to_the_os() {
    const THRESHOLD: libc::c_int = 1024 * 1024;
    // SAFETY: mallopt only changes allocator tuning; it is called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_buffers_to_the_os() {}
