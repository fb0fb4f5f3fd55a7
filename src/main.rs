use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    hookhub::logging::init();
    let cli = hookhub::cli::Cli::parse();
    actix_web::rt::System::new().block_on(hookhub::cli::run(cli))
}
