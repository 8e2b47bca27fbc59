//! Fingerprint records: every fingerprinted artifact grouped by content, oldest use first
//! (`FingerprintMap` keeps the first sighting's name and build), cached until the model
//! changes.

use super::{Artifact, ContentKey, Item, Model, content_key};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One fingerprint use: job full name, build number, timestamp, file name.
#[derive(Debug, Clone)]
pub(crate) struct FpUse {
    pub job: String,
    pub number: u64,
    pub timestamp: i64,
    pub file_name: String,
    pub artifact: Arc<Artifact>,
}

pub(crate) type FpIndex = HashMap<ContentKey, Vec<FpUse>>;

impl Model {
    /// All fingerprint uses grouped by content (cached until the next mutation).
    pub(crate) fn fingerprints(&self) -> Arc<FpIndex> {
        let mut cache = self.fp_cache.lock().unwrap();
        if let Some((g, idx)) = &*cache
            && *g == self.generation
        {
            return idx.clone();
        }
        let mut idx: FpIndex = HashMap::new();
        fn walk(children: &BTreeMap<String, Item>, prefix: &str, idx: &mut FpIndex) {
            for item in children.values() {
                let full = if prefix.is_empty() {
                    item.name.clone()
                } else {
                    format!("{prefix}/{}", item.name)
                };
                for b in item.builds.values() {
                    for a in &b.artifacts {
                        if a.fingerprint {
                            idx.entry(content_key(&a.content)).or_default().push(FpUse {
                                job: full.clone(),
                                number: b.number,
                                timestamp: b.timestamp,
                                file_name: a.file_name.clone(),
                                artifact: a.clone(),
                            });
                        }
                    }
                }
                walk(&item.children, &full, idx);
            }
        }
        walk(&self.items, "", &mut idx);
        for uses in idx.values_mut() {
            uses.sort_by_key(|u| u.timestamp);
        }
        let idx = Arc::new(idx);
        *cache = Some((self.generation, idx.clone()));
        idx
    }
}
