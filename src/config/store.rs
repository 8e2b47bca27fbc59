//! `[store]`: where the mirror lives, and everything the S3 client needs, including what `object_store`
//! would otherwise read from the environment itself ([`AwsOptions`]).

use std::{path::PathBuf, time::Duration};

use object_store::aws::AmazonS3ConfigKey;
use secrecy::SecretString;

use super::{
    ConfigError, DEFAULT_STORE, Env, Overrides,
    raw::RawStore,
    values::{read_secret_file, secs_or},
};

/// Where the mirror lives: the store URL and its S3 settings.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The store URL as given (`s3://…`, `file:///…`, a path, or `memory://`).
    pub url: String,
    /// S3 endpoint, for anything that is not AWS.
    pub endpoint: Option<String>,
    /// S3 region.
    pub region: Option<String>,
    /// Allow plain HTTP to the endpoint.
    pub allow_http: bool,
    /// Virtual-hosted-style requests.
    pub virtual_hosted_style: bool,
    /// Extra CA certificates (PEM).
    pub ca_bundle: Option<PathBuf>,
    /// S3 access key id, when given through the environment or a file.
    pub access_key_id: Option<SecretString>,
    /// S3 secret key, when given through the environment or a file.
    pub secret_access_key: Option<SecretString>,
    /// S3 session token from the environment.
    pub session_token: Option<SecretString>,
    /// Timeout of one store request, body included (a whole part upload must fit).
    pub request_timeout: Duration,
    /// The `AWS_*` variables of the environment, as `object_store` would read them (see [`AwsOptions`]);
    /// the fields above win over them.
    pub aws: AwsOptions,
}

impl StoreConfig {
    /// A store configuration with nothing but the URL (no S3 settings, default timeout).
    pub fn new(url: impl Into<String>) -> StoreConfig {
        StoreConfig {
            url: url.into(),
            endpoint: None,
            region: None,
            allow_http: false,
            virtual_hosted_style: false,
            ca_bundle: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            request_timeout: Duration::from_secs(300),
            aws: AwsOptions::default(),
        }
    }
}

/// The S3 settings of the environment, collected as `object_store`'s `AmazonS3Builder::from_env` would
/// collect them: every `AWS_*` variable whose lower-cased name is an [`AmazonS3ConfigKey`], in name order.
///
/// That covers the credential providers `object_store` chooses from when no keys are given: web identity
/// (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`, `AWS_ROLE_SESSION_NAME`, `AWS_ENDPOINT_URL_STS`), ECS
/// task roles (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`), EKS pod identity
/// (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`) and the instance
/// metadata service (`AWS_METADATA_ENDPOINT`, `AWS_IMDSV1_FALLBACK`); and the other S3 settings
/// (`AWS_SERVER_SIDE_ENCRYPTION`, `AWS_SSE_KMS_KEY_ID`, `AWS_REQUEST_PAYER`, `AWS_UNSIGNED_PAYLOAD`,
/// `AWS_CHECKSUM_ALGORITHM`, `AWS_TOKEN`, ...). `object_store` knows no profiles, so `AWS_PROFILE` is not
/// among them.
///
/// HTTP client keys (`AWS_ALLOW_HTTP`, `AWS_PROXY_URL`, `AWS_TIMEOUT`, ...) are left out: jam builds the
/// client options from its own settings ([`StoreConfig::allow_http`] reads `AWS_ALLOW_HTTP`), and
/// `with_client_options` would replace them anyway. Values are held as secrets (the SSE customer key and
/// the secret key are among them); `Debug` shows the key names only.
#[derive(Clone, Default)]
pub struct AwsOptions(Vec<(AmazonS3ConfigKey, SecretString)>);

impl AwsOptions {
    /// The settings in `env`.
    pub fn from_environment(env: &Env<'_>) -> AwsOptions {
        AwsOptions(
            env.with_prefix("AWS_")
                .filter_map(|(name, value)| {
                    let key: AmazonS3ConfigKey = name.to_ascii_lowercase().parse().ok()?;
                    let client = matches!(key, AmazonS3ConfigKey::Client(_));
                    (!client).then(|| (key, SecretString::from(value.to_string())))
                })
                .collect(),
        )
    }

    /// Adds a setting (after those already there, so it wins over them).
    pub fn push(&mut self, key: AmazonS3ConfigKey, value: SecretString) {
        self.0.push((key, value));
    }

    /// The settings, in the order to apply them.
    pub fn iter(&self) -> impl Iterator<Item = (AmazonS3ConfigKey, &SecretString)> {
        self.0.iter().map(|(k, v)| (*k, v))
    }

    /// Whether `key` is set.
    pub fn contains(&self, key: AmazonS3ConfigKey) -> bool {
        self.0.iter().any(|(k, _)| *k == key)
    }
}

