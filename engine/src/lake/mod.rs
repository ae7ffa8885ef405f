//! The data lake: `s3://bucket/key` objects, read and written through `object_store`, either
//! as plain files under `<workspace>/lake` (`disk.rs`: DuckDB, pandas or Spark read the same
//! files) or under a prefix of a real S3-compatible store (`remote.rs`, chosen in
//! `connect.rs`). Only this module knows either layout; services see buckets and keys.
//!
//! Deviations from S3, on purpose, on disk: object timestamps follow the engine clock (so
//! notebooks on the manual clock are deterministic); a bucket is a directory.

mod connect;
mod disk;
mod model;
mod remote;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

pub use connect::{LAKE_ENV, LakeSetting, SETTING_FILE, SettingSource};
pub use remote::RECORDS_FILE;
pub use model::{BucketCreated, BucketInfo, LakeInfo, Listing, ObjectInfo, S3Uri, validate_bucket_name, validate_key, validate_legacy_bucket_name};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::workspace::Workspace;
use crate::{internal_err, service_err};
use disk::Disk;
use remote::Remote;

/// Where the objects are.
#[derive(Debug)]
enum Backend {
    Disk(Disk),
    Remote(Remote),
}

#[derive(Debug)]
pub struct Lake {
    workspace: PathBuf,
    backend: Backend,
    store: Arc<dyn ObjectStore>,
    clock: Arc<Clock>,
}

