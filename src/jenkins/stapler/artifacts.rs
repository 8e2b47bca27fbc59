//! What Jenkins computes from a build's artifact paths when it shows them: `displayPath`
//! (`Run.ArtifactList.computeDisplayName`), the tree node ids pipeline-rest-api reports
//! (`Run.Artifact.getTreeNodeId`) and its `wfapi/artifacts` answer, the children of a directory of the archive
//! (`DirectoryBrowserSupport`'s listing and `*plain*`), and the `Content-Type` a download gets from the
//! file's name.
//!
//! Everything takes the artifacts' relative paths (`/`-separated) in Jenkins' order.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::names::raw_encode;

/// `Run.ArtifactList.LIST_CUTOFF`: above this many artifacts every `displayPath` is `null`.
pub const LIST_CUTOFF: usize = 20;

/// `Run.ArtifactList.computeDisplayName`: each artifact's shortest unambiguous path suffix, or `None`
/// for all of them when there are more than [`LIST_CUTOFF`].
pub fn display_paths(paths: &[&str]) -> Vec<Option<String>> {
    if paths.len() > LIST_CUTOFF {
        return vec![None; paths.len()];
    }
    let tokens: Vec<Vec<&str>> = paths
        .iter()
        .map(|p| p.split(['/', '\\']).filter(|s| !s.is_empty()).collect())
        .collect();
    let max_depth = tokens.iter().map(|t| t.len()).max().unwrap_or(0);
    let mut len = vec![1usize; paths.len()];
    let combine = |t: &[&str], n: usize| t[t.len().saturating_sub(n)..].join("/");
    let mut depth = 0;
    loop {
        let mut collision = false;
        let mut names: HashMap<String, isize> = HashMap::new();
        for i in 0..tokens.len() {
            let d = combine(&tokens[i], len[i]);
            if let Some(j) = names.insert(d.clone(), i as isize) {
                collision = true;
                if j >= 0 {
                    len[j as usize] += 1;
                }
                len[i] += 1;
                names.insert(d, -1);
            }
        }
        let go_on = collision && depth < max_depth;
        depth += 1;
        if !go_on {
            break;
        }
    }
    tokens
        .iter()
        .zip(&len)
        .map(|(t, &n)| Some(combine(t, n)))
        .collect()
}

/// `Run.addArtifacts`' tree node id of every artifact path: the archive is walked depth first (entries
/// sorted ignoring case), numbering files and directories `n1`, `n2`, …; the only child of a directory
/// below the root is collapsed into it and shares its id.
pub fn tree_node_ids(paths: &[&str]) -> HashMap<String, String> {
    let mut ids = HashMap::new();
    let mut seq = 0u32;
    walk("", paths, None, &mut seq, &mut ids);
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
    let kids = children(paths.iter().copied());
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
                .filter_map(|p| p.strip_prefix(name.as_str())?.strip_prefix('/'))
                .collect();
            walk(&format!("{full}/"), &below, Some(&id), seq, ids);
        } else {
            ids.insert(full, id);
        }
    }
}

/// pipeline-rest-api's `GET …/<run>/wfapi/artifacts` (WorkflowRun only): a Jackson array of
/// `BuildArtifactExt` `{id, name, path, url, size}` for `artifacts` (relative path, size), in order.
/// `id` is the [`tree_node_ids`] id, `name` the `displayPath` (the relative path above
/// [`LIST_CUTOFF`]), `path` the href (each segment `rawEncode`d), and `url` = `run_path` (the run's URL
/// path with the context path, e.g. `/job/app/7/`) + `artifact/` + href, without scheme or host.
pub fn wfapi_artifacts(run_path: &str, artifacts: &[(&str, u64)]) -> Value {
    let paths: Vec<&str> = artifacts.iter().map(|(p, _)| *p).collect();
    let ids = tree_node_ids(&paths);
    let display = display_paths(&paths);
    let out = artifacts
        .iter()
        .zip(display)
        .map(|(&(path, size), display)| {
            let href: Vec<String> = path.split('/').map(raw_encode).collect();
            let href = href.join("/");
            let mut o = Map::new();
            o.insert("id".into(), json!(ids.get(path).map_or("", String::as_str)));
            o.insert("name".into(), json!(display.as_deref().unwrap_or(path)));
            o.insert("path".into(), json!(href));
            o.insert("url".into(), json!(format!("{run_path}artifact/{href}")));
            o.insert("size".into(), json!(size));
            Value::Object(o)
        })
        .collect();
    Value::Array(out)
}

