//! "Nothing but the archive layer writes the mirror's metadata": a scan of `src/` for modules that both
//! name a metadata key (a manifest, `SHA256SUMS`, a pointer, a job index, a build's prefix) and write to
//! the store. Outside `src/archive/` (and `src/format/`, which defines the keys) a module may read
//! metadata, or write other objects (artifacts, the upload journal, probes), but never both.

use std::path::{Path, PathBuf};

/// How code names a metadata key: the layout's key functions and the documents' file names.
const METADATA_KEYS: [&str; 9] = [
    "manifest_key(",
    "controller_key(",
    "sums_key(",
    "pointer_key(",
    "index_key(",
    "build_prefix(",
    "\"index.json\"",
    "\"manifest.json\"",
    "\"SHA256SUMS\"",
];

/// How code writes to the store (whitespace removed): `Store`'s writes, and object_store's below it.
const STORE_WRITES: [&str; 7] = [
    "store.put(",
    "store.put_opts(",
    "store.create(",
    "store.update(",
    "store.delete(",
    "store().put",
    "store().delete(",
];

/// The source without comment lines and without its unit tests (the `#[cfg(test)]` module, last in a file:
/// tests set up stores as they need), with all whitespace removed (so a call split over lines still reads
/// as one).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| !l.trim_start().starts_with("//"))
        .flat_map(|l| l.chars().filter(|c| !c.is_whitespace()))
        .collect()
}

fn names_metadata(code: &str) -> Option<&'static str> {
    METADATA_KEYS.into_iter().find(|k| code.contains(k))
}

fn writes_store(code: &str) -> Option<&'static str> {
    STORE_WRITES.into_iter().find(|w| code.contains(w))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn only_the_archive_writes_metadata() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();

    // The scan sees the archive's own writes, so its patterns are not stale.
    for f in ["commit.rs", "index.rs", "retire.rs", "controller.rs"] {
        let c = code(&src.join("archive").join(f));
        assert!(
            names_metadata(&c).is_some() && writes_store(&c).is_some(),
            "the scan does not see the metadata writes in src/archive/{f}; update its patterns"
        );
    }

    let mut offenders = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(root).unwrap();
        if rel.starts_with("src/archive") || rel.starts_with("src/format") {
            continue;
        }
        let c = code(f);
        if let (Some(key), Some(write)) = (names_metadata(&c), writes_store(&c)) {
            offenders.push(format!(
                "{}: names `{key}` and writes with `{write}`",
                rel.display()
            ));
        }
    }
    assert!(
        offenders.is_empty(),
        "only src/archive/ may write manifests, SHA256SUMS, pointers and indexes (move the write into \
         archive::Archive):\n{}",
        offenders.join("\n")
    );
}

/// The worker's poll provides what the mirror records of the controller, the archive writes it: the
/// version the controller answered with and the class of every mirrored job and of the folders above
/// it; a cycle that sees nothing new writes nothing.
#[tokio::test]
async fn the_poll_records_the_controller_version_and_item_classes() {
    use crate::harness::{config, layout, mirror_once, scenario};
    use jam::{archive::Catalog, store::Store};
    use jenkins_sim::{ArtifactSpec, BuildResult, BuildSpec, ItemSpec, Scenario, Sim};

    let build = || {
        BuildSpec::finished(1, BuildResult::Success).with_artifact(ArtifactSpec::sized("a.bin", 10))
    };
    let sim = Sim::start(
        scenario()
            .with_item(
                ItemSpec::folder("team").with_job(ItemSpec::freestyle("app").with_build(build())),
            )
            .with_item(
                ItemSpec::multibranch("svc")
                    .with_job(ItemSpec::pipeline("feature/x").with_build(build())),
            ),
    );
    let cfg = config(&sim, "memory://", "");
    let store = Store::open(&cfg.store).unwrap();
    assert!(mirror_once(&cfg, &store).await.ok());
    let catalog = Catalog::new(store.clone());
    let info = catalog
        .controller(&layout())
        .await
        .unwrap()
        .expect("a controller record");
    assert_eq!(
        info.version.as_deref(),
        Some(Scenario::default().version.as_str())
    );
    assert_eq!(info.jenkins, sim.url());
    let items: Vec<(&str, &str)> = info
        .items
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        items,
        [
            (
                "svc",
                "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
            ),
            (
                "svc/feature%2Fx",
                "org.jenkinsci.plugins.workflow.job.WorkflowJob"
            ),
            ("team", "com.cloudbees.hudson.plugins.folder.Folder"),
            ("team/app", "hudson.model.FreeStyleProject"),
        ]
    );
    let puts = |s: &Store| {
        s.stats().get(
            jam::store::counting::StoreOp::Put,
            jam::store::counting::StoreOutcome::Ok,
        )
    };
    let before = puts(&store);
    assert!(mirror_once(&cfg, &store).await.ok());
    assert_eq!(puts(&store), before, "an idle cycle rewrites nothing");
}
