//! Reading what the mirror holds: the sources (controllers) at the store's root, the jobs below each
//! (a walk of `<source>/job/<seg>/` levels with one `list_dir` per level), and a job's index, pointers and
//! manifests. `jam ls`, `jam verify` and the name resolution of [`crate::resolve`] are built on it.
//!
//! A job is a prefix that holds `index.json`; a folder (or multibranch project) is a prefix with `job/`
//! children. A name typed by a user (`app/feature/x`) does not say where one item name ends and the next
//! begins, because a branch name may contain `/` (its item is `feature%2Fx`); [`Catalog::resolve_job`]
//! tries the possible splits against what exists, one level at a time.

use std::collections::BTreeSet;

use crate::{
    format::layout::{self, JobPath, Layout, Permalink, key_segment},
    format::manifest::{JobIndex, Manifest, Pointer},
    format::version::{DocumentError, Versioned, parse_document},
    store::{Store, StoreError},
};

/// An error reading the mirror's catalog.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A JSON document in the store does not parse.
    #[error("'{key}' is not a valid jam document: {message}")]
    Corrupt {
        /// The key.
        key: String,
        /// The parser's complaint.
        message: String,
    },
    /// A document in the store was written by a newer jam.
    #[error(transparent)]
    NewerFormat(DocumentError),
    /// No job by that name in the mirror ([`crate::resolve`] tells the user which jobs there are).
    #[error(
        "no job '{name}' in the mirror (source '{source_name}'); `jam ls` lists the mirrored jobs"
    )]
    NoSuchJob {
        /// The name as given.
        name: String,
        /// The source searched.
        source_name: String,
    },
    /// The name matches several jobs.
    #[error("'{name}' matches several jobs: {}; give the item names as Jenkins stores them (a branch 'a/b' is 'a%2Fb')", .candidates.join(", "))]
    Ambiguous {
        /// The name as given.
        name: String,
        /// The jobs it could mean (encoded full names).
        candidates: Vec<String>,
    },
    /// The store holds no mirrored sources.
    #[error("no mirrored builds in the store at {store}")]
    NoSources {
        /// The store, as described for messages.
        store: String,
    },
    /// The store holds several sources where one was needed.
    #[error("the store at {store} holds several sources ({}); choose one with --source", .sources.join(", "))]
    SeveralSources {
        /// The store, as described for messages.
        store: String,
        /// The sources it holds.
        sources: Vec<String>,
    },
}

/// A job found in the mirror.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct JobEntry {
    /// The source (controller) name.
    pub source: String,
    /// The job's item names.
    pub job: JobPath,
    /// Build-number prefixes seen under the job (from the same listing that found it).
    pub build_dirs: BTreeSet<u64>,
}

/// Read access to the mirror's jobs, indexes, pointers and manifests.
#[derive(Debug, Clone)]
pub struct Catalog {
    store: Store,
}

