use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    return_large_buffers_to_the_os();
    raise_open_file_limit();
    let cli = hookhub::cli::Cli::parse();
    hookhub::logging::init(cli.log_format);
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

/// Every connection is a file descriptor, and the soft limit a shell hands out (1,024 on
/// many systems) is far below what a hub serving many agents needs; the hard limit is
/// what the administrator allows. The server then sizes its connection budget below
/// whatever limit is in force (`hookhub::admission`).
#[cfg(unix)]
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit() {}
