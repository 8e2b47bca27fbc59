//! Versioned writes of small objects: a conditional create and a compare-and-swap replace that return the
//! version (ETag, and the object version where the store keeps them) the store gave the new object, and a
//! read that returns the version with the bytes. The coordination of several workers
//! ([`crate::fleet`]: heartbeats, build claims, singletons) is built on these three and nothing else.
//!
//! S3 does both writes natively (`If-None-Match: *`, `If-Match: <etag>`), and so does the memory backend.
//! A local directory has a native create but no conditional replace: there the replace compares the
//! ETag and writes under the store's update lock, which is exact because a local directory has one
//! writing process (`jam mirror` holds [`super::lock::DirLock`] for its lifetime).
//!
//! [`Store::probe_conditional_writes`] checks that a store really honours both (Garage, for one, ignores
//! them and overwrites).

use bytes::Bytes;
use object_store::{PutMode, PutOptions, PutPayload, UpdateVersion, path::Path};

use super::{Backend, Store, StoreError};

/// The version of one object as the store reports it: compared, never interpreted.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Version {
    /// The ETag.
    pub e_tag: Option<String>,
    /// The object version, on stores with versioning.
    pub version: Option<String>,
}

impl Version {
    fn update(&self) -> UpdateVersion {
        UpdateVersion {
            e_tag: self.e_tag.clone(),
            version: self.version.clone(),
        }
    }
}

/// The outcome of a versioned write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Versioned {
    /// Written; the new object's version.
    Written(Version),
    /// The condition failed: an object existed (create), or the object changed or vanished (replace).
    Conflict,
}

/// What [`Store::probe_conditional_writes`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Conditional {
    /// A create over an existing object was refused.
    pub create: bool,
    /// A replace with a stale version was refused.
    pub update: bool,
}

impl Conditional {
    /// Whether several writers can coordinate through this store.
    pub fn honoured(self) -> bool {
        self.create && self.update
    }
}

impl Store {
    /// Writes `bytes` at `key` only if no object is there; returns the new object's version.
    pub async fn create_versioned(
        &self,
        key: &Path,
        bytes: Bytes,
    ) -> Result<Versioned, StoreError> {
        self.put_versioned(key, bytes, PutMode::Create, "create")
            .await
    }

    /// Replaces the object at `key` only if its version is still `expected`; returns the new version.
    /// A missing object is a conflict too.
    pub async fn replace_if(
        &self,
        key: &Path,
        bytes: Bytes,
        expected: &Version,
    ) -> Result<Versioned, StoreError> {
        if self.backend == Backend::Local {
            let _guard = self.update_lock.lock().await;
            let current = self.head(key).await?;
            if current.is_none_or(|m| m.e_tag != expected.e_tag) {
                return Ok(Versioned::Conflict);
            }
            return self
                .put_versioned(key, bytes, PutMode::Overwrite, "update")
                .await;
        }
        self.put_versioned(key, bytes, PutMode::Update(expected.update()), "update")
            .await
    }

    /// One write in `mode`; a failed condition (or a missing object, for a replace) is a conflict.
    async fn put_versioned(
        &self,
        key: &Path,
        bytes: Bytes,
        mode: PutMode,
        op: &'static str,
    ) -> Result<Versioned, StoreError> {
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(key, PutPayload::from(bytes), opts)
            .await
        {
            Ok(r) => Ok(Versioned::Written(Version {
                e_tag: r.e_tag,
                version: r.version,
            })),
            Err(
                object_store::Error::Precondition { .. }
                | object_store::Error::AlreadyExists { .. }
                | object_store::Error::NotFound { .. },
            ) => Ok(Versioned::Conflict),
            Err(e) => Err(StoreError::op(op, key)(e)),
        }
    }

    /// Reads a small object with its version; `None` if it does not exist.
    pub async fn get_versioned(&self, key: &Path) -> Result<Option<(Bytes, Version)>, StoreError> {
        Ok(self.get(key).await?.map(|(bytes, meta)| {
            (
                bytes,
                Version {
                    e_tag: meta.e_tag,
                    version: meta.version,
                },
            )
        }))
    }

    /// Checks at `key` (a fresh key of jam's own, under `.jam/`) that the store refuses a create over an
    /// existing object and a replace with a stale version; the key is removed afterwards. Costs four
    /// requests.
    pub async fn probe_conditional_writes(&self, key: &Path) -> Result<Conditional, StoreError> {
        let body = |n: u8| Bytes::from(format!("{{\"probe\":{n}}}"));
        let first = match self.create_versioned(key, body(1)).await? {
            Versioned::Written(v) => v,
            // Something is there after all (a store that answers a delete before it is visible):
            // probe the replace against what is there.
            Versioned::Conflict => match self.get_versioned(key).await? {
                Some((_, v)) => v,
                None => Version::default(),
            },
        };
        let create = self.create_versioned(key, body(2)).await? == Versioned::Conflict;
        let stale = Version {
            e_tag: Some("\"00000000000000000000000000000000\"".into()),
            version: None,
        };
        let update = first.e_tag.is_some()
            && self.replace_if(key, body(3), &stale).await? == Versioned::Conflict;
        self.delete(key).await?;
        Ok(Conditional { create, update })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;

    async fn round_trip(store: &Store) {
        let key = Path::from(".jam/test/lease");
        let Versioned::Written(v1) = store
            .create_versioned(&key, Bytes::from("a"))
            .await
            .unwrap()
        else {
            panic!("first create writes");
        };
        assert_eq!(
            store
                .create_versioned(&key, Bytes::from("b"))
                .await
                .unwrap(),
            Versioned::Conflict
        );
        let Versioned::Written(v2) = store.replace_if(&key, Bytes::from("c"), &v1).await.unwrap()
        else {
            panic!("replace with the current version writes");
        };
        assert_ne!(v1, v2);
        assert_eq!(
            store.replace_if(&key, Bytes::from("d"), &v1).await.unwrap(),
            Versioned::Conflict,
            "a stale version is refused"
        );
        let (bytes, v) = store.get_versioned(&key).await.unwrap().unwrap();
        assert_eq!((&bytes[..], &v), (&b"c"[..], &v2));
        store.delete(&key).await.unwrap();
        assert_eq!(
            store.replace_if(&key, Bytes::from("e"), &v2).await.unwrap(),
            Versioned::Conflict,
            "a vanished object is a conflict"
        );
        let probe = store
            .probe_conditional_writes(&Path::from(".jam/probe/x"))
            .await
            .unwrap();
        assert!(probe.honoured(), "{probe:?}");
        assert!(
            store
                .head(&Path::from(".jam/probe/x"))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn versioned_writes_on_memory_and_a_local_directory() {
        round_trip(&Store::open(&StoreConfig::new("memory://")).unwrap()).await;
        let dir = tempfile::tempdir().unwrap();
        round_trip(&Store::open(&StoreConfig::new(dir.path().to_str().unwrap())).unwrap()).await;
    }
}
