//! Listing the open multipart uploads of a key on S3: the one S3 call jam needs that `object_store` does
//! not offer (`ListMultipartUploads`).
//!
//! A worker killed between creating a multipart upload and recording its id in the upload journal leaves an
//! upload whose id nobody knows. The journal therefore records the key *before* the upload is created, and
//! the next start asks S3 which uploads are open for that key and aborts them. The request is signed with
//! `object_store`'s own SigV4 authorizer and credential provider, so it uses exactly the credentials the
//! store uses (static keys, session tokens, instance or web-identity roles).

use object_store::{
    aws::{AmazonS3, AwsAuthorizer},
    client::HttpRequestBody,
    path::Path,
};
use url::Url;

use crate::config::StoreConfig;

/// Lists open multipart uploads under one S3 bucket and prefix.
#[derive(Debug)]
pub struct S3Uploads {
    s3: AmazonS3,
    bucket_url: Url,
    region: String,
    /// The store's prefix in the bucket, with a trailing `/` (or empty).
    prefix: String,
    http: reqwest::Client,
}

impl S3Uploads {
    /// For the bucket and prefix of an S3 store, with the store's settings (endpoint, TLS, region).
    pub fn new(
        cfg: &StoreConfig,
        s3: &AmazonS3,
        bucket: &str,
        prefix: &str,
    ) -> Result<S3Uploads, String> {
        let region = cfg.region.clone().unwrap_or_else(|| "us-east-1".into());
        let base = match (&cfg.endpoint, cfg.virtual_hosted_style) {
            (Some(ep), false) => format!("{}/{bucket}/", ep.trim_end_matches('/')),
            (Some(ep), true) => format!("{}/", ep.trim_end_matches('/')),
            (None, _) => format!("https://{bucket}.s3.{region}.amazonaws.com/"),
        };
        let bucket_url = Url::parse(&base).map_err(|e| format!("bad S3 endpoint '{base}': {e}"))?;
        let mut b = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .user_agent(concat!("jam/", env!("CARGO_PKG_VERSION")));
        if let Some(ca) = &cfg.ca_bundle {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("cannot read ca_bundle '{}': {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| e.to_string())?;
            b = b.tls_certs_merge(certs);
        }
        Ok(S3Uploads {
            s3: s3.clone(),
            bucket_url,
            region,
            prefix: match prefix.trim_matches('/') {
                "" => String::new(),
                p => format!("{p}/"),
            },
            http: b.build().map_err(|e| e.to_string())?,
        })
    }

    /// The ids of the uploads open for exactly `key` (relative to the store's prefix).
    pub async fn open_uploads(&self, key: &Path) -> Result<Vec<String>, String> {
        let full_key = format!("{}{key}", self.prefix);
        let mut url = self.bucket_url.clone();
        url.query_pairs_mut()
            .append_pair("uploads", "")
            .append_pair("prefix", &full_key);
        let credential = self
            .s3
            .credentials()
            .get_credential()
            .await
            .map_err(|e| format!("S3 credentials: {e}"))?;
        let mut request = http::Request::builder()
            .method("GET")
            .uri(url.as_str())
            .body(HttpRequestBody::empty())
            .map_err(|e| e.to_string())?;
        AwsAuthorizer::new(&credential, "s3", &self.region)
            .try_authorize(&mut request, None)
            .map_err(|e| format!("signing the request: {e}"))?;
        let mut req = self.http.get(url.clone());
        for (name, value) in request.headers() {
            req = req.header(name.as_str(), value.as_bytes());
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("listing multipart uploads: {e}"))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .map_err(|e| format!("listing multipart uploads: {e}"))?;
        if !status.is_success() {
            return Err(format!("listing multipart uploads: S3 answered {status}"));
        }
        Ok(parse_uploads(&body)
            .into_iter()
            .filter(|(k, _)| *k == full_key)
            .map(|(_, id)| id)
            .collect::<Vec<_>>())
    }
}

/// (key, upload id) of each `<Upload>` in a `ListMultipartUploadsResult`.
fn parse_uploads(xml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find("<Upload>") {
        let after = &rest[start + "<Upload>".len()..];
        let Some(end) = after.find("</Upload>") else {
            break;
        };
        let block = &after[..end];
        if let (Some(k), Some(id)) = (element(block, "Key"), element(block, "UploadId")) {
            out.push((unescape(k), unescape(id)));
        }
        rest = &after[end..];
    }
    out
}

fn element<'a>(xml: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&close)?;
    Some(&xml[start..start + len])
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_list_multipart_uploads() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult><Bucket>b</Bucket>
<Upload><Key>p/a&amp;b.bin</Key><UploadId>id-1</UploadId><Initiated>x</Initiated></Upload>
<Upload><Key>p/c.bin</Key><UploadId>id-2</UploadId></Upload></ListMultipartUploadsResult>"#;
        assert_eq!(
            parse_uploads(xml),
            vec![
                ("p/a&b.bin".to_string(), "id-1".to_string()),
                ("p/c.bin".to_string(), "id-2".to_string())
            ]
        );
        assert!(parse_uploads("<ListMultipartUploadsResult/>").is_empty());
    }
}
