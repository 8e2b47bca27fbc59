//! One item, build or artifact: what Jenkins computes from it (permalinks, ball colour,
//! estimated duration, health, artifact order and `displayPath`) and how scenario specs
//! become one.

use super::{SimError, now_ms};
use crate::content::{Content, default_seed};
use crate::names::name_encode;
use crate::scenario::{
    ArtifactSpec, BuildResult, BuildSpec, CauseSpec, GitSpec, ItemKind, ItemSpec, ParamSpec,
};
pub(crate) use jam::jenkins::stapler::PERMALINKS;
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// One archived file.
#[derive(Debug)]
pub(crate) struct Artifact {
    pub path: String,
    pub file_name: String,
    pub content: Content,
    pub fingerprint: bool,
    pub last_modified: i64,
    md5: OnceLock<String>,
}

impl Artifact {
    pub(crate) fn md5(&self) -> &str {
        self.md5.get_or_init(|| self.content.md5())
    }
}

/// Identity of content for fingerprint grouping without hashing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ContentKey {
    Gen(u64, u64),
    Lit(bytes::Bytes),
}

pub(crate) fn content_key(c: &Content) -> ContentKey {
    match c {
        Content::Generated { size: 0, .. } => ContentKey::Lit(bytes::Bytes::new()),
        Content::Generated { seed, size } => ContentKey::Gen(*seed, *size),
        Content::Literal(b) => ContentKey::Lit(b.clone()),
    }
}

#[derive(Debug)]
pub(crate) struct Build {
    pub number: u64,
    pub result: Option<BuildResult>,
    pub building: bool,
    pub in_progress: Option<bool>,
    pub timestamp: i64,
    pub duration: i64,
    pub artifacts: Vec<Arc<Artifact>>,
    pub display_paths: Vec<Option<String>>,
    pub discarded: bool,
    pub parameters: Vec<ParamSpec>,
    pub causes: Vec<CauseSpec>,
    pub git: Option<GitSpec>,
    pub description: Option<String>,
    pub display_name: Option<String>,
    pub keep_log: bool,
    pub queue_id: u64,
    pub built_on: String,
}

impl Build {
    pub(crate) fn in_progress(&self) -> bool {
        self.in_progress.unwrap_or(self.building)
    }

    pub(crate) fn display_name(&self) -> String {
        self.display_name
            .clone()
            .unwrap_or_else(|| format!("#{}", self.number))
    }

    /// Artifacts visible in JSON (none once discarded).
    pub(crate) fn live_artifacts(&self) -> &[Arc<Artifact>] {
        if self.discarded { &[] } else { &self.artifacts }
    }

    pub(super) fn sort_artifacts(&mut self) {
        self.artifacts.sort_by(|a, b| {
            let ka = a.path.split('/').map(|s| s.to_lowercase());
            let kb = b.path.split('/').map(|s| s.to_lowercase());
            ka.cmp(kb)
        });
        self.display_paths = compute_display_paths(&self.artifacts);
    }

    pub(crate) fn end_time(&self) -> i64 {
        self.timestamp + self.duration
    }
}

/// `Run.ArtifactList.computeDisplayName` ([`jam::jenkins::stapler::artifacts::display_paths`]).
fn compute_display_paths(arts: &[Arc<Artifact>]) -> Vec<Option<String>> {
    let paths: Vec<&str> = arts.iter().map(|a| a.path.as_str()).collect();
    jam::jenkins::stapler::artifacts::display_paths(&paths)
}

#[derive(Debug)]
pub(crate) struct Item {
    pub name: String,
    pub kind: ItemKind,
    pub display_name: Option<String>,
    pub description: Option<String>,
    pub disabled: bool,
    pub visible_to: Option<Vec<String>>,
    pub children: BTreeMap<String, Item>,
    pub builds: BTreeMap<u64, Build>,
    pub next_build_number: u64,
    /// Child of a multibranch project (a branch job).
    pub is_branch: bool,
}

