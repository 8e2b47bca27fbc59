//! pipeline-rest-api's `GET …/<run>/wfapi/artifacts` (WorkflowRun only, API.md §10.4): a
//! Jackson array of `BuildArtifactExt` `{id, name, path, url, size}` for every artifact.
//!
//! * `id` is `Run.Artifact.getTreeNodeId()`: `Run.addArtifacts` walks the archive depth first
//!   (entries sorted case-insensitively) numbering files and directories `n1`, `n2`, …; the
//!   only child of a directory below the root is collapsed into it and shares its id.
//! * `name` is `displayPath`, or `relativePath` when that is null (more than 20 artifacts).
//! * `path` is the href (each segment `rawEncode`d), `url` is context path (none here) + run URL
//!   + `artifact/` + href, without scheme or host.

use super::s;
use crate::model::{Artifact, Build, Ctx};
use crate::names::raw_encode;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// The `wfapi/artifacts` array of build `b` of the job at `ctx`.
pub(crate) fn wfapi_artifacts(ctx: &Ctx, b: &Build) -> Value {
    let arts = b.live_artifacts();
    let ids = tree_node_ids(arts);
    let out = arts
        .iter()
        .zip(&b.display_paths)
        .map(|(a, display)| {
            let href: Vec<String> = a.path.split('/').map(raw_encode).collect();
            let href = href.join("/");
            let mut o = Map::new();
            o.insert("id".into(), s(ids.get(&a.path).map_or("", String::as_str)));
            o.insert("name".into(), s(display.as_deref().unwrap_or(&a.path)));
            o.insert("path".into(), s(&href));
            o.insert(
                "url".into(),
                s(&format!("/{}{}/artifact/{href}", ctx.path, b.number)),
            );
            o.insert("size".into(), json!(a.content.len()));
            Value::Object(o)
        })
        .collect();
    Value::Array(out)
}

/// `Run.addArtifacts`' tree node id of every artifact path.
fn tree_node_ids(arts: &[Arc<Artifact>]) -> HashMap<String, String> {
    let paths: Vec<&str> = arts.iter().map(|a| a.path.as_str()).collect();
    let mut ids = HashMap::new();
    let mut seq = 0u32;
    walk("", &paths, None, &mut seq, &mut ids);
    ids
}

/// Numbers the entries of directory `dir` (`""` = the archive root); `paths` are the artifact
/// paths below it, relative to it; `parent` is the directory's own id (`None` at the root).
fn walk(
    dir: &str,
    paths: &[&str],
    parent: Option<&str>,
    seq: &mut u32,
    ids: &mut HashMap<String, String>,
) {
    // Children in `VirtualFile.compareTo` order (names compared ignoring case).
    let mut kids: Vec<(&str, bool)> = Vec::new();
    for p in paths {
        let (name, is_dir) = match p.split_once('/') {
            Some((d, _)) => (d, true),
            None => (*p, false),
        };
        if !kids.iter().any(|(n, _)| *n == name) {
            kids.push((name, is_dir));
        }
    }
    kids.sort_by_key(|(n, _)| n.to_lowercase());
    let collapsed = kids.len() == 1 && parent.is_some();
    for (name, is_dir) in kids {
        let id = match parent {
            Some(p) if collapsed => p.to_string(),
            _ => {
                *seq += 1;
                format!("n{seq}")
            }
        };
        let full = format!("{dir}{name}");
        if is_dir {
            let below: Vec<&str> = paths
                .iter()
                .filter_map(|p| p.strip_prefix(name).and_then(|r| r.strip_prefix('/')))
                .collect();
            walk(&format!("{full}/"), &below, Some(&id), seq, ids);
        } else {
            ids.insert(full, id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids_of(paths: &[&str]) -> Vec<String> {
        let mut ids = HashMap::new();
        let mut seq = 0;
        walk("", paths, None, &mut seq, &mut ids);
        paths.iter().map(|p| ids[*p].clone()).collect()
    }

    #[test]
    fn tree_node_ids_follow_run_add_artifacts() {
        // target/ (n1) holds classes/ (n2, whose only child is collapsed into it) and the jar.
        assert_eq!(
            ids_of(&["target/classes/a.class", "target/hello2.jar"]),
            ["n2", "n3"]
        );
        // A chain of single children shares the top directory's id.
        assert_eq!(ids_of(&["a/b/c/file.txt"]), ["n1"]);
        // Root entries are never collapsed; names sort ignoring case.
        assert_eq!(ids_of(&["b.txt", "A.txt"]), ["n2", "n1"]);
    }
}
