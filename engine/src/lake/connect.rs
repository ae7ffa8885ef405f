//! Where the lake lives: the workspace's own folder (the default), or a prefix of an
//! S3-compatible store chosen with `%lake connect` (kept in the workspace) or, for headless
//! runs, the `LAKEBOOK_LAKE` environment variable (which wins).
//!
//! Credentials come from the standard AWS chain — `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
//! / `AWS_SESSION_TOKEN`, then the shared credentials file's profile (`AWS_PROFILE`, else
//! `default`), then web identity, container and instance credentials — and are never printed
//! nor written to the workspace: the setting holds only the URL, endpoint and region.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use object_store::aws::AmazonS3Builder;
use object_store::client::SpawnedReqwestConnector;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};
use serde::{Deserialize, Serialize};

use super::model::{validate_key, validate_legacy_bucket_name};
use crate::error::Result;
use crate::workspace::{read_json, write_json};
use crate::{internal_err, service_err};

/// The environment variable that puts the lake on S3 for headless runs: `s3://bucket[/prefix]`.
pub const LAKE_ENV: &str = "LAKEBOOK_LAKE";
/// The workspace file holding `%lake connect`'s setting.
pub const SETTING_FILE: &str = "lake-connection.json";

/// A lake on an S3-compatible store: every lake bucket `b` is the folder `<prefix>/b/` of the
/// store's bucket, so notebooks keep their own bucket names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LakeSetting {
    /// `s3://bucket[/prefix]`
    pub url: String,
    /// An S3-compatible endpoint (MinIO, moto, Ceph …); None: AWS (or `AWS_ENDPOINT_URL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Where the setting in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingSource {
    Workspace,
    Environment,
}

impl LakeSetting {
    pub fn new(url: &str, endpoint: Option<String>, region: Option<String>) -> Result<Self> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            service_err!(InvalidArgument, "{url:?} is not an s3:// URL").with_hint("connect the lake with `%lake connect s3://bucket[/prefix]`")
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        validate_legacy_bucket_name(bucket)?;
        validate_key(prefix, true)?;
        if let Some(endpoint) = &endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err(service_err!(InvalidArgument, "the endpoint {endpoint:?} is not an http:// or https:// URL")
                .with_hint("for example --endpoint http://127.0.0.1:9000"));
        }
        let prefix = prefix.trim_end_matches('/');
        let url = if prefix.is_empty() { format!("s3://{bucket}") } else { format!("s3://{bucket}/{prefix}") };
        Ok(Self { url, endpoint, region })
    }

    /// The store's bucket.
    pub fn bucket(&self) -> &str {
        let rest = &self.url["s3://".len()..];
        rest.split_once('/').map_or(rest, |(b, _)| b)
    }

    /// The prefix the lake lives under ("" for the whole bucket).
    pub fn prefix(&self) -> &str {
        self.url["s3://".len()..].split_once('/').map_or("", |(_, p)| p)
    }

    /// The real S3 URL of a lake object, as other tools (boto3, the AWS CLI) name it.
    pub fn real_url(&self, bucket: &str, key: &str) -> String {
        let mut url = self.url.clone();
        url.push('/');
        url.push_str(bucket);
        if !key.is_empty() {
            url.push('/');
            url.push_str(key);
        }
        url
    }

    /// How the user sees it: the URL and, when given, the endpoint and region.
    pub fn describe(&self) -> String {
        let mut text = self.url.clone();
        if let Some(endpoint) = &self.endpoint {
            text.push_str(&format!(" at {endpoint}"));
        }
        if let Some(region) = &self.region {
            text.push_str(&format!(" ({region})"));
        }
        text
    }

    /// The object store rooted at the lake's prefix, so `bucket/key` is an object path.
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(self.bucket())
            .with_http_connector(SpawnedReqwestConnector::new(io_runtime().handle().clone()))
            // Network errors and throttling are retried with backoff; a store that stays
            // unreachable fails the cell within about half a minute, not S3's default 3.
            .with_retry(RetryConfig {
                backoff: BackoffConfig { init_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(4), base: 2.0 },
                max_retries: 5,
                retry_timeout: Duration::from_secs(30),
            })
            .with_client_options(ClientOptions::new().with_connect_timeout(Duration::from_secs(5)));
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        } else if std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT_URL_S3")).is_ok_and(|e| e.starts_with("http://")) {
            builder = builder.with_allow_http(true);
        }
        let profile = Profile::load();
        match &self.region {
            Some(region) => builder = builder.with_region(region),
            None if env_missing(&["AWS_REGION", "AWS_DEFAULT_REGION"]) => {
                if let Some(region) = &profile.region {
                    builder = builder.with_region(region);
                }
            }
            None => {}
        }
        if env_missing(&["AWS_ACCESS_KEY_ID"])
            && let Some((key, secret, token)) = profile.credentials
        {
            builder = builder.with_access_key_id(key).with_secret_access_key(secret);
            if let Some(token) = token {
                builder = builder.with_token(token);
            }
        }
        let s3: Arc<dyn ObjectStore> = Arc::new(builder.build().map_err(|e| {
            service_err!(InvalidArgument, "cannot use {} as the lake: {e}", self.url)
        })?);
        Ok(match self.prefix() {
            "" => s3,
            prefix => Arc::new(object_store::prefix::PrefixStore::new(s3, prefix)),
        })
    }
}