impl Item {
    pub(crate) fn display(&self) -> &str {
        self.display_name.as_deref().unwrap_or(&self.name)
    }

    pub(crate) fn lenient(&self) -> bool {
        matches!(
            self.kind,
            ItemKind::Multibranch | ItemKind::OrganizationFolder
        )
    }

    /// Newest first.
    pub(crate) fn builds_desc(&self) -> impl Iterator<Item = &Build> {
        self.builds.values().rev()
    }

    pub(crate) fn permalink(&self, name: &str) -> Option<&Build> {
        let done = |b: &&Build| !b.building;
        let res = |b: &Build| b.result.unwrap_or(BuildResult::Success);
        let mut it = self.builds_desc();
        match name {
            "lastBuild" => it.next(),
            "lastCompletedBuild" => it.find(done),
            "lastFailedBuild" => it.find(|b| done(b) && res(b) == BuildResult::Failure),
            "lastStableBuild" => it.find(|b| done(b) && res(b) == BuildResult::Success),
            "lastSuccessfulBuild" => it.find(|b| {
                done(b) && matches!(res(b), BuildResult::Success | BuildResult::Unstable)
            }),
            "lastUnstableBuild" => it.find(|b| done(b) && res(b) == BuildResult::Unstable),
            "lastUnsuccessfulBuild" => it.find(|b| done(b) && res(b) != BuildResult::Success),
            "firstBuild" => self.builds.values().next(),
            _ => None,
        }
    }

    /// Build by number or permalink name.
    pub(crate) fn build_ref(&self, token: &str) -> Option<&Build> {
        if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            return token.parse().ok().and_then(|n| self.builds.get(&n));
        }
        if PERMALINKS.contains(&token) {
            return self.permalink(token);
        }
        None
    }

    /// Ball colour (`Job.getIconColor`).
    pub(crate) fn color(&self) -> String {
        if self.disabled {
            let anime = self.builds.values().next_back().is_some_and(|b| b.building);
            return if anime { "disabled_anime" } else { "disabled" }.into();
        }
        let mut it = self.builds_desc();
        let Some(last) = it.next() else {
            return "notbuilt".into();
        };
        if !last.building {
            return last.result.unwrap_or(BuildResult::Success).color().into();
        }
        // Running: previous build's colour, animated.
        let base = it
            .find(|b| !b.building)
            .map(|b| b.result.unwrap_or(BuildResult::Success).color())
            .unwrap_or("notbuilt");
        format!("{base}_anime")
    }

    /// `Job.getEstimatedDuration`: mean of the last 3 successful (else completed) builds.
    pub(crate) fn estimated_duration(&self) -> i64 {
        let mut cands: Vec<i64> = self
            .builds_desc()
            .filter(|b| {
                !b.building
                    && matches!(
                        b.result.unwrap_or(BuildResult::Success),
                        BuildResult::Success | BuildResult::Unstable
                    )
            })
            .take(3)
            .map(|b| b.duration)
            .collect();
        if cands.len() < 3 {
            cands.extend(
                self.builds_desc()
                    .filter(|b| {
                        !b.building
                            && !matches!(
                                b.result.unwrap_or(BuildResult::Success),
                                BuildResult::Success | BuildResult::Unstable
                            )
                    })
                    .take(3 - cands.len())
                    .map(|b| b.duration),
            );
        }
        if cands.is_empty() {
            -1
        } else {
            cands.iter().sum::<i64>() / cands.len() as i64
        }
    }

    /// Health score and description from the last 5 completed builds (`None`: no report).
    pub(crate) fn health(&self) -> Option<(u32, String)> {
        let recent: Vec<&Build> = self.builds_desc().filter(|b| !b.building).take(5).collect();
        if recent.is_empty() {
            return None;
        }
        let failed = recent
            .iter()
            .filter(|b| b.result.unwrap_or(BuildResult::Success) != BuildResult::Success)
            .count();
        let total = recent.len();
        let score = (100 * (total - failed) / total) as u32;
        let desc = if failed == 0 {
            "Build stability: No recent builds failed.".to_string()
        } else if failed == total {
            "Build stability: All recent builds failed.".to_string()
        } else {
            format!("Build stability: {failed} out of the last {total} builds failed.")
        };
        Some((score, desc))
    }

    pub(super) fn insert_child(&mut self, child: Item) -> Result<(), SimError> {
        let key = child.name.to_lowercase();
        if self.children.contains_key(&key) {
            return Err(SimError::Exists(child.name));
        }
        self.children.insert(key, child);
        Ok(())
    }
}

