//! The store layout: how a job, a build and an artifact map onto object keys. A public contract.
//!
//! Keys mirror Jenkins' own URL space, so a Jenkins artifact URL turns into a key by hand: drop the host
//! (and any context path), put the source name in front.
//!
//! ```text
//! <source>/job/<seg>/job/<seg>/<N>/artifact/<relativePath>   artifact bytes
//! <source>/job/<seg>/job/<seg>/<N>/SHA256SUMS                for sha256sum -c
//! <source>/job/<seg>/job/<seg>/<N>/manifest.json             commit marker + metadata
//! <source>/job/<seg>/job/<seg>/lastSuccessfulBuild.json      pointers (Jenkins' permalink semantics)
//! <source>/job/<seg>/job/<seg>/index.json                    the job's mirrored, failed and missed builds
//! <source>/controller.json                                    what the mirror last saw of the controller
//! ```
//!
//! `<seg>` is the job's item name encoded exactly as Jenkins' `Util.rawEncode` does (a multibranch branch
//! `feature/x` is the item `feature%2Fx`, so its segment is `feature%252Fx`), and each segment of an
//! artifact's relative path is encoded the same way. Percent-encoding with `%` itself encoded is injective,
//! so two different jobs or artifacts never share a key. Artifact paths that could escape their build's
//! prefix are refused by [`check_relative_path`] before any key is built.

use std::fmt;

use object_store::path::Path;

/// The layout's format version, recorded in manifests, pointers and indexes.
pub const FORMAT_VERSION: u32 = 1;

/// Jenkins permalinks jam keeps pointers for, with the results each accepts (Jenkins' own predicates).
pub const PERMALINKS: [Permalink; 7] = [
    Permalink::LastBuild,
    Permalink::LastCompletedBuild,
    Permalink::LastSuccessfulBuild,
    Permalink::LastStableBuild,
    Permalink::LastFailedBuild,
    Permalink::LastUnstableBuild,
    Permalink::LastUnsuccessfulBuild,
];

/// A Jenkins permalink. In the mirror every build is finished, so `lastBuild` and `lastCompletedBuild`
/// agree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permalink {
    /// Newest mirrored build.
    LastBuild,
    /// Newest finished build.
    LastCompletedBuild,
    /// Newest build with result SUCCESS or UNSTABLE.
    LastSuccessfulBuild,
    /// Newest build with result SUCCESS.
    LastStableBuild,
    /// Newest build with result FAILURE.
    LastFailedBuild,
    /// Newest build with result UNSTABLE.
    LastUnstableBuild,
    /// Newest build whose result is not SUCCESS.
    LastUnsuccessfulBuild,
}

impl Permalink {
    /// The Jenkins name, e.g. `lastSuccessfulBuild`.
    pub fn name(self) -> &'static str {
        match self {
            Permalink::LastBuild => "lastBuild",
            Permalink::LastCompletedBuild => "lastCompletedBuild",
            Permalink::LastSuccessfulBuild => "lastSuccessfulBuild",
            Permalink::LastStableBuild => "lastStableBuild",
            Permalink::LastFailedBuild => "lastFailedBuild",
            Permalink::LastUnstableBuild => "lastUnstableBuild",
            Permalink::LastUnsuccessfulBuild => "lastUnsuccessfulBuild",
        }
    }

    /// Parses a Jenkins name, also accepting it without the `Build` suffix (`lastSuccessful`).
    pub fn parse(s: &str) -> Option<Permalink> {
        PERMALINKS.into_iter().find(|p| {
            p.name().eq_ignore_ascii_case(s)
                || p.name()
                    .strip_suffix("Build")
                    .is_some_and(|n| n.eq_ignore_ascii_case(s))
        })
    }

    /// Whether a finished build with this result is a candidate for the permalink.
    pub fn accepts(self, result: &str) -> bool {
        match self {
            Permalink::LastBuild | Permalink::LastCompletedBuild => true,
            Permalink::LastSuccessfulBuild => matches!(result, "SUCCESS" | "UNSTABLE"),
            Permalink::LastStableBuild => result == "SUCCESS",
            Permalink::LastFailedBuild => result == "FAILURE",
            Permalink::LastUnstableBuild => result == "UNSTABLE",
            Permalink::LastUnsuccessfulBuild => result != "SUCCESS",
        }
    }
}

