//! A source's items as Jenkins shows them: folders (multibranch projects, organization folders) and jobs,
//! built from the mirror's jobs and the controller record's classes, children in Jenkins' order
//! (case-insensitive by name).
//!
//! Lookup follows Jenkins too: a URL segment names a child exactly, else ignoring case, else (branch-api's
//! lenient `getItem`) after `NameEncoder` decoding or encoding, so `feature%252Fx` (the canonical URL of
//! branch `feature/x`, stored as `feature%2Fx`) and `feature%2Fx` both reach it.

use std::collections::BTreeMap;

use crate::{
    format::{layout::JobPath, manifest::ControllerInfo},
    jenkins::stapler::names::{name_decode, name_encode},
};

/// The class a job has when the controller record does not say.
pub(super) const DEFAULT_JOB_CLASS: &str = "hudson.model.FreeStyleProject";
/// The class a folder has when the controller record does not say.
pub(super) const DEFAULT_FOLDER_CLASS: &str = "com.cloudbees.hudson.plugins.folder.Folder";

/// One folder or job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node {
    /// The item name, as stored (`feature%2Fx`).
    pub(super) name: String,
    /// Its `_class`.
    pub(super) class: String,
    /// Whether the mirror holds it as a job (else it is a folder of jobs).
    pub(super) job: bool,
    /// Children, case-insensitively by name.
    pub(super) children: Vec<Node>,
}

impl Node {
    /// Whether Jenkins would show a display name other than the name: branches of multibranch
    /// projects and repositories of organization folders are shown decoded (`feature/x`).
    pub(super) fn display_name(&self, parent_class: &str) -> String {
        if parent_class.contains("MultiBranchProject")
            || parent_class.contains("OrganizationFolder")
        {
            name_decode(&self.name)
        } else {
            self.name.clone()
        }
    }

    /// The jobs at or below this node, as their names below it.
    pub(super) fn jobs(&self) -> Vec<Vec<&str>> {
        let mut out = Vec::new();
        if self.job {
            out.push(vec![]);
        }
        for c in &self.children {
            for mut below in c.jobs() {
                below.insert(0, c.name.as_str());
                out.push(below);
            }
        }
        out
    }
}

/// A source's items, rooted at the controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ItemTree {
    /// The top-level items.
    pub(super) root: Vec<Node>,
}

impl ItemTree {
    /// The tree of `jobs`, with classes from the controller record where it has them.
    pub(super) fn new(
        jobs: impl IntoIterator<Item = JobPath>,
        info: Option<&ControllerInfo>,
    ) -> ItemTree {
        #[derive(Default)]
        struct Build {
            job: bool,
            children: BTreeMap<String, Build>,
        }
        let mut top = Build::default();
        for job in jobs {
            let mut at = &mut top;
            for name in job.names() {
                at = at.children.entry(name.clone()).or_default();
            }
            at.job = true;
        }
        fn nodes(
            b: BTreeMap<String, Build>,
            parent: &str,
            info: Option<&ControllerInfo>,
        ) -> Vec<Node> {
            let mut out: Vec<Node> = b
                .into_iter()
                .map(|(name, c)| {
                    let full = if parent.is_empty() {
                        name.clone()
                    } else {
                        format!("{parent}/{name}")
                    };
                    let class = info
                        .and_then(|i| i.items.get(&full).cloned())
                        .unwrap_or_else(|| {
                            if c.job {
                                DEFAULT_JOB_CLASS
                            } else {
                                DEFAULT_FOLDER_CLASS
                            }
                            .to_string()
                        });
                    Node {
                        children: nodes(c.children, &full, info),
                        name,
                        class,
                        job: c.job,
                    }
                })
                .collect();
            out.sort_by_key(|a| a.name.to_lowercase());
            out
        }
        ItemTree {
            root: nodes(top.children, "", info),
        }
    }

    /// The nodes a URL's decoded `job/<seg>` segments lead to (one per segment), with the stored names.
    pub(super) fn resolve(&self, segs: &[String]) -> Option<(Vec<&Node>, JobPath)> {
        let mut level = &self.root;
        let mut path = Vec::new();
        let mut names = Vec::new();
        for seg in segs {
            let found = find(level, seg)?;
            names.push(found.name.clone());
            path.push(found);
            level = &found.children;
        }
        (!path.is_empty()).then_some((path, JobPath(names)))
    }
}

fn find<'a>(level: &'a [Node], seg: &str) -> Option<&'a Node> {
    level
        .iter()
        .find(|n| n.name == seg)
        .or_else(|| level.iter().find(|n| n.name.eq_ignore_ascii_case(seg)))
        .or_else(|| {
            let decoded = seg.contains('%').then(|| name_decode(seg));
            let encoded = name_encode(seg);
            level.iter().find(|n| {
                decoded
                    .as_deref()
                    .is_some_and(|d| n.name.eq_ignore_ascii_case(d))
                    || n.name.eq_ignore_ascii_case(&encoded)
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> ItemTree {
        let mut info = ControllerInfo::default();
        info.items.insert(
            "svc".into(),
            "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject".into(),
        );
        ItemTree::new(
            [
                JobPath::new(["svc", "feature%2Fx"]),
                JobPath::new(["team", "App"]),
                JobPath::new(["Top"]),
            ],
            Some(&info),
        )
    }

    #[test]
    fn lookup_is_exact_then_case_insensitive_then_name_encoded() {
        let t = tree();
        let names: Vec<&str> = t.root.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["svc", "team", "Top"]);
        let seg = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (nodes, job) = t.resolve(&seg(&["svc", "feature%2Fx"])).unwrap();
        assert_eq!(job, JobPath::new(["svc", "feature%2Fx"]));
        assert!(nodes[1].job && !nodes[0].job);
        assert_eq!(nodes[1].display_name(&nodes[0].class), "feature/x");
        assert_eq!(t.resolve(&seg(&["svc", "feature/x"])).unwrap().1, job);
        assert_eq!(
            t.resolve(&seg(&["TEAM", "app"])).unwrap().1,
            JobPath::new(["team", "App"])
        );
        assert_eq!(
            nodes[0].class,
            "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
        );
        assert_eq!(t.root[1].class, DEFAULT_FOLDER_CLASS);
        assert!(t.resolve(&seg(&["team", "nope"])).is_none());
        assert_eq!(t.root[1].jobs(), [vec!["App"]]);
    }
}
