//! The `jam` binary: hands the command line and the process environment to the library.

fn main() -> std::process::ExitCode {
    jam::cli::main(jam::config::Env::process())
}