/// The immediate children of directory `dir` (`""` = the archive root) among `paths`: `(name, is_dir)`,
/// in `VirtualFile.compareTo` order (names compared ignoring case). Empty when `dir` holds nothing.
pub fn dir_children<'a>(
    paths: impl IntoIterator<Item = &'a str>,
    dir: &str,
) -> Vec<(String, bool)> {
    children(paths.into_iter().filter_map(|p| {
        if dir.is_empty() {
            Some(p)
        } else {
            p.strip_prefix(dir)?.strip_prefix('/')
        }
    }))
}

fn children<'a>(rel: impl Iterator<Item = &'a str>) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for p in rel {
        let (name, is_dir) = match p.split_once('/') {
            Some((d, _)) => (d, true),
            None => (p, false),
        };
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.to_string(), is_dir));
        }
    }
    out.sort_by_key(|(n, _)| n.to_lowercase());
    out
}

/// The `Content-Type` of a download, from the file name's extension (the servlet container's table for
/// the common kinds, with `;charset=UTF-8` on `text/*` as `DirectoryBrowserSupport` adds it); anything
/// else is `application/octet-stream`.
pub fn content_type(file_name: &str) -> &'static str {
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("txt" | "log" | "md") => "text/plain;charset=UTF-8",
        Some("html" | "htm") => "text/html;charset=UTF-8",
        Some("css") => "text/css;charset=UTF-8",
        Some("csv") => "text/csv;charset=UTF-8",
        Some("js") => "text/javascript;charset=UTF-8",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("jar") => "application/java-archive",
        Some("zip") => "application/zip",
        Some("gz" | "tgz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("svg") => "image/svg+xml",
        Some("pdf") => "application/pdf",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids_of(paths: &[&str]) -> Vec<String> {
        let ids = tree_node_ids(paths);
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

    #[test]
    fn wfapi_entries() {
        let v = wfapi_artifacts("/job/a/3/", &[("out/my app.jar", 6)]);
        assert_eq!(
            v.to_string(),
            r#"[{"id":"n1","name":"my app.jar","path":"out/my%20app.jar","url":"/job/a/3/artifact/out/my%20app.jar","size":6}]"#
        );
    }

    #[test]
    fn display_paths_disambiguate() {
        let d = display_paths(&["docs/README.txt", "README.txt", "build/libs/app.jar"]);
        assert_eq!(d[0].as_deref(), Some("docs/README.txt"));
        assert_eq!(d[1].as_deref(), Some("README.txt"));
        assert_eq!(d[2].as_deref(), Some("app.jar"));
        let d = display_paths(&["f/g.xml", "i/g.xml"]);
        assert_eq!(d[0].as_deref(), Some("f/g.xml"));
        assert_eq!(d[1].as_deref(), Some("i/g.xml"));
        let many: Vec<String> = (0..21).map(|i| format!("f{i}.bin")).collect();
        let refs: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
        assert!(display_paths(&refs).iter().all(|d| d.is_none()));
        assert!(display_paths(&refs[..20]).iter().all(|d| d.is_some()));
    }

    #[test]
    fn directory_children() {
        let paths = ["dist/app.jar", "dist/lib/x.so", "README", "Docs/a"];
        assert_eq!(
            dir_children(paths, ""),
            [
                ("dist".to_string(), true),
                ("Docs".to_string(), true),
                ("README".to_string(), false)
            ]
        );
        assert_eq!(
            dir_children(paths, "dist"),
            [("app.jar".to_string(), false), ("lib".to_string(), true)]
        );
        assert!(dir_children(paths, "di").is_empty());
        assert_eq!(content_type("report.HTML"), "text/html;charset=UTF-8");
        assert_eq!(content_type("app"), "application/octet-stream");
    }
}
