//! The Jenkins fingerprint rules: when an artifact's MD5 is evidence of corruption.
//!
//! Jenkins records a build's fingerprints as MD5s, each with the file name its content was *first seen
//! under*, anywhere (another job, another name). So a fingerprint's name is not a join key: an artifact
//! whose content was first seen under another name carries a fingerprint with that other name, and an
//! artifact that was not fingerprinted has none. Two rules follow, one for each situation:
//!
//! - [`judge`], when every artifact of the build has been hashed (the mirror): an artifact is corrupt when
//!   its MD5 matches none of the build's fingerprints *while* a fingerprint recorded under the artifact's
//!   own file name matches no artifact of the build. Anything else (fingerprints of other files, artifacts
//!   that were not fingerprinted) is no evidence.
//! - [`expected_md5s`], when one artifact is checked on its own before the others are seen (`jam fetch
//!   --from jenkins`): the fingerprints recorded under its file name, if that name is unique in the build;
//!   its MD5 must be one of them ([`super::Md5Check::OneOf`]).

/// One fingerprint a build recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// The MD5, lower-case hex.
    pub md5: String,
    /// The file name the content was first seen under.
    pub file_name: Option<String>,
}

impl Fingerprint {
    /// A fingerprint; the hash is lower-cased.
    pub fn new(md5: &str, file_name: Option<String>) -> Fingerprint {
        Fingerprint {
            md5: md5.to_ascii_lowercase(),
            file_name,
        }
    }
}

/// One hashed artifact, as [`judge`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct Hashed<'a> {
    /// The artifact's file name (its last path segment, or the name Jenkins reports).
    pub file_name: &'a str,
    /// Its MD5, lower-case hex.
    pub md5: &'a str,
}

/// What [`judge`] concluded about one artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Its MD5 is one of the build's fingerprints.
    Matched,
    /// No evidence either way.
    Unchecked,
    /// Corrupt: `expected` is the fingerprint recorded under its file name that no artifact matches.
    Corrupt {
        /// That fingerprint, lower-case hex.
        expected: String,
    },
}

/// The build-level rule (see the module documentation): one verdict per artifact, in order.
pub fn judge(artifacts: &[Hashed<'_>], fingerprints: &[Fingerprint]) -> Vec<Verdict> {
    let matches_an_artifact = |md5: &str| artifacts.iter().any(|a| a.md5.eq_ignore_ascii_case(md5));
    artifacts
        .iter()
        .map(|a| {
            if fingerprints
                .iter()
                .any(|f| f.md5.eq_ignore_ascii_case(a.md5))
            {
                return Verdict::Matched;
            }
            fingerprints
                .iter()
                .find(|f| {
                    f.file_name.as_deref() == Some(a.file_name) && !matches_an_artifact(&f.md5)
                })
                .map_or(Verdict::Unchecked, |f| Verdict::Corrupt {
                    expected: f.md5.clone(),
                })
        })
        .collect()
}

/// The single-artifact rule (see the module documentation): for each artifact file name, in order, the
/// fingerprints its MD5 must match; empty when there is nothing to check against.
pub fn expected_md5s(file_names: &[&str], fingerprints: &[Fingerprint]) -> Vec<Vec<String>> {
    file_names
        .iter()
        .map(|name| {
            if file_names.iter().filter(|n| *n == name).count() != 1 {
                return Vec::new();
            }
            fingerprints
                .iter()
                .filter(|f| f.file_name.as_deref() == Some(*name))
                .map(|f| f.md5.clone())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(md5: &str, name: &str) -> Fingerprint {
        Fingerprint::new(md5, Some(name.into()))
    }

    fn hashed<'a>(file_name: &'a str, md5: &'a str) -> Hashed<'a> {
        Hashed { file_name, md5 }
    }

    #[test]
    fn a_matching_md5_is_matched_whatever_name_it_was_recorded_under() {
        let fps = [fp("AA", "first-seen-as.jar")];
        assert_eq!(
            judge(&[hashed("app.jar", "aa")], &fps),
            vec![Verdict::Matched]
        );
    }

    #[test]
    fn a_mismatch_is_corrupt_only_when_its_own_fingerprint_is_unaccounted_for() {
        // app.jar's fingerprint is recorded under its name and no artifact has it: corrupt.
        let fps = [fp("aa", "app.jar"), fp("bb", "lib.jar")];
        assert_eq!(
            judge(&[hashed("app.jar", "ff"), hashed("lib.jar", "bb")], &fps),
            vec![
                Verdict::Corrupt {
                    expected: "aa".into()
                },
                Verdict::Matched
            ]
        );
        // The fingerprint under app.jar's name belongs to another artifact (same content, other name):
        // no evidence against app.jar, which was simply not fingerprinted.
        let fps = [fp("bb", "app.jar")];
        assert_eq!(
            judge(&[hashed("app.jar", "ff"), hashed("copy.jar", "bb")], &fps),
            vec![Verdict::Unchecked, Verdict::Matched]
        );
        // Not fingerprinted at all, or only other files' fingerprints: no evidence.
        assert_eq!(
            judge(&[hashed("notes.txt", "ff")], &[fp("aa", "app.jar")]),
            vec![Verdict::Unchecked]
        );
        assert_eq!(judge(&[hashed("x", "ff")], &[]), vec![Verdict::Unchecked]);
    }

    #[test]
    fn two_corrupt_artifacts_of_the_same_name_are_both_caught() {
        let fps = [fp("aa", "x.jar"), fp("bb", "x.jar")];
        let v = judge(&[hashed("x.jar", "01"), hashed("x.jar", "02")], &fps);
        assert!(
            v.iter().all(|v| matches!(v, Verdict::Corrupt { .. })),
            "{v:?}"
        );
        // One of them intact: the other is caught against the fingerprint nobody matches.
        let v = judge(&[hashed("x.jar", "aa"), hashed("x.jar", "02")], &fps);
        assert_eq!(
            v,
            vec![
                Verdict::Matched,
                Verdict::Corrupt {
                    expected: "bb".into()
                }
            ]
        );
    }

    #[test]
    fn a_single_artifact_is_checked_against_the_fingerprints_of_its_unique_name() {
        let fps = [
            fp("aa", "app.jar"),
            fp("a2", "app.jar"),
            fp("bb", "dup.txt"),
            Fingerprint::new("cc", None),
        ];
        assert_eq!(
            expected_md5s(&["app.jar", "dup.txt", "dup.txt", "other"], &fps),
            vec![
                vec!["aa".to_string(), "a2".to_string()],
                vec![],
                vec![],
                vec![]
            ]
        );
    }
}
