//! Presigned GET URLs of objects in an S3 store (`jam serve` with `serve.redirect = "presigned"`): the
//! client fetches the bytes from S3 itself. Signing is local (SigV4 with the store's credentials), so a
//! URL costs no request. Other backends cannot presign: [`Store::presigner`] is `None` there.

use std::{sync::Arc, time::Duration};

use object_store::{aws::AmazonS3, path::Path, signer::Signer};

use super::{Store, StoreError};

/// Signs GET URLs for keys of one S3 store (keys relative to the store's prefix, as everywhere).
#[derive(Debug, Clone)]
pub struct Presigner {
    s3: Arc<AmazonS3>,
    /// The store URL's prefix (`s3://bucket/PREFIX`), put before every key.
    prefix: Option<Path>,
}

impl Presigner {
    pub(super) fn new(s3: Arc<AmazonS3>, prefix: &str) -> Presigner {
        let prefix = prefix.trim_matches('/');
        Presigner {
            s3,
            prefix: (!prefix.is_empty()).then(|| Path::from(prefix)),
        }
    }

    /// A GET URL for `key`, valid for `expires_in`.
    pub async fn url(&self, key: &Path, expires_in: Duration) -> Result<url::Url, StoreError> {
        let full = match &self.prefix {
            Some(p) => p.parts().chain(key.parts()).collect(),
            None => key.clone(),
        };
        self.s3
            .signed_url(object_store::signer::Method::GET, &full, expires_in)
            .await
            .map_err(StoreError::op("presign", key))
    }
}

impl Store {
    /// The store's presigner, where it can presign (S3).
    pub fn presigner(&self) -> Option<&Presigner> {
        self.presigner.as_deref()
    }
}
