use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    return_large_buffers_to_the_os();
    hookhub::logging::init();
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
