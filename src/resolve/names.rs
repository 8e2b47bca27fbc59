//! What a user types for a job and a build: a job argument (a full name, or a job URL pasted from the
//! browser), a build selector (a number or a permalink), and the ways the parts of a typed name can form
//! Jenkins item names.

use std::str::FromStr;

use url::Url;

use super::ResolveError;
use crate::format::layout::{JobPath, Permalink};

/// Which build: a permalink or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildSelector {
    /// A permalink (`lastSuccessful`, `lastStable`, `lastCompleted`, …).
    Link(Permalink),
    /// A build number.
    Number(u64),
}

impl Default for BuildSelector {
    fn default() -> Self {
        BuildSelector::Link(Permalink::LastSuccessfulBuild)
    }
}

impl FromStr for BuildSelector {
    type Err = ResolveError;

    fn from_str(s: &str) -> Result<Self, ResolveError> {
        let s = s.trim().trim_start_matches('#');
        if let Ok(n) = s.parse::<u64>() {
            return Ok(BuildSelector::Number(n));
        }
        Permalink::parse(s)
            .map(BuildSelector::Link)
            .ok_or_else(|| ResolveError::BadBuild { given: s.into() })
    }
}

impl std::fmt::Display for BuildSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BuildSelector::Link(l) => f.write_str(l.name()),
            BuildSelector::Number(n) => write!(f, "#{n}"),
        }
    }
}

/// The `JOB` argument: a full name to resolve, or a Jenkins URL that names the items exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobArg {
    /// A full name as typed (`folder/app`, `app/feature/x`).
    Name(String),
    /// A Jenkins job URL, pasted from the browser.
    Url {
        /// The job's item names, from the URL's `job/<seg>` pairs.
        job: JobPath,
        /// A build the URL names after the job (`…/42/`, `…/lastStableBuild/`).
        build: Option<BuildSelector>,
        /// The URL as given.
        url: Url,
    },
}

impl JobArg {
    /// Parses the argument: anything starting with `http://` or `https://` is a URL.
    pub fn parse(arg: &str) -> Result<JobArg, ResolveError> {
        let arg = arg.trim();
        if arg.starts_with("http://") || arg.starts_with("https://") {
            let url = Url::parse(arg).map_err(|e| ResolveError::BadUrl {
                arg: arg.into(),
                message: e.to_string(),
            })?;
            let job = JobPath::from_url_path(url.path())
                .ok_or_else(|| ResolveError::NotAJobUrl { arg: arg.into() })?;
            // What follows the last job/<seg> pair may name a build.
            let segs: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
            let last_job = segs.iter().rposition(|s| *s == "job");
            let build = last_job
                .and_then(|i| segs.get(i + 2))
                .and_then(|s| s.parse::<BuildSelector>().ok());
            return Ok(JobArg::Url { job, build, url });
        }
        if arg.split('/').all(str::is_empty) {
            return Err(ResolveError::EmptyName);
        }
        Ok(JobArg::Name(arg.trim_matches('/').to_string()))
    }

    /// The job as typed, for messages.
    pub fn shown(&self) -> String {
        match self {
            JobArg::Name(n) => n.clone(),
            JobArg::Url { job, .. } => job.full_name(),
        }
    }

    /// The build a command means: the one given with `--build`, else the one a pasted URL names.
    pub fn build(&self, given: Option<BuildSelector>) -> Option<BuildSelector> {
        given.or(match self {
            JobArg::Url { build, .. } => *build,
            JobArg::Name(_) => None,
        })
    }

    /// The job as the plain split of the typed name (each `/` separates items), or the URL's items.
    pub(super) fn plain(&self) -> JobPath {
        match self {
            JobArg::Name(n) => JobPath::new(n.split('/').filter(|s| !s.is_empty())),
            JobArg::Url { job, .. } => job.clone(),
        }
    }
}

/// The ways consecutive parts can form item names (a branch `a/b` is the item `a%2Fb`), the plain split
/// first. At most 2^11 candidates.
pub fn splits(parts: &[&str]) -> Vec<JobPath> {
    let n = parts.len();
    if n == 0 {
        return Vec::new();
    }
    let gaps = (n - 1).min(11);
    let mut out = Vec::new();
    // Bit i set: parts i and i+1 are joined into one name.
    for mask in 0u32..(1 << gaps) {
        let mut names = vec![parts[0].to_string()];
        for (i, p) in parts.iter().enumerate().skip(1) {
            if i - 1 < gaps && mask & (1 << (i - 1)) != 0 {
                let last = names.last_mut().expect("non-empty");
                last.push_str("%2F");
                last.push_str(p);
            } else {
                names.push(p.to_string());
            }
        }
        out.push(JobPath(names));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse() {
        assert_eq!(
            "lastStable".parse::<BuildSelector>().unwrap(),
            BuildSelector::Link(Permalink::LastStableBuild)
        );
        assert_eq!(
            "42".parse::<BuildSelector>().unwrap(),
            BuildSelector::Number(42)
        );
        assert_eq!(
            "#7".parse::<BuildSelector>().unwrap(),
            BuildSelector::Number(7)
        );
        assert!("latest-ish".parse::<BuildSelector>().is_err());
    }

    #[test]
    fn job_urls_parse() {
        let a =
            JobArg::parse("https://ci.example.com/jenkins/job/app/job/feature%252Fx/42/").unwrap();
        let JobArg::Url { job, build, .. } = a else {
            panic!("not a URL")
        };
        assert_eq!(job, JobPath::new(["app", "feature%2Fx"]));
        assert_eq!(build, Some(BuildSelector::Number(42)));
        let a = JobArg::parse("https://ci/job/app/lastStableBuild/artifact/x.jar").unwrap();
        assert!(matches!(
            a,
            JobArg::Url {
                build: Some(BuildSelector::Link(Permalink::LastStableBuild)),
                ..
            }
        ));
        assert_eq!(
            JobArg::parse("/folder/app/").unwrap(),
            JobArg::Name("folder/app".into())
        );
        assert!(JobArg::parse("https://ci/view/all/").is_err());
    }

    #[test]
    fn splits_plain_first() {
        let s = splits(&["app", "feature", "x"]);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0], JobPath::new(["app", "feature", "x"]));
        assert!(s.contains(&JobPath::new(["app", "feature%2Fx"])));
        assert!(s.contains(&JobPath::new(["app%2Ffeature%2Fx"])));
    }
}