/// A job's identity: the item names from the root down, exactly as Jenkins stores them (a multibranch
/// branch `feature/x` is the name `feature%2Fx`). Nothing is lost by keeping the names apart.
#[derive(
    Debug,
    Clone,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct JobPath(pub Vec<String>);

impl JobPath {
    /// A job path from item names.
    pub fn new<I, S>(names: I) -> JobPath
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        JobPath(names.into_iter().map(Into::into).collect())
    }

    /// The names joined with `/`, as Jenkins' `fullName`.
    pub fn full_name(&self) -> String {
        self.0.join("/")
    }

    /// The item names.
    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// The URL path below the controller root: `job/<seg>/job/<seg>/`.
    pub fn url_path(&self) -> String {
        let mut s = String::new();
        for n in &self.0 {
            s.push_str("job/");
            s.push_str(&raw_encode(n));
            s.push('/');
        }
        s
    }

    /// Parses the path of a Jenkins job URL (`/jenkins/job/a/job/feature%252Fx/…`): the names are the
    /// `job/<seg>` pairs, each segment percent-decoded once. Anything after the last pair is ignored.
    pub fn from_url_path(path: &str) -> Option<JobPath> {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let start = segs.iter().position(|s| *s == "job")?;
        let mut names = Vec::new();
        let mut i = start;
        while i + 1 < segs.len() && segs[i] == "job" {
            names.push(percent_decode(segs[i + 1])?);
            i += 2;
        }
        (!names.is_empty()).then_some(JobPath(names))
    }
}

impl fmt::Display for JobPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full_name())
    }
}

