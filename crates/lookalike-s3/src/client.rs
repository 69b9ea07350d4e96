//! One S3 client per bucket: object_store's `AmazonS3` configured from the standard AWS
//! environment and `[catalog] fetch_*`, on a small tokio runtime of its own so that
//! callers stay synchronous (the indexer's threads, the TUI's worker, the server's
//! blocking tasks).

use std::sync::Arc;
use std::time::Duration;

use lookalike_core::config::FetchConfig;
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientConfigKey, RetryConfig};

use crate::error::reason;
use crate::location::S3Location;
use crate::profile;

pub struct Client {
    pub store: Arc<AmazonS3>,
    pub runtime: tokio::runtime::Runtime,
    /// The endpoint (never the credentials), so that two servers' buckets of one name
    /// never share a local folder.
    endpoint: String,
}

impl Client {
    /// A local folder name for what lives at `location`, and the bytes that identify it
    /// with this endpoint (never the credentials).
    pub fn local_key(&self, location: &S3Location) -> (String, Vec<u8>) {
        (location.folder_name(), format!("{location}@{}", self.endpoint).into_bytes())
    }

    /// A client of `bucket` with credentials, region and endpoint from the standard AWS
    /// environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, ...), else from the shared AWS config and
    /// credentials files (`AWS_PROFILE`). Nothing is requested yet.
    pub fn new(bucket: &str, fetch: FetchConfig) -> Result<Client, String> {
        let timeout = Duration::from_secs(fetch.timeout_s);
        let mut builder = AmazonS3Builder::from_env();
        for (key, value) in profile::settings_missing_from_env() {
            builder = builder.with_config(key, value);
        }
        let builder = builder
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: fetch.retries,
                retry_timeout: timeout * (fetch.retries as u32 + 1),
            })
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), format!("{}s", fetch.timeout_s))
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                format!("{}s", fetch.timeout_s.min(10)),
            );
        let endpoint = builder.get_config_value(&AmazonS3ConfigKey::Endpoint).unwrap_or_else(|| "aws".into());
        let store = builder.build().map_err(|e| format!("cannot set up the S3 client: {}", reason(&e)))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-fetch")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the fetch threads: {e}"))?;
        Ok(Client { store: Arc::new(store), runtime, endpoint })
    }
}