impl std::fmt::Debug for AwsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| k.as_ref()))
            .finish()
    }
}

/// Validates `[store]` with the environment and flags layered over it.
pub(super) fn store_config(
    raw: RawStore,
    flags: &Overrides,
    env: &Env<'_>,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<StoreConfig, ConfigError> {
    let url = env
        .layer(flags.store.clone(), &["JAM_STORE"], raw.url)?
        .unwrap_or_else(|| DEFAULT_STORE.into());
    let allow_http = env
        .layer(None, &["AWS_ALLOW_HTTP"], raw.allow_http)?
        .unwrap_or(false);
    let secret = |var: &str, file: Option<PathBuf>, key: &str| {
        env.layer_with(None, &[var], || {
            file.map(|f| read_secret_file(key, &resolve(f))).transpose()
        })
    };
    let request_timeout = secs_or(raw.request_timeout, 300);
    if request_timeout.is_zero() {
        return Err(ConfigError::invalid(
            "store.request_timeout",
            "must be more than 0s",
        ));
    }
    Ok(StoreConfig {
        url,
        endpoint: env.layer(
            None,
            &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"],
            raw.endpoint,
        )?,
        region: env.layer(None, &["AWS_REGION", "AWS_DEFAULT_REGION"], raw.region)?,
        allow_http,
        virtual_hosted_style: env
            .layer(
                None,
                &["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"],
                raw.virtual_hosted_style,
            )?
            .unwrap_or(false),
        ca_bundle: raw.ca_bundle.map(resolve),
        access_key_id: secret(
            "AWS_ACCESS_KEY_ID",
            raw.access_key_id_file,
            "store.access_key_id_file",
        )?,
        secret_access_key: secret(
            "AWS_SECRET_ACCESS_KEY",
            raw.secret_access_key_file,
            "store.secret_access_key_file",
        )?,
        session_token: env.var(&["AWS_SESSION_TOKEN"])?,
        request_timeout,
        aws: AwsOptions::from_environment(env),
    })
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;
    use crate::config::{Config, RawConfig, layer::env};

    #[test]
    fn aws_options_are_what_object_store_would_read_from_the_environment() {
        let e = env(&[
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/jam"),
            ("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/token"),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.23/v1",
            ),
            ("AWS_SSE_CUSTOMER_KEY_BASE64", "c2VjcmV0LWtleQ=="),
            ("AWS_PROXY_URL", "http://proxy:3128"),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_PROFILE", "dev"),
            ("JAM_STORE", "s3://b"),
        ]);
        let aws = AwsOptions::from_environment(&e);
        let keys: Vec<String> = aws.iter().map(|(k, _)| k.as_ref().to_string()).collect();
        assert_eq!(
            keys,
            [
                "aws_container_credentials_full_uri",
                "aws_role_arn",
                "aws_sse_customer_key_base64",
                "aws_web_identity_token_file",
            ],
            "client keys, unknown names and non-AWS variables are left out"
        );
        let role = aws
            .iter()
            .find(|(k, _)| *k == AmazonS3ConfigKey::RoleArn)
            .map(|(_, v)| v.expose_secret().to_string());
        assert_eq!(role.as_deref(), Some("arn:aws:iam::1:role/jam"));
        let dbg = format!("{aws:?}");
        assert!(dbg.contains("aws_role_arn"), "{dbg}");
        assert!(
            !dbg.contains("c2VjcmV0"),
            "a value leaked into Debug: {dbg}"
        );
    }

    #[test]
    fn store_settings_from_the_environment_win_over_the_file() {
        let raw = crate::config::parse_toml(
            std::path::Path::new("c.toml"),
            "[store]\nendpoint = \"http://file:9000\"\nregion = \"eu-west-1\"\nallow_http = false\n",
        )
        .unwrap();
        let e = env(&[
            ("AWS_ENDPOINT_URL", "http://env:9000"),
            ("AWS_DEFAULT_REGION", "us-west-2"),
            ("AWS_ALLOW_HTTP", "yes"),
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SESSION_TOKEN", "session"),
        ]);
        let s = Config::from_raw(raw, None, &Overrides::default(), &e)
            .unwrap()
            .store;
        assert_eq!(s.endpoint.as_deref(), Some("http://env:9000"));
        assert_eq!(s.region.as_deref(), Some("us-west-2"));
        assert!(s.allow_http);
        assert_eq!(
            s.access_key_id.as_ref().map(|k| k.expose_secret()),
            Some("AKIAEXAMPLE")
        );
        assert!(s.session_token.is_some());
        let err = Config::from_raw(
            RawConfig::default(),
            None,
            &Overrides::default(),
            &env(&[("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "sure")]),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "invalid AWS_VIRTUAL_HOSTED_STYLE_REQUEST: 'sure' is not a boolean; use true or false"
        );
    }
}