/// Encodes one name or path segment as Jenkins' `Util.rawEncode`: `A-Z a-z 0-9 ! $ & ' ( ) * + , - . = @ _`
/// stay as they are; every other byte of the UTF-8 text becomes `%XX` (upper-case hex).
pub fn raw_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"!$&'()*+,-.=@_".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A name as a key segment: [`raw_encode`], except that the names `.` and `..` (which Jenkins does not
/// allow, but which would be path traversal in a key) become `%2E` and `%2E%2E`. `raw_encode` never emits
/// `%2E`, so the mapping stays injective.
pub fn key_segment(name: &str) -> String {
    match name {
        "." => "%2E".into(),
        ".." => "%2E%2E".into(),
        n => raw_encode(n),
    }
}

/// Decodes `%XX` escapes; `None` if an escape is malformed or the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Why an artifact path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsafe artifact path {path:?}: {reason}; jam refuses to write it")]
pub struct UnsafePath {
    /// The path as Jenkins reported it.
    pub path: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks a Jenkins `relativePath` (or a path under a fetch output directory) before it becomes a key or a
/// file: it must be relative, use `/` separators, and have no empty, `.` or `..` segments, no backslashes,
/// and no control characters.
pub fn check_relative_path(path: &str) -> Result<(), UnsafePath> {
    let fail = |reason| {
        Err(UnsafePath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return fail("it is empty");
    }
    if path.len() > 1024 {
        return fail("it is longer than 1024 bytes");
    }
    if path.starts_with('/') {
        return fail("it is absolute");
    }
    if path.contains('\\') {
        return fail("it contains a backslash");
    }
    if path.chars().any(char::is_control) {
        return fail("it contains a control character");
    }
    if path.len() >= 2 && path.as_bytes()[1] == b':' && path.as_bytes()[0].is_ascii_alphabetic() {
        return fail("it starts with a drive letter");
    }
    for seg in path.split('/') {
        match seg {
            "" => return fail("it has an empty segment"),
            "." | ".." => return fail("it has a '.' or '..' segment"),
            _ => {}
        }
    }
    Ok(())
}

/// Keys of one source (controller) in the store.
#[derive(Debug, Clone)]
pub struct Layout {
    source: String,
}

impl Layout {
    /// The layout of a source; the name was validated by the configuration.
    pub fn new(source: impl Into<String>) -> Layout {
        Layout {
            source: source.into(),
        }
    }

    /// The source name.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// `<source>/job/<seg>/…` (no trailing slash).
    pub fn job_prefix(&self, job: &JobPath) -> String {
        let mut key = self.source.clone();
        for name in job.names() {
            key.push_str("/job/");
            key.push_str(&key_segment(name));
        }
        key
    }

    /// `<job>/<N>`.
    pub fn build_prefix(&self, job: &JobPath, number: u64) -> String {
        format!("{}/{number}", self.job_prefix(job))
    }

    /// `<job>/<N>/artifact/<relativePath>`, each path segment encoded; refuses unsafe paths.
    pub fn artifact_key(
        &self,
        job: &JobPath,
        number: u64,
        relative_path: &str,
    ) -> Result<String, UnsafePath> {
        check_relative_path(relative_path)?;
        let enc: Vec<String> = relative_path.split('/').map(raw_encode).collect();
        Ok(format!(
            "{}/artifact/{}",
            self.build_prefix(job, number),
            enc.join("/")
        ))
    }

    /// `<job>/<N>/manifest.json`.
    pub fn manifest_key(&self, job: &JobPath, number: u64) -> String {
        format!("{}/manifest.json", self.build_prefix(job, number))
    }

    /// `<job>/<N>/SHA256SUMS`.
    pub fn sums_key(&self, job: &JobPath, number: u64) -> String {
        format!("{}/SHA256SUMS", self.build_prefix(job, number))
    }

    /// `<job>/<permalink>.json`.
    pub fn pointer_key(&self, job: &JobPath, link: Permalink) -> String {
        format!("{}/{}.json", self.job_prefix(job), link.name())
    }

    /// `<job>/index.json`.
    pub fn index_key(&self, job: &JobPath) -> String {
        format!("{}/index.json", self.job_prefix(job))
    }

    /// `<source>/controller.json`.
    pub fn controller_key(&self) -> String {
        format!("{}/controller.json", self.source)
    }
}

/// The build prefix (`<source>/job/<seg>/…/<N>`) of a key below a build (an artifact, the manifest), read
/// from the front so that job and artifact names that look like key words do not confuse it; `None` for
/// other keys.
pub fn build_prefix_of(key: &str) -> Option<&str> {
    let segs: Vec<&str> = key.split('/').collect();
    let mut i = 1;
    while segs.get(i) == Some(&"job") && segs.get(i + 1).is_some() {
        i += 2;
    }
    if i == 1 || !segs.get(i)?.bytes().all(|b| b.is_ascii_digit()) || segs.len() <= i + 1 {
        return None;
    }
    let len = segs[..=i].iter().map(|s| s.len() + 1).sum::<usize>() - 1;
    Some(&key[..len])
}

/// Parses a key built by [`Layout`] into a `Path` (the encoded keys are always valid paths).
pub fn path(key: &str) -> Path {
    Path::parse(key).unwrap_or_else(|_| Path::from(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn jenkins_examples() {
        assert_eq!(raw_encode("My Team"), "My%20Team");
        assert_eq!(raw_encode("Déploiement"), "D%C3%A9ploiement");
        assert_eq!(raw_encode("feature%2Fx"), "feature%252Fx");
        let l = Layout::new("ci");
        let job = JobPath::new(["app", "feature%2Fx"]);
        assert_eq!(l.job_prefix(&job), "ci/job/app/job/feature%252Fx");
        assert_eq!(
            l.artifact_key(&job, 7, "dist/my app.jar").unwrap(),
            "ci/job/app/job/feature%252Fx/7/artifact/dist/my%20app.jar"
        );
        assert_eq!(
            l.pointer_key(&job, Permalink::LastSuccessfulBuild),
            "ci/job/app/job/feature%252Fx/lastSuccessfulBuild.json"
        );
        assert_eq!(
            JobPath::from_url_path("/jenkins/job/app/job/feature%252Fx/lastSuccessfulBuild/"),
            Some(job)
        );
    }

    #[test]
    fn the_build_prefix_of_a_key_is_read_from_the_front() {
        let l = Layout::new("ci");
        let job = JobPath::new(["job", "artifact"]);
        let key = l.artifact_key(&job, 7, "artifact/9/x.bin").unwrap();
        assert_eq!(
            build_prefix_of(&key),
            Some(l.build_prefix(&job, 7).as_str())
        );
        assert_eq!(
            build_prefix_of(&l.manifest_key(&job, 7)),
            Some(l.build_prefix(&job, 7).as_str())
        );
        assert_eq!(build_prefix_of(&l.index_key(&job)), None);
        assert_eq!(build_prefix_of(".jam/uploads/w/x.json"), None);
    }

    #[test]
    fn slash_and_dash_never_collide() {
        let l = Layout::new("s");
        let a = l.job_prefix(&JobPath::new(["feature%2Fx"]));
        let b = l.job_prefix(&JobPath::new(["feature-x"]));
        let c = l.job_prefix(&JobPath::new(["feature", "x"]));
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for p in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a\\b",
            "a//b",
            "a\0b",
            "a\nb",
            "C:x",
            "a/",
        ] {
            assert!(check_relative_path(p).is_err(), "{p:?} accepted");
        }
        for p in [
            "a",
            "dist/app.jar",
            "..a/b..",
            "spaced name/ü.txt",
            ".hidden",
        ] {
            assert!(check_relative_path(p).is_ok(), "{p:?} refused");
        }
    }

    #[test]
    fn permalink_predicates() {
        assert!(Permalink::LastSuccessfulBuild.accepts("UNSTABLE"));
        assert!(!Permalink::LastStableBuild.accepts("UNSTABLE"));
        assert!(Permalink::LastUnsuccessfulBuild.accepts("ABORTED"));
        assert_eq!(
            Permalink::parse("lastSuccessful"),
            Some(Permalink::LastSuccessfulBuild)
        );
        assert_eq!(
            Permalink::parse("laststablebuild"),
            Some(Permalink::LastStableBuild)
        );
    }

    proptest! {
        #[test]
        fn raw_encode_round_trips_and_is_injective(a in "\\PC{0,12}", b in "\\PC{0,12}") {
            let decoded = percent_decode(&raw_encode(&a));
            prop_assert_eq!(decoded.as_deref(), Some(a.as_str()));
            if a != b {
                prop_assert_ne!(raw_encode(&a), raw_encode(&b));
            }
        }

        #[test]
        fn job_keys_are_injective(
            a in proptest::collection::vec("[a-z/%. -]{1,6}", 1..4),
            b in proptest::collection::vec("[a-z/%. -]{1,6}", 1..4),
        ) {
            let l = Layout::new("s");
            let (ja, jb) = (JobPath(a), JobPath(b));
            if ja != jb {
                prop_assert_ne!(l.job_prefix(&ja), l.job_prefix(&jb));
                prop_assert_ne!(l.manifest_key(&ja, 1), l.manifest_key(&jb, 1));
            }
            // Every key is a valid object path whose segments stay inside the job prefix.
            let key = l.manifest_key(&ja, 3);
            prop_assert!(Path::parse(&key).is_ok());
            prop_assert_eq!(JobPath::from_url_path(&l.job_prefix(&ja)), Some(ja));
        }

        #[test]
        fn accepted_artifact_paths_stay_under_their_build(p in "[a-z./\\\\ ]{1,12}") {
            let l = Layout::new("s");
            let job = JobPath::new(["j"]);
            if let Ok(key) = l.artifact_key(&job, 1, &p) {
                let path = Path::parse(&key).unwrap();
                let parts: Vec<_> = path.parts().map(|x| x.as_ref().to_string()).collect();
                prop_assert_eq!(&parts[..5], &["s", "job", "j", "1", "artifact"].map(String::from)[..]);
                prop_assert!(parts.iter().all(|s| s != ".." && s != "."));
            }
        }
    }
}
