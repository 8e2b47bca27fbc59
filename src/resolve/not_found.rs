//! What was asked for and is not there, as data: the name asked, and what exists instead (the mirror's
//! jobs, nearest names first; a job's builds; a build's artifacts; the store's sources). Each message names
//! what was asked, lists what exists (capped, with a count of the rest) and says what to do.

use std::fmt::{self, Write as _};

use super::BuildSelector;

/// Jobs listed in a message at most.
pub const JOBS_SHOWN: usize = 10;
/// Artifacts listed in a message at most.
pub const ARTIFACTS_SHOWN: usize = 20;
/// Build numbers listed in a message at most.
pub const BUILDS_SHOWN: usize = 10;

/// Where a job or build was looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The mirror (the store).
    Mirror,
    /// A Jenkins controller.
    Jenkins {
        /// Its base URL.
        url: String,
    },
}

/// Something asked for that does not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotFound {
    /// No job by that name in a source of the mirror.
    Job {
        /// The name as typed.
        name: String,
        /// The source searched.
        source_name: String,
        /// The jobs the source holds (full names), nearest to `name` first.
        known: Vec<String>,
    },
    /// No job by that name on a controller.
    JenkinsJob {
        /// The name as typed.
        name: String,
        /// The controller's base URL.
        url: String,
    },
    /// The job exists, but not the build asked for.
    Build {
        /// The job's full name.
        job: String,
        /// The build asked for.
        build: BuildSelector,
        /// Where it was looked for.
        place: Place,
        /// The builds that are there, newest first.
        held: Vec<u64>,
    },
    /// The build exists on Jenkins but is still running, so its artifacts are not final.
    Unfinished {
        /// The job's full name.
        job: String,
        /// The build.
        number: u64,
        /// The controller's base URL.
        url: String,
    },
    /// No artifact of the build matches the globs.
    Artifacts {
        /// The job's full name.
        job: String,
        /// The build.
        number: u64,
        /// The globs that matched nothing.
        globs: Vec<String>,
        /// The build's artifacts (relative paths), sorted.
        available: Vec<String>,
    },
    /// The store holds no mirrored builds, or not the source asked for.
    Source {
        /// The source asked for (`--source`); `None` when any would do.
        name: Option<String>,
        /// The store, as described for messages.
        store: String,
        /// The sources the store holds.
        known: Vec<String>,
    },
}

impl std::error::Error for NotFound {}

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotFound::Job {
                name,
                source_name,
                known,
            } => {
                write!(f, "no job '{name}' in the mirror (source '{source_name}')")?;
                if known.is_empty() {
                    return f.write_str(
                        ": the source has no mirrored jobs yet; run `jam mirror` first, or choose another \
                         source with --source",
                    );
                }
                let order = if known.len() > 1 {
                    ", nearest first"
                } else {
                    ""
                };
                write!(f, "; it holds {}{order}:", count(known.len(), "job"))?;
                f.write_str(&lines(known, JOBS_SHOWN))?;
                f.write_str("\n`jam ls` lists them with their latest builds")
            }
            NotFound::JenkinsJob { name, url } => write!(
                f,
                "no job '{name}' on Jenkins at {url} (or the user cannot see it); check the name, or paste \
                 the job's URL from the browser"
            ),
            NotFound::Build {
                job,
                build,
                place,
                held,
            } => {
                match build {
                    BuildSelector::Number(n) => write!(f, "no build #{n} of {job}")?,
                    BuildSelector::Link(l) => write!(f, "no {} of {job}", l.name())?,
                }
                let (here, holds) = match place {
                    Place::Mirror => (" in the mirror".to_string(), "it holds"),
                    Place::Jenkins { url } => (format!(" on Jenkins at {url}"), "Jenkins keeps"),
                };
                f.write_str(&here)?;
                if held.is_empty() {
                    return match place {
                        Place::Mirror => write!(
                            f,
                            ": the job has no mirrored builds yet; `jam ls {job}` shows what happened to its builds"
                        ),
                        Place::Jenkins { .. } => f.write_str(": Jenkins lists no builds of it"),
                    };
                }
                write!(f, "; {holds} {}", numbers(held))?;
                match place {
                    Place::Mirror => write!(f, "; `jam ls {job}` lists them with their results"),
                    Place::Jenkins { .. } => f.write_str("; choose one with --build"),
                }
            }
            NotFound::Unfinished { job, number, url } => write!(
                f,
                "build #{number} of {job} is still running on Jenkins at {url}, so its artifacts are not final; \
                 fetch it once it has finished, or choose a finished build with --build"
            ),
            NotFound::Artifacts {
                job,
                number,
                globs,
                available,
            } => {
                let globs: Vec<String> = globs.iter().map(|g| format!("'{g}'")).collect();
                write!(
                    f,
                    "no artifact of {job} #{number} matches {}",
                    globs.join(", ")
                )?;
                if available.is_empty() {
                    return f.write_str(": the build has no artifacts");
                }
                f.write_str("; the build has:")?;
                f.write_str(&lines(available, ARTIFACTS_SHOWN))?;
                if available.len() > ARTIFACTS_SHOWN {
                    write!(f, " (`jam ls {job} -b {number}` lists them all)")?;
                }
                f.write_str(
                    "\nglobs match the whole relative path: `*` stays within a directory, `**` crosses them",
                )
            }
            NotFound::Source { name, store, known } => match (name, known.is_empty()) {
                (None, _) | (Some(_), true) => {
                    match name {
                        Some(n) => write!(f, "no source '{n}' in the store at {store}, which")?,
                        None => write!(f, "the store at {store}")?,
                    }
                    f.write_str(
                        " holds no mirrored builds yet; run `jam mirror` to fill it, or check --store",
                    )
                }
                (Some(n), false) => write!(
                    f,
                    "no source '{n}' in the store at {store}; it holds: {}; choose one with --source",
                    known.join(", ")
                ),
            },
        }
    }
}

