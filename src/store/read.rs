//! Reads for servers of the mirror (`jam serve`): a revalidating read of a small document, which costs
//! a conditional GET (`If-None-Match` on the ETag read before) and moves no bytes while the object is
//! unchanged, and an object's bytes as a stream, whole or one range, never buffered.

use std::ops::Range;

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use object_store::{GetOptions, GetRange, ObjectMeta, path::Path};

use super::{Store, StoreError};

/// The outcome of [`Store::get_if_changed`].
#[derive(Debug)]
pub enum Fetched {
    /// The object, read now (it differs from the ETag given, or none was given).
    Changed(Bytes, ObjectMeta),
    /// The object still has the ETag given.
    Unchanged,
    /// There is no object at the key.
    Missing,
}

/// An object's bytes on their way from the store.
pub struct ObjectStream {
    /// The object's metadata.
    pub meta: ObjectMeta,
    /// The byte range the body carries.
    pub range: Range<u64>,
    /// The bytes.
    pub body: BoxStream<'static, Result<Bytes, StoreError>>,
}

impl std::fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream")
            .field("meta", &self.meta)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Reads a small object unless it still has `etag`.
    pub async fn get_if_changed(
        &self,
        key: &Path,
        etag: Option<&str>,
    ) -> Result<Fetched, StoreError> {
        let opts = GetOptions {
            if_none_match: etag.map(str::to_string),
            ..Default::default()
        };
        match self.inner.get_opts(key, opts).await {
            Ok(r) => {
                let meta = r.meta.clone();
                let bytes = r.bytes().await.map_err(StoreError::op("get", key))?;
                Ok(Fetched::Changed(bytes, meta))
            }
            Err(object_store::Error::NotModified { .. }) => Ok(Fetched::Unchanged),
            Err(object_store::Error::NotFound { .. }) => Ok(Fetched::Missing),
            Err(e) => Err(StoreError::op("get", key)(e)),
        }
    }

    /// Opens an object's bytes, `range` of them or all; `None` if the object does not exist.
    pub async fn read_stream(
        &self,
        key: &Path,
        range: Option<Range<u64>>,
    ) -> Result<Option<ObjectStream>, StoreError> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        match self.inner.get_opts(key, opts).await {
            Ok(r) => {
                let shown = key.to_string();
                let (meta, range) = (r.meta.clone(), r.range.clone());
                let body = r
                    .into_stream()
                    .map(move |chunk| {
                        chunk.map_err(|source| StoreError::Op {
                            op: "get",
                            key: shown.clone(),
                            source,
                        })
                    })
                    .boxed();
                Ok(Some(ObjectStream { meta, range, body }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(StoreError::op("get", key)(e)),
        }
    }
}