impl Catalog {
    /// A catalog over a store.
    pub fn new(store: Store) -> Catalog {
        Catalog { store }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The sources at the store's root (one `list_dir`).
    pub async fn sources(&self) -> Result<Vec<String>, CatalogError> {
        let (_, prefixes) = self.store.list_dir(&layout::path("")).await?;
        let mut out: Vec<String> = prefixes
            .iter()
            .filter_map(|p| p.parts().next_back().map(|s| s.as_ref().to_string()))
            .filter(|s| !s.starts_with('.'))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The single source of the store, when there is exactly one.
    pub async fn only_source(&self) -> Result<String, CatalogError> {
        let sources = self.sources().await?;
        match sources.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(CatalogError::NoSources {
                store: self.store.describe().into(),
            }),
            many => Err(CatalogError::SeveralSources {
                store: self.store.describe().into(),
                sources: many.to_vec(),
            }),
        }
    }

    /// Every job of a source, sorted by item names. One `list_dir` per folder and per job.
    pub async fn jobs(&self, source: &str) -> Result<Vec<JobEntry>, CatalogError> {
        let mut out = Vec::new();
        let mut todo = vec![(source.to_string(), JobPath::default())];
        while let Some((prefix, job)) = todo.pop() {
            let (objects, prefixes) = self.store.list_dir(&layout::path(&prefix)).await?;
            let is_job = objects
                .iter()
                .any(|o| o.location.filename() == Some("index.json"));
            let mut builds = BTreeSet::new();
            for p in &prefixes {
                let Some(last) = p.parts().next_back().map(|s| s.as_ref().to_string()) else {
                    continue;
                };
                if last == "job" {
                    let (_, children) = self.store.list_dir(p).await?;
                    for c in children {
                        let Some(seg) = c.parts().next_back().map(|s| s.as_ref().to_string())
                        else {
                            continue;
                        };
                        let Some(name) = decode_segment(&seg) else {
                            continue;
                        };
                        let mut names = job.0.clone();
                        names.push(name);
                        todo.push((c.to_string(), JobPath(names)));
                    }
                } else if let Ok(n) = last.parse::<u64>() {
                    builds.insert(n);
                }
            }
            if is_job && !job.0.is_empty() {
                out.push(JobEntry {
                    source: source.to_string(),
                    job,
                    build_dirs: builds,
                });
            }
        }
        out.sort();
        Ok(out)
    }

    /// Finds the job a user-typed full name means. `name` is split on `/`; consecutive parts may form one
    /// item name (a branch `feature/x` is the item `feature%2Fx`). Tries the plain split first with a
    /// single read of its index, then walks the possible splits level by level.
    pub async fn resolve_job(&self, layout: &Layout, name: &str) -> Result<JobPath, CatalogError> {
        let parts: Vec<&str> = name.split('/').filter(|s| !s.is_empty()).collect();
        if parts.is_empty() {
            return Err(CatalogError::NoSuchJob {
                name: name.into(),
                source_name: layout.source().into(),
            });
        }
        let plain = JobPath::new(parts.iter().copied());
        if self.has_index(layout, &plain).await? {
            return Ok(plain);
        }
        let mut found = Vec::new();
        let mut todo = vec![(layout.source().to_string(), Vec::<String>::new(), 0usize)];
        while let Some((prefix, names, at)) = todo.pop() {
            if at == parts.len() {
                let job = JobPath(names);
                if self.has_index(layout, &job).await? {
                    found.push(job);
                }
                continue;
            }
            let (_, children) = self
                .store
                .list_dir(&layout::path(&format!("{prefix}/job")))
                .await?;
            let segs: BTreeSet<String> = children
                .iter()
                .filter_map(|c| c.parts().next_back().map(|s| s.as_ref().to_string()))
                .collect();
            for end in at + 1..=parts.len() {
                let item = parts[at..end].join("%2F");
                let seg = key_segment(&item);
                if segs.contains(&seg) {
                    let mut n = names.clone();
                    n.push(item);
                    todo.push((format!("{prefix}/job/{seg}"), n, end));
                }
            }
        }
        found.sort();
        found.dedup();
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(CatalogError::NoSuchJob {
                name: name.into(),
                source_name: layout.source().into(),
            }),
            _ => Err(CatalogError::Ambiguous {
                name: name.into(),
                candidates: found.iter().map(JobPath::full_name).collect(),
            }),
        }
    }

    async fn has_index(&self, layout: &Layout, job: &JobPath) -> Result<bool, CatalogError> {
        Ok(self
            .store
            .head(&layout::path(&layout.index_key(job)))
            .await?
            .is_some())
    }

    /// A job's index; `None` if it has none.
    pub async fn index(
        &self,
        layout: &Layout,
        job: &JobPath,
    ) -> Result<Option<JobIndex>, CatalogError> {
        let key = layout.index_key(job);
        self.read_json(&key).await
    }

    /// A permalink pointer; `None` if the job has none for this permalink.
    pub async fn pointer(
        &self,
        layout: &Layout,
        job: &JobPath,
        link: Permalink,
    ) -> Result<Option<Pointer>, CatalogError> {
        self.read_json(&layout.pointer_key(job, link)).await
    }

    /// A build's manifest; `None` if the build is not committed.
    pub async fn manifest(
        &self,
        layout: &Layout,
        job: &JobPath,
        number: u64,
    ) -> Result<Option<Manifest>, CatalogError> {
        self.read_json(&layout.manifest_key(job, number)).await
    }

    /// Reads and parses a JSON document; `None` if the object does not exist. One in a newer format than
    /// this jam's is refused.
    pub async fn read_json<T: Versioned>(&self, key: &str) -> Result<Option<T>, CatalogError> {
        let path = Store::path(key)?;
        let Some((bytes, _)) = self.store.get(&path).await? else {
            return Ok(None);
        };
        parse_document(&bytes, key).map(Some).map_err(|e| match e {
            DocumentError::Invalid { key, message, .. } => CatalogError::Corrupt { key, message },
            newer => CatalogError::NewerFormat(newer),
        })
    }
}

/// A key segment back to the item name ([`key_segment`] inverted).
pub fn decode_segment(seg: &str) -> Option<String> {
    match seg {
        "%2E" => Some(".".into()),
        "%2E%2E" => Some("..".into()),
        s => layout::percent_decode(s),
    }
}

/// The user-facing spelling of a job: item names joined with `/`, branch names decoded (`app/feature/x`).
pub fn display_name(job: &JobPath) -> String {
    job.names()
        .iter()
        .map(|n| layout::percent_decode(n).unwrap_or_else(|| n.clone()))
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_decode() {
        assert_eq!(decode_segment("feature%252Fx").unwrap(), "feature%2Fx");
        assert_eq!(decode_segment("%2E%2E").unwrap(), "..");
        assert_eq!(
            display_name(&JobPath::new(["svc", "feature%2Fx"])),
            "svc/feature/x"
        );
    }
}