impl Lake {
    /// Opens the workspace's lake: on S3 when `LAKEBOOK_LAKE` or `%lake connect` says so,
    /// else in the workspace's `lake` folder.
    pub fn open(workspace: &Workspace, clock: Arc<Clock>) -> Result<Self> {
        if let Some((setting, source)) = connect::configured(workspace.root())? {
            let remote = Remote::open(workspace.root(), setting, source)?;
            return Ok(Self { workspace: workspace.root().to_path_buf(), store: remote.store(), backend: Backend::Remote(remote), clock });
        }
        let root = workspace.dir("lake")?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| internal_err!("cannot open the lake at {}: {e}", root.display()))?;
        Ok(Self {
            workspace: workspace.root().to_path_buf(),
            backend: Backend::Disk(Disk::new(root, workspace.root().join("lake-buckets.json"))),
            store: Arc::new(store),
            clock,
        })
    }

    /// Checks that a lake on S3 answers and lets us in (one listing), then keeps the setting
    /// in the workspace (None: back to the local lake). The services must be reopened to use
    /// it (`Lakebook::connect_lake`).
    pub fn connect(workspace: &Workspace, setting: Option<&LakeSetting>) -> Result<()> {
        if std::env::var(LAKE_ENV).is_ok_and(|v| !v.is_empty()) {
            return Err(service_err!(InvalidArgument, "the environment variable {LAKE_ENV} decides where this kernel's lake is")
                .with_hint(format!("unset {LAKE_ENV} in the kernel's environment to choose with %lake connect")));
        }
        if let Some(setting) = setting {
            Remote::open(workspace.root(), setting.clone(), SettingSource::Workspace)?
                .probe()
                .map_err(|e| e.with_hint(format!("the lake stays where it was; check the URL, endpoint and AWS credentials for {}", setting.describe())))?;
        }
        connect::save(workspace.root(), setting)
    }

    /// The S3 lake in use, and where its setting came from (None: the local lake).
    pub fn remote(&self) -> Option<(&LakeSetting, SettingSource)> {
        match &self.backend {
            Backend::Remote(remote) => Some((&remote.setting, remote.source)),
            Backend::Disk(_) => None,
        }
    }

    /// Where another engine (a Ballista cluster) reads an object or folder: its S3 URL for a
    /// lake on S3, a `file://` URL for the local lake (engines on this machine).
    pub fn url_for(&self, uri: &S3Uri) -> String {
        match &self.backend {
            Backend::Disk(disk) => {
                let root = std::path::absolute(&disk.root).unwrap_or_else(|_| disk.root.clone());
                format!("file://{}/{}/{}", root.display(), uri.bucket, uri.key)
            }
            Backend::Remote(remote) => remote.setting.real_url(&uri.bucket, &uri.key),
        }
    }

    /// The store behind the lake, rooted so that `bucket/key` is an object path.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// A store rooted at one bucket, so `s3://bucket/key` URLs resolve to `key` (what SQL
    /// scans register for `s3://bucket`).
    pub fn bucket_store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        Arc::new(object_store::prefix::PrefixStore::new(self.store.clone(), bucket))
    }

    /// ≙ CreateBucket. Creating a bucket you already own succeeds (as in us-east-1).
    pub fn create_bucket(&self, name: &str) -> Result<BucketCreated> {
        validate_bucket_name(name)?;
        self.make_bucket(name)
    }

    /// CreateBucket as us-east-1 took it before March 2018: upper case and `_` allowed (the
    /// name the AWS guides' examples still use, like `my_athena_results`).
    pub fn create_legacy_bucket(&self, name: &str) -> Result<BucketCreated> {
        validate_legacy_bucket_name(name)?;
        self.make_bucket(name)
    }

    fn make_bucket(&self, name: &str) -> Result<BucketCreated> {
        match &self.backend {
            Backend::Disk(disk) => disk.make_bucket(name, self.clock.now()),
            Backend::Remote(remote) => remote.make_bucket(name, self.clock.now()),
        }
    }

    /// ≙ DeleteBucket; with `force`, deletes the objects first (like `aws s3 rb --force`).
    /// Returns how many objects were deleted.
    pub async fn delete_bucket(&self, name: &str, force: bool) -> Result<u64> {
        self.check_bucket(name)?;
        let listing = self.list(&S3Uri { bucket: name.to_string(), key: String::new() }, true).await?;
        if !listing.objects.is_empty() && !force {
            return Err(service_err!(BucketNotEmpty, "the bucket {name} holds {} objects", listing.objects.len())
                .with_hint("delete them first, or use --force"));
        }
        match &self.backend {
            Backend::Disk(disk) => disk.forget_bucket(name)?,
            Backend::Remote(remote) => {
                for object in &listing.objects {
                    self.store.delete(&store_path(name, &object.key)?).await?;
                }
                remote.forget_bucket(name)?;
            }
        }
        Ok(listing.objects.len() as u64)
    }

    /// ≙ ListBuckets.
    pub fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        match &self.backend {
            Backend::Disk(disk) => disk.list_buckets(),
            Backend::Remote(remote) => remote.list_buckets(self.clock.now()),
        }
    }

    /// ≙ ListObjectsV2 with a string prefix; without `recursive`, `/` is the delimiter and
    /// folders come back as common prefixes.
    pub async fn list(&self, uri: &S3Uri, recursive: bool) -> Result<Listing> {
        self.check_bucket(&uri.bucket)?;
        // object_store lists by directory; S3 prefixes are plain string prefixes, so list the
        // directory part and filter on the rest.
        let dir = match uri.key.rfind('/') {
            Some(i) => &uri.key[..i],
            None => "",
        };
        let dir_path = store_path(&uri.bucket, dir)?;
        let mut listing = Listing::default();
        if recursive {
            let metas: Vec<_> = match self.store.list(Some(&dir_path)).try_collect().await {
                Ok(metas) => metas,
                Err(object_store::Error::NotFound { .. }) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            for meta in metas {
                let info = self.object_info(&uri.bucket, &meta)?;
                if info.key.starts_with(&uri.key) {
                    listing.objects.push(info);
                }
            }
        } else {
            let result = match self.store.list_with_delimiter(Some(&dir_path)).await {
                Ok(result) => result,
                Err(object_store::Error::NotFound { .. }) => object_store::ListResult { common_prefixes: Vec::new(), objects: Vec::new() },
                Err(e) => return Err(e.into()),
            };
            for meta in &result.objects {
                let info = self.object_info(&uri.bucket, meta)?;
                if info.key.starts_with(&uri.key) {
                    listing.objects.push(info);
                }
            }
            for prefix in &result.common_prefixes {
                let key = format!("{}/", key_of(&uri.bucket, prefix)?);
                if key.starts_with(&uri.key) {
                    listing.prefixes.push(key);
                }
            }
        }
        listing.objects.sort_by(|a, b| a.key.cmp(&b.key));
        listing.prefixes.sort();
        Ok(listing)
    }

    /// ≙ PutObject: atomic (a rename on disk; a single PUT on S3), timestamped by the engine
    /// clock on disk and by the store on S3.
    pub async fn put(&self, uri: &S3Uri, data: Bytes) -> Result<ObjectInfo> {
        validate_key(&uri.key, false)?;
        self.check_bucket(&uri.bucket)?;
        let path = store_path(&uri.bucket, &uri.key)?;
        let size = data.len() as u64;
        self.store.put(&path, PutPayload::from_bytes(data)).await?;
        let last_modified = self.stamp(uri).await?;
        Ok(ObjectInfo { bucket: uri.bucket.clone(), key: uri.key.clone(), size, last_modified })
    }

    /// ≙ GetObject.
    pub async fn get(&self, uri: &S3Uri) -> Result<Bytes> {
        self.check_bucket(&uri.bucket)?;
        let path = store_path(&uri.bucket, &uri.key)?;
        match self.store.get(&path).await {
            Ok(result) => Ok(result.bytes().await?),
            Err(object_store::Error::NotFound { .. }) => Err(no_such_key(uri)),
            Err(e) => Err(e.into()),
        }
    }

    /// ≙ GetObject with a byte range.
    pub async fn get_range(&self, uri: &S3Uri, range: std::ops::Range<u64>) -> Result<Bytes> {
        let path = store_path(&uri.bucket, &uri.key)?;
        match self.store.get_range(&path, range).await {
            Ok(bytes) => Ok(bytes),
            Err(object_store::Error::NotFound { .. }) => Err(no_such_key(uri)),
            Err(e) => Err(e.into()),
        }
    }

    /// ≙ HeadObject.
    pub async fn head(&self, uri: &S3Uri) -> Result<ObjectInfo> {
        self.check_bucket(&uri.bucket)?;
        let path = store_path(&uri.bucket, &uri.key)?;
        match self.store.head(&path).await {
            // Named from the request: a `PrefixStore` (the lake on S3 under a prefix) hands
            // back the store's full location from a HEAD, not the prefixed one.
            Ok(meta) => Ok(ObjectInfo { bucket: uri.bucket.clone(), key: uri.key.clone(), size: meta.size, last_modified: meta.last_modified }),
            Err(object_store::Error::NotFound { .. }) => Err(no_such_key(uri)),
            Err(e) => Err(e.into()),
        }
    }

    /// ≙ DeleteObject. Returns whether there was an object (S3 succeeds either way).
    pub async fn delete(&self, uri: &S3Uri) -> Result<bool> {
        match self.head(uri).await {
            Ok(_) => {}
            Err(e) if e.code() == "NoSuchKey" => return Ok(false),
            Err(e) => return Err(e),
        }
        self.store.delete(&store_path(&uri.bucket, &uri.key)?).await?;
        if let Backend::Disk(disk) = &self.backend {
            disk.prune_empty_dirs(uri);
        }
        Ok(true)
    }

    /// Deletes every object under a prefix; returns the keys deleted.
    pub async fn delete_prefix(&self, uri: &S3Uri) -> Result<Vec<String>> {
        let listing = self.list(uri, true).await?;
        let mut deleted = Vec::new();
        for object in listing.objects {
            let target = S3Uri { bucket: object.bucket, key: object.key };
            if self.delete(&target).await? {
                deleted.push(target.key);
            }
        }
        Ok(deleted)
    }

    /// ≙ CopyObject.
    pub async fn copy(&self, from: &S3Uri, to: &S3Uri) -> Result<ObjectInfo> {
        validate_key(&to.key, false)?;
        let source = self.head(from).await?;
        self.check_bucket(&to.bucket)?;
        self.store.copy(&store_path(&from.bucket, &from.key)?, &store_path(&to.bucket, &to.key)?).await?;
        let last_modified = self.stamp(to).await?;
        Ok(ObjectInfo { bucket: to.bucket.clone(), key: to.key.clone(), size: source.size, last_modified })
    }

    /// Moves an object (a job's commit): a rename on disk (atomic), a copy and a delete on
    /// S3; false when the source is gone (moved already), so a commit can be finished twice.
    pub fn rename(&self, from: &S3Uri, to: &S3Uri) -> Result<bool> {
        validate_key(&to.key, false)?;
        match &self.backend {
            Backend::Disk(disk) => disk.rename(from, to, self.clock.now()),
            Backend::Remote(remote) => remote.rename(from, to),
        }
    }

    /// The keys of the objects directly in folder `uri` (no sub-folders): what a commit
    /// recovering at open needs (it runs outside any async runtime).
    pub fn keys_in(&self, uri: &S3Uri) -> Result<Vec<String>> {
        match &self.backend {
            Backend::Disk(disk) => Ok(disk.keys_in(uri)),
            Backend::Remote(remote) => remote.keys_in(uri),
        }
    }

    /// Deletes every object under `uri` whose key has the folder `marker` in it (the staged
    /// files of a job run that did not commit); returns how many.
    pub fn delete_marked(&self, uri: &S3Uri, marker: &str) -> Result<usize> {
        match &self.backend {
            Backend::Disk(disk) => disk.delete_marked(uri, marker),
            Backend::Remote(remote) => remote.delete_marked(uri, marker),
        }
    }

    /// Sizes for `%lake info`.
    pub fn info(&self) -> Result<LakeInfo> {
        let buckets = self.list_buckets()?;
        let ((objects, bytes), location) = match &self.backend {
            Backend::Disk(disk) => (disk.totals(&buckets)?, disk.root.display().to_string()),
            Backend::Remote(remote) => (remote.totals(&buckets)?, remote.setting.describe()),
        };
        Ok(LakeInfo { workspace: self.workspace.clone(), location, remote: self.remote().map(|(_, source)| source), buckets: buckets.len(), objects, bytes })
    }

    fn check_bucket(&self, bucket: &str) -> Result<()> {
        match &self.backend {
            Backend::Disk(disk) => disk.bucket_dir(bucket).map(|_| ()),
            Backend::Remote(remote) => remote.check_bucket(bucket),
        }
    }

    /// The object's time: the engine clock's now on disk, the store's on S3.
    async fn stamp(&self, uri: &S3Uri) -> Result<chrono::DateTime<chrono::Utc>> {
        match &self.backend {
            Backend::Disk(disk) => disk.stamp(uri, self.clock.now()),
            Backend::Remote(_) => Ok(self.store.head(&store_path(&uri.bucket, &uri.key)?).await?.last_modified),
        }
    }

    fn object_info(&self, bucket: &str, meta: &object_store::ObjectMeta) -> Result<ObjectInfo> {
        Ok(ObjectInfo {
            bucket: bucket.to_string(),
            key: key_of(bucket, &meta.location)?,
            size: meta.size,
            last_modified: meta.last_modified,
        })
    }
}

fn store_path(bucket: &str, key: &str) -> Result<StorePath> {
    let key = key.trim_end_matches('/');
    let raw = if key.is_empty() { bucket.to_string() } else { format!("{bucket}/{key}") };
    StorePath::parse(&raw).map_err(|e| service_err!(InvalidObjectName, "{raw:?} is not a valid object path: {e}"))
}

fn key_of(bucket: &str, path: &StorePath) -> Result<String> {
    let raw = path.as_ref();
    raw.strip_prefix(bucket)
        .and_then(|rest| rest.strip_prefix('/'))
        .map(str::to_string)
        .ok_or_else(|| internal_err!("listed {raw} outside bucket {bucket}"))
}

fn no_such_key(uri: &S3Uri) -> Error {
    service_err!(NoSuchKey, "the object {uri} does not exist")
        .with_hint(format!("list what is there with `%lake ls s3://{}/`", uri.bucket))
}