fn env_missing(names: &[&str]) -> bool {
    names.iter().all(|n| std::env::var_os(n).is_none_or(|v| v.is_empty()))
}

/// The setting in use for a workspace: `LAKEBOOK_LAKE` first, then `%lake connect`'s.
pub fn configured(workspace: &Path) -> Result<Option<(LakeSetting, SettingSource)>> {
    if let Ok(url) = std::env::var(LAKE_ENV)
        && !url.is_empty()
    {
        let setting = LakeSetting::new(&url, None, None).map_err(|e| e.with_hint(format!("set by the environment variable {LAKE_ENV}")))?;
        return Ok(Some((setting, SettingSource::Environment)));
    }
    Ok(read_json::<LakeSetting>(&workspace.join(SETTING_FILE))?.map(|s| (s, SettingSource::Workspace)))
}

/// Keeps (or with None, forgets) `%lake connect`'s setting in the workspace.
pub fn save(workspace: &Path, setting: Option<&LakeSetting>) -> Result<()> {
    let file = workspace.join(SETTING_FILE);
    match setting {
        Some(setting) => write_json(&file, setting),
        None => match std::fs::remove_file(&file) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(crate::error::Error::io(&file, e)),
        },
    }
}

/// The runtime every request to a remote lake runs on, whichever runtime (a kernel's, a
/// test's, none) asked: connections outlive the caller's runtime, and sync callers can wait.
pub(super) fn io_runtime() -> &'static tokio::runtime::Runtime {
    static IO: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    IO.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lake-io")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the lake's I/O runtime: {e}"))
    })
}

/// Runs `work` on the I/O runtime and waits for it (for the lake's sync operations).
pub(super) fn block_on<T: Send + 'static>(work: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
    let task = io_runtime().spawn(work);
    futures::executor::block_on(task).map_err(|e| internal_err!("a lake request ended abnormally: {e}"))?
}

/// The shared AWS config files' profile: credentials and region.
#[derive(Default)]
struct Profile {
    credentials: Option<(String, String, Option<String>)>,
    region: Option<String>,
}

impl Profile {
    fn load() -> Self {
        let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else { return Self::default() };
        let name = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty()).unwrap_or_else(|| "default".into());
        let file = |var: &str, default: &str| std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| home.join(".aws").join(default));
        Self::read(&file("AWS_SHARED_CREDENTIALS_FILE", "credentials"), &file("AWS_CONFIG_FILE", "config"), &name)
    }

    fn read(credentials: &Path, config: &Path, name: &str) -> Self {
        let mut profile = Self::default();
        if let Ok(ini) = ini::Ini::load_from_file(credentials)
            && let Some(section) = ini.section(Some(name))
            && let (Some(key), Some(secret)) = (section.get("aws_access_key_id"), section.get("aws_secret_access_key"))
        {
            profile.credentials = Some((key.to_string(), secret.to_string(), section.get("aws_session_token").map(str::to_string)));
        }
        // In the config file, profiles other than default are `[profile NAME]`.
        let config_section = if name == "default" { name.to_string() } else { format!("profile {name}") };
        if let Ok(ini) = ini::Ini::load_from_file(config)
            && let Some(section) = ini.section(Some(config_section.as_str()))
        {
            profile.region = section.get("region").map(str::to_string);
        }
        profile
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_map_lake_buckets_under_the_prefix() {
        let s = LakeSetting::new("s3://team-data/lakebook/", Some("http://127.0.0.1:9000".into()), None).unwrap();
        assert_eq!((s.bucket(), s.prefix(), s.url.as_str()), ("team-data", "lakebook", "s3://team-data/lakebook"));
        assert_eq!(s.real_url("raw", "a/b.json"), "s3://team-data/lakebook/raw/a/b.json");
        let whole = LakeSetting::new("s3://team-data", None, Some("eu-west-1".into())).unwrap();
        assert_eq!((whole.prefix(), whole.real_url("raw", "")), ("", "s3://team-data/raw".to_string()));
        assert_eq!(whole.describe(), "s3://team-data (eu-west-1)");
        for bad in ["/tmp/lake", "s3://x", "s3://team/../up"] {
            assert!(LakeSetting::new(bad, None, None).is_err(), "{bad}");
        }
        assert_eq!(LakeSetting::new("s3://team", Some("127.0.0.1:9000".into()), None).unwrap_err().code(), "InvalidArgument");
    }

    #[test]
    fn profiles_come_from_the_shared_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("credentials"), "[default]\naws_access_key_id = A\naws_secret_access_key = B\n[dev]\naws_access_key_id = C\naws_secret_access_key = D\naws_session_token = T\n").unwrap();
        std::fs::write(dir.path().join("config"), "[profile dev]\nregion = eu-north-1\n").unwrap();
        let (creds, config) = (dir.path().join("credentials"), dir.path().join("config"));
        let dev = Profile::read(&creds, &config, "dev");
        assert_eq!(dev.credentials, Some(("C".into(), "D".into(), Some("T".into()))));
        assert_eq!(dev.region.as_deref(), Some("eu-north-1"));
        let default = Profile::read(&creds, &config, "default");
        assert_eq!((default.credentials, default.region), (Some(("A".into(), "B".into(), None)), None));
        assert!(Profile::read(&creds, &config, "missing").credentials.is_none());
        assert!(Profile::read(&dir.path().join("none"), &config, "dev").credentials.is_none());
    }
}