pub(super) fn item_from_spec(
    spec: &ItemSpec,
    parent_kind: Option<ItemKind>,
    parent_full: &str,
) -> Result<Item, SimError> {
    let under_mb = parent_kind == Some(ItemKind::Multibranch);
    let under_org = parent_kind == Some(ItemKind::OrganizationFolder);
    let kind = spec.kind.unwrap_or(if under_mb {
        ItemKind::Pipeline
    } else if under_org {
        ItemKind::Multibranch
    } else {
        ItemKind::Freestyle
    });
    let (name, display_name) = if under_mb || under_org {
        let enc = name_encode(&spec.name);
        let disp = spec
            .display_name
            .clone()
            .or_else(|| (enc != spec.name).then(|| spec.name.clone()));
        (enc, disp)
    } else {
        if spec.name.is_empty() || spec.name.contains('/') || spec.name == "." || spec.name == ".."
        {
            return Err(SimError::Invalid(format!("bad item name {:?}", spec.name)));
        }
        (spec.name.clone(), spec.display_name.clone())
    };
    let full = if parent_full.is_empty() {
        name.clone()
    } else {
        format!("{parent_full}/{name}")
    };
    let mut item = Item {
        name,
        kind,
        display_name,
        description: spec.description.clone(),
        disabled: spec.disabled,
        visible_to: spec.visible_to.clone(),
        children: BTreeMap::new(),
        builds: BTreeMap::new(),
        next_build_number: 1,
        is_branch: under_mb,
    };
    if !kind.is_job() && !spec.builds.is_empty() {
        return Err(SimError::Invalid(format!(
            "'{full}' is a folder and cannot have builds"
        )));
    }
    if kind.is_job() && !spec.jobs.is_empty() {
        return Err(SimError::Invalid(format!(
            "'{full}' is a job and cannot have children"
        )));
    }
    for c in &spec.jobs {
        let child = item_from_spec(c, Some(kind), &full)?;
        item.insert_child(child)?;
    }
    for b in &spec.builds {
        let number = b.number.unwrap_or(item.next_build_number);
        if item.builds.contains_key(&number) || number == 0 {
            return Err(SimError::Exists(format!("build {full} #{number}")));
        }
        item.builds
            .insert(number, build_from_spec(b, &full, number, under_mb)?);
        item.next_build_number = item.next_build_number.max(number + 1);
    }
    if let Some(n) = spec.next_build_number {
        item.next_build_number = item.next_build_number.max(n);
    }
    Ok(item)
}

pub(super) fn build_from_spec(
    spec: &BuildSpec,
    job_full: &str,
    number: u64,
    is_branch: bool,
) -> Result<Build, SimError> {
    let timestamp = spec.timestamp.unwrap_or_else(now_ms);
    let duration = if spec.building {
        0
    } else {
        spec.duration.unwrap_or(60_000)
    };
    let result = if spec.building {
        spec.result
    } else {
        Some(spec.result.unwrap_or(BuildResult::Success))
    };
    let causes = if spec.causes.is_empty() {
        vec![if is_branch {
            CauseSpec::BranchIndexing
        } else {
            CauseSpec::User {
                id: "admin".into(),
                name: "Admin".into(),
            }
        }]
    } else {
        spec.causes.clone()
    };
    let end = timestamp + duration;
    let mut b = Build {
        number,
        result,
        building: spec.building,
        in_progress: spec.in_progress,
        timestamp,
        duration,
        artifacts: Vec::new(),
        display_paths: Vec::new(),
        discarded: spec.artifacts_discarded,
        parameters: spec.parameters.clone(),
        causes,
        git: spec.git.clone(),
        description: spec.description.clone(),
        display_name: spec.display_name.clone(),
        keep_log: spec.keep_log,
        queue_id: spec.queue_id.unwrap_or(100 + number),
        built_on: spec.built_on.clone(),
    };
    for a in &spec.artifacts {
        if b.artifacts.iter().any(|x| x.path == a.path) {
            return Err(SimError::Exists(format!("artifact {}", a.path)));
        }
        b.artifacts
            .push(Arc::new(artifact_from_spec(a, job_full, number, end)?));
    }
    b.sort_artifacts();
    Ok(b)
}