/// `3 jobs`, `1 job`.
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// One indented line per item, at most `cap`, then `... and N more`.
fn lines(items: &[String], cap: usize) -> String {
    let mut s = String::new();
    for i in items.iter().take(cap) {
        let _ = write!(s, "\n  {i}");
    }
    if items.len() > cap {
        let _ = write!(s, "\n  ... and {} more", items.len() - cap);
    }
    s
}

/// `#3, #2, #1`, at most [`BUILDS_SHOWN`], then `and N older`.
fn numbers(held: &[u64]) -> String {
    let mut s: Vec<String> = held
        .iter()
        .take(BUILDS_SHOWN)
        .map(|n| format!("#{n}"))
        .collect();
    if held.len() > BUILDS_SHOWN {
        s.push(format!("and {} older", held.len() - BUILDS_SHOWN));
    }
    s.join(", ")
}

/// `names` ordered by how near each is to `asked` (edit distance, ignoring case; a branch's `%2F` also
/// counts as the `/` a user types), ties alphabetically.
pub fn nearest_first(asked: &str, mut names: Vec<String>) -> Vec<String> {
    let asked = asked.to_lowercase();
    let distance = |n: &String| {
        let n = n.to_lowercase();
        edit_distance(&asked, &n).min(edit_distance(&asked, &n.replace("%2f", "/")))
    };
    names.sort_by_cached_key(|n| (distance(n), n.clone()));
    names
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diag + usize::from(ca != *cb));
            diag = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_names_come_first() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        let names = ["zeta", "team/app", "team/api", "svc/feature%2Fx"].map(String::from);
        assert_eq!(
            nearest_first("team/ap", names.to_vec()),
            ["team/api", "team/app", "zeta", "svc/feature%2Fx"]
        );
        assert_eq!(
            nearest_first("svc/feature/y", names.to_vec())[0],
            "svc/feature%2Fx"
        );
    }

    #[test]
    fn long_lists_are_capped_with_a_count() {
        let known: Vec<String> = (0..13).map(|i| format!("job{i:02}")).collect();
        let msg = NotFound::Job {
            name: "x".into(),
            source_name: "ci".into(),
            known,
        }
        .to_string();
        assert!(
            msg.contains("it holds 13 jobs, nearest first:\n  job00\n"),
            "{msg}"
        );
        assert!(
            msg.contains("\n  job09\n  ... and 3 more\n`jam ls`"),
            "{msg}"
        );
        let held: Vec<u64> = (1..=12).rev().collect();
        let msg = NotFound::Build {
            job: "app".into(),
            build: BuildSelector::Number(99),
            place: Place::Mirror,
            held,
        }
        .to_string();
        assert_eq!(
            msg,
            "no build #99 of app in the mirror; it holds #12, #11, #10, #9, #8, #7, #6, #5, #4, #3, and 2 \
             older; `jam ls app` lists them with their results"
        );
    }
}
