//! `jam fetch`: resolves a job's build (from the mirror, or from Jenkins with `--from jenkins`), selects
//! artifacts by glob, and writes them into a directory or to stdout, verified.

use std::{io::IsTerminal, path::PathBuf, sync::Arc};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::{
    output::{human_size, print_json},
    runtime::run_interruptible,
    shared,
};
use crate::{
    archive::catalog::Catalog,
    config::{Env, Overrides},
    error::{Error, exit},
    fetch::{DirOptions, Fetched, Fetcher, ItemProgress, Origin, Progress, Resolved, Status},
    format::manifest::ms_to_rfc3339,
    jenkins::JenkinsClient,
    resolve::{self, BuildSelector, JobArg, Scope},
    store::Store,
};

/// Where to read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum From {
    /// The mirror (the object store).
    Mirror,
    /// The Jenkins controller, for builds the mirror does not have yet.
    Jenkins,
}

/// Arguments of `jam fetch`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  jam fetch team/app                         every artifact of the last successful build, into .
  jam fetch team/app -b 42 -a 'dist/*.jar'   matching artifacts of build 42
  jam fetch app/feature/x -a '**/*.tgz' -o out --flatten
  jam fetch https://ci.example.com/job/app/lastStableBuild/ --stdout -a app.tar.gz | tar xz

Exit codes: 0 success; 1 failure; 2 usage or configuration error; 3 job, build or artifact not found;
4 integrity failure (checksum or size mismatch); 130 interrupted.")]
pub struct FetchArgs {
    /// The job: a Jenkins full name (folder/app, app/feature/x) or a job URL from the browser
    #[arg(value_name = "JOB")]
    pub job: String,
    /// The build: lastSuccessful, lastStable, lastCompleted (or another permalink), or a number
    /// [default: lastSuccessful, or the build a pasted URL names]
    #[arg(long, short = 'b', value_name = "BUILD")]
    pub build: Option<BuildSelector>,
    /// Only artifacts whose relative path matches GLOB (`*` stays within a directory, `**` crosses them);
    /// repeatable
    #[arg(long, short = 'a', value_name = "GLOB")]
    pub artifact: Vec<String>,
    /// Where to read from
    #[arg(long, value_enum, default_value = "mirror")]
    pub from: From,
    /// The source (controller) name, when several are configured or mirrored
    #[arg(long, value_name = "NAME")]
    pub source: Option<String>,
    /// Output directory; artifacts keep their relative paths
    #[arg(long, short = 'o', value_name = "DIR", default_value = ".")]
    pub output: PathBuf,
    /// Write every artifact directly into the output directory, dropping its directories
    #[arg(long, conflicts_with = "stdout")]
    pub flatten: bool,
    /// Write the single selected artifact to stdout
    #[arg(long, conflicts_with_all = ["output", "json"])]
    pub stdout: bool,
    /// Download even when a local file already has the right SHA-256
    #[arg(long)]
    pub force: bool,
    /// Concurrent downloads [config: fetch.downloads; default 4]
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: Option<u16>,
    /// Print what was resolved and written as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// No progress and no summary on stderr
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// Jenkins base URL, for --from jenkins [env: JENKINS_URL]
    #[arg(long, value_name = "URL")]
    pub jenkins: Option<String>,
    /// Jenkins user, for --from jenkins [env: JENKINS_USER]
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
}

/// `--json` output.
#[derive(Debug, Serialize)]
struct Report<'a> {
    source: &'a str,
    job: String,
    items: &'a [String],
    build: u64,
    result: &'a str,
    timestamp: String,
    from: Origin,
    files: Vec<FileReport>,
}

#[derive(Debug, Serialize)]
struct FileReport {
    artifact: String,
    path: Option<String>,
    size: u64,
    sha256: String,
    status: Status,
}