pub(super) fn artifact_from_spec(
    a: &ArtifactSpec,
    job_full: &str,
    number: u64,
    end: i64,
) -> Result<Artifact, SimError> {
    let path = a.path.trim_matches('/').to_string();
    if path.is_empty()
        || path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(SimError::Invalid(format!("bad artifact path {:?}", a.path)));
    }
    let content = match &a.content {
        Some(text) => Content::Literal(bytes::Bytes::from(text.clone().into_bytes())),
        None => Content::Generated {
            seed: a
                .seed
                .unwrap_or_else(|| default_seed(job_full, number, &path)),
            size: a.size,
        },
    };
    Ok(Artifact {
        file_name: path.rsplit('/').next().unwrap_or(&path).to_string(),
        path,
        content,
        fingerprint: a.fingerprint,
        last_modified: a.last_modified.unwrap_or(end),
        md5: OnceLock::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_order_is_depth_first_case_insensitive() {
        let spec = BuildSpec {
            artifacts: [
                "reports/unit tests/summary.json",
                "README.txt",
                "docs/README.txt",
                "build/libs/app-1.2.3.jar",
                "build/libs/app-1.2.3-sources.jar",
                "Zeta",
                "alpha/x",
            ]
            .iter()
            .map(|p| ArtifactSpec::sized(p, 1))
            .collect(),
            ..Default::default()
        };
        let b = build_from_spec(&spec, "j", 1, false).unwrap();
        let order: Vec<&str> = b.artifacts.iter().map(|a| a.path.as_str()).collect();
        assert_eq!(
            order,
            [
                "alpha/x",
                "build/libs/app-1.2.3-sources.jar",
                "build/libs/app-1.2.3.jar",
                "docs/README.txt",
                "README.txt",
                "reports/unit tests/summary.json",
                "Zeta"
            ]
        );
    }

    #[test]
    fn permalinks_and_colors() {
        let spec = ItemSpec::freestyle("j")
            .with_build(BuildSpec::finished(1, BuildResult::Success))
            .with_build(BuildSpec::finished(3, BuildResult::Unstable))
            .with_build(BuildSpec::finished(4, BuildResult::Failure))
            .with_build(BuildSpec::running(6));
        let item = item_from_spec(&spec, None, "").unwrap();
        let p = |n: &str| item.permalink(n).map(|b| b.number);
        assert_eq!(p("lastBuild"), Some(6));
        assert_eq!(p("lastCompletedBuild"), Some(4));
        assert_eq!(p("lastFailedBuild"), Some(4));
        assert_eq!(p("lastStableBuild"), Some(1));
        assert_eq!(p("lastSuccessfulBuild"), Some(3));
        assert_eq!(p("lastUnstableBuild"), Some(3));
        assert_eq!(p("lastUnsuccessfulBuild"), Some(4));
        assert_eq!(item.next_build_number, 7);
        assert_eq!(item.color(), "red_anime");
        let empty = item_from_spec(&ItemSpec::pipeline("p"), None, "").unwrap();
        assert_eq!(empty.color(), "notbuilt");
        assert_eq!(empty.permalink("lastBuild").map(|b| b.number), None);
        assert_eq!(empty.estimated_duration(), -1);
    }
}
