//! The `jam` command line: argument definitions, logging and runtime setup, and the mapping from errors to
//! exit codes. Each subcommand lives in its own module with its `Args` and `run`.

mod display;
mod doctor;
mod fetch;
mod ls;
mod mirror;
mod output;
mod prune;
mod runtime;
mod serve;
mod shared;
mod verify;

use std::{io::Write, path::PathBuf, process::ExitCode};

use clap::{CommandFactory, Parser, Subcommand};

use crate::{
    config::{Env, LogFormat, Overrides},
    error::{Error, exit},
};

const AFTER_HELP: &str = "\
Configuration: a TOML file (--config, else JAM_CONFIG, else ./jam.toml if present), then the environment, then
flags; later wins. Environment: JAM_STORE, JENKINS_URL, JENKINS_USER, JENKINS_API_TOKEN, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP, JAM_LOG, JAM_LOG_FORMAT, RUST_LOG,
NO_COLOR.

Exit codes: 0 success; 1 failure; 2 usage or configuration error; 3 job, build or artifact not found;
4 integrity failure (checksum or size mismatch).";

/// jam's version as `jam --version` prints it: the crate's version and the git commit it was built from
/// (`unknown` when it was built outside a git checkout; see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("JAM_GIT_COMMIT"),
    ")"
);

/// jam, the Jenkins Artifact Mirror: streams Jenkins build artifacts into S3-compatible storage (or a
/// local directory), verified end to end, and fetches them back.
#[derive(Debug, Parser)]
#[command(name = "jam", version = VERSION, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    /// Config file [default: ./jam.toml if present; env: JAM_CONFIG]
    #[arg(long, short = 'c', global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Store URL: s3://bucket[/prefix], file:///abs/path, a directory, or memory:// [default: ./jam-mirror;
    /// env: JAM_STORE]
    #[arg(long, global = true, value_name = "URL")]
    pub store: Option<String>,
    /// Log level or filter, e.g. info, debug, jam=trace (RUST_LOG wins) [env: JAM_LOG]
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format [env: JAM_LOG_FORMAT]
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// jam's subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Poll Jenkins and mirror finished builds into the store.
    Mirror(mirror::MirrorArgs),
    /// Get artifacts of a job's latest (or a chosen) build.
    Fetch(fetch::FetchArgs),
    /// List mirrored jobs, a job's builds, or a build's artifacts.
    Ls(ls::LsArgs),
    /// Audit the mirror: manifests, objects, checksums, pointers.
    Verify(verify::VerifyArgs),
    /// Check the set-up: config, each controller (auth, jobs), the store (write, read, create, delete).
    Doctor(doctor::DoctorArgs),
    /// Delete mirrored builds the `[[retention]]` policy no longer keeps.
    Prune(prune::PruneArgs),
    /// Serve the mirror over HTTP the way Jenkins answers: its URLs, JSON API, downloads and pages.
    Serve(serve::ServeArgs),
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the manual pages, jam(1) and one page per subcommand (jam-mirror(1), ...), into DIR: the
    /// package is built with it.
    #[command(hide = true)]
    Manpages {
        /// The directory to write `jam.1` and `jam-<subcommand>.1` into (created if missing).
        dir: PathBuf,
    },
}

impl Cli {
    fn overrides(&self) -> Overrides {
        Overrides {
            config: self.config.clone(),
            store: self.store.clone(),
            log_level: self.log_level.clone(),
            log_format: self.log_format,
            ..Default::default()
        }
    }
}

/// The binary's entry point: parses arguments, runs the command with `env` (the process environment,
/// [`Env::process`]), prints errors, returns the exit code.
pub fn main(env: Env<'static>) -> ExitCode {
    let cli = Cli::parse();
    let code = match run(cli, &env) {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "error: {e}");
            e.exit_code()
        }
    };
    ExitCode::from(code)
}

/// Runs a parsed command line with the process environment `env` (the only way the environment reaches
/// the library: `config` reads it from there); returns the exit code on success paths that still report
/// failure.
pub fn run(cli: Cli, env: &Env<'_>) -> crate::Result<u8> {
    let flags = cli.overrides();
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "jam", &mut std::io::stdout());
            Ok(exit::OK)
        }
        Command::Manpages { dir } => {
            write_manpages(&dir)?;
            Ok(exit::OK)
        }
        Command::Mirror(args) => mirror::run(args, flags, env),
        Command::Fetch(args) => fetch::run(args, flags, env),
        Command::Ls(args) => ls::run(args, flags, env),
        Command::Verify(args) => verify::run(args, flags, env),
        Command::Doctor(args) => doctor::run(args, flags, env),
        Command::Prune(args) => prune::run(args, flags, env),
        Command::Serve(args) => serve::run(args, flags, env),
    }
}

/// Writes `jam.1` and a page per visible subcommand into `dir`, generated from the clap definitions.
fn write_manpages(dir: &std::path::Path) -> crate::Result<()> {
    let io = |what, source| Error::Io {
        what,
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| io("cannot create the directory", e))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .map_err(|e| io("cannot write the manual pages into", e))
}

/// A multi-threaded runtime for commands that need one.
fn runtime() -> crate::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
}