/// Runs `jam fetch`.
pub fn run(args: FetchArgs, mut flags: Overrides, env: &Env<'_>) -> crate::Result<u8> {
    let job_arg = JobArg::parse(&args.job)?;
    flags.jenkins_url = args.jenkins.clone();
    flags.jenkins_user = args.user.clone();
    let (cfg, configured) = shared::load(&flags, env, args.from == From::Jenkins)?;
    let build = job_arg.build(args.build).unwrap_or_default();
    let parallel = args
        .parallel
        .map(usize::from)
        .unwrap_or(cfg.fetch.downloads);
    let scope = Scope::new(args.source.clone(), configured);
    run_interruptible(async move {
        let (mut resolved, fetcher) = match args.from {
            From::Mirror => {
                let store = Store::open(&cfg.store)?;
                let catalog = Catalog::new(store.clone());
                let b = scope.build(&catalog, &job_arg, build).await?;
                (
                    Resolved::from_mirror(&b),
                    Fetcher::from_store(store, cfg.mirror.part_size),
                )
            }
            From::Jenkins => {
                let client = JenkinsClient::new(scope.controller(&cfg.jenkins, &job_arg)?)?;
                let b = resolve::jenkins::build(&client, &job_arg, build).await?;
                (
                    Resolved::from_jenkins(&client, &b)?,
                    Fetcher::from_jenkins(client),
                )
            }
        };
        resolved.select(&args.artifact)?;
        let show = !args.quiet && std::io::stderr().is_terminal();
        let bars = Arc::new(Bars::new(show));
        let fetcher = fetcher.with_progress(bars.clone());
        let files = if args.stdout {
            let [one] = resolved.artifacts.as_slice() else {
                let mut paths: Vec<&str> =
                    resolved.artifacts.iter().map(|a| a.path.as_str()).collect();
                paths.sort();
                return Err(Error::Usage(format!(
                    "--stdout writes exactly one artifact, but {} are selected: {}; narrow the selection with --artifact",
                    paths.len(),
                    paths.join(", ")
                )));
            };
            let mut out = stdout()?;
            vec![fetcher.fetch_to_writer(one, &mut out).await?]
        } else {
            let opts = DirOptions {
                dir: args.output.clone(),
                flatten: args.flatten,
                force: args.force,
                parallel,
            };
            fetcher.fetch_to_dir(&resolved, &opts).await?
        };
        bars.clear();
        if args.json {
            print_json(&report(&resolved, &files))?;
        }
        if !args.quiet {
            summary(&resolved, &files, &args);
        }
        Ok(exit::OK)
    })
}

/// Standard output as an async file (a duplicate of descriptor 1).
fn stdout() -> crate::Result<tokio::fs::File> {
    use std::os::fd::AsFd;
    let fd = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| Error::Io {
            what: "cannot open",
            path: PathBuf::from("<stdout>"),
            source,
        })?;
    Ok(tokio::fs::File::from_std(std::fs::File::from(fd)))
}

fn report<'a>(r: &'a Resolved, files: &[Fetched]) -> Report<'a> {
    Report {
        source: &r.source,
        job: r.job.full_name(),
        items: r.job.names(),
        build: r.number,
        result: &r.result,
        timestamp: ms_to_rfc3339(r.timestamp),
        from: r.origin,
        files: files
            .iter()
            .map(|f| FileReport {
                artifact: f.artifact.clone(),
                path: f.path.as_ref().map(|p| p.display().to_string()),
                size: f.size,
                sha256: f.sha256.clone(),
                status: f.status,
            })
            .collect(),
    }
}

fn summary(r: &Resolved, files: &[Fetched], args: &FetchArgs) {
    let downloaded: Vec<&Fetched> = files
        .iter()
        .filter(|f| f.status == Status::Downloaded)
        .collect();
    let bytes: u64 = downloaded.iter().map(|f| f.size).sum();
    let present = files.len() - downloaded.len();
    let mut line = format!(
        "{} #{} ({}): {} file{}, {} downloaded",
        r.job.full_name(),
        r.number,
        if r.result.is_empty() { "?" } else { &r.result },
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        human_size(bytes),
    );
    if present > 0 {
        line.push_str(&format!(", {present} already present"));
    }
    if !args.stdout {
        line.push_str(&format!(" in {}", args.output.display()));
    }
    if r.origin == Origin::Jenkins {
        line.push_str(" (from Jenkins)");
    }
    eprintln!("{line}");
}

/// indicatif bars: one per artifact in a `MultiProgress`, drawn only on a terminal.
struct Bars {
    multi: MultiProgress,
    style: ProgressStyle,
    spinner: ProgressStyle,
}

impl Bars {
    fn new(show: bool) -> Bars {
        let target = if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            style: ProgressStyle::with_template(
                "{wide_msg} {bar:25.cyan/blue} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
            spinner: ProgressStyle::with_template(
                "{wide_msg} {spinner} {bytes:>10} {bytes_per_sec:>12}",
            )
            .expect("valid template"),
        }
    }

    fn clear(&self) {
        let _ = self.multi.clear();
    }
}

impl Progress for Bars {
    fn start(&self, path: &str, size: Option<u64>) -> Box<dyn ItemProgress> {
        let pb = match size {
            Some(n) => ProgressBar::new(n).with_style(self.style.clone()),
            None => ProgressBar::no_length().with_style(self.spinner.clone()),
        };
        let pb = self.multi.add(pb);
        pb.set_message(path.to_string());
        Box::new(Bar(pb))
    }
}

struct Bar(ProgressBar);

impl ItemProgress for Bar {
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }

    fn finish(&self, _ok: bool) {
        self.0.finish_and_clear();
    }
}
