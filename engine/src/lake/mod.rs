//! The data lake: `s3://bucket/key` objects stored as plain files under `<workspace>/lake`,
//! read and written through `object_store` (atomic puts), so DuckDB, pandas or Spark can read
//! the same files and a real S3 store can later stand in. Only this module knows the layout.
//!
//! Deviations from S3, on purpose: object timestamps follow the engine clock (so notebooks
//! on the manual clock are deterministic); a bucket is a directory.

mod model;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

pub use model::{BucketCreated, BucketInfo, LakeInfo, Listing, ObjectInfo, S3Uri, validate_bucket_name, validate_key, validate_legacy_bucket_name};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::workspace::{Workspace, read_json, write_json};
use crate::{internal_err, service_err};

#[derive(Debug)]
pub struct Lake {
    workspace: PathBuf,
    root: PathBuf,
    buckets_file: PathBuf,
    store: Arc<LocalFileSystem>,
    clock: Arc<Clock>,
}

impl Lake {
    pub fn open(workspace: &Workspace, clock: Arc<Clock>) -> Result<Self> {
        let root = workspace.dir("lake")?;
        let store = LocalFileSystem::new_with_prefix(&root)
            .map_err(|e| internal_err!("cannot open the lake at {}: {e}", root.display()))?;
        Ok(Self {
            workspace: workspace.root().to_path_buf(),
            buckets_file: workspace.root().join("lake-buckets.json"),
            root,
            store: Arc::new(store),
            clock,
        })
    }

    /// The store behind the lake, rooted so that `bucket/key` is an object path.
    pub fn object_store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// A store rooted at one bucket, so `s3://bucket/key` URLs resolve to `key` (what SQL
    /// scans register for `s3://bucket`).
    pub fn bucket_store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        let root: Arc<dyn ObjectStore> = self.store.clone();
        Arc::new(object_store::prefix::PrefixStore::new(root, bucket))
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
        let dir = self.root.join(name);
        if dir.is_dir() {
            return Ok(BucketCreated::AlreadyOwnedByYou);
        }
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut buckets = self.bucket_records()?;
        buckets.insert(name.to_string(), self.clock.now());
        write_json(&self.buckets_file, &buckets)?;
        Ok(BucketCreated::Created)
    }

    /// ≙ DeleteBucket; with `force`, deletes the objects first (like `aws s3 rb --force`).
    /// Returns how many objects were deleted.
    pub async fn delete_bucket(&self, name: &str, force: bool) -> Result<u64> {
        let dir = self.bucket_dir(name)?;
        let listing = self.list(&S3Uri { bucket: name.to_string(), key: String::new() }, true).await?;
        if !listing.objects.is_empty() && !force {
            return Err(service_err!(BucketNotEmpty, "the bucket {name} holds {} objects", listing.objects.len())
                .with_hint("delete them first, or use --force"));
        }
        fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut buckets = self.bucket_records()?;
        buckets.remove(name);
        write_json(&self.buckets_file, &buckets)?;
        Ok(listing.objects.len() as u64)
    }

    /// ≙ ListBuckets.
    pub fn list_buckets(&self) -> Result<Vec<BucketInfo>> {
        let records = self.bucket_records()?;
        let mut buckets = Vec::new();
        for entry in fs::read_dir(&self.root).map_err(|e| Error::io(&self.root, e))? {
            let entry = entry.map_err(|e| Error::io(&self.root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !entry.path().is_dir() || validate_legacy_bucket_name(&name).is_err() {
                continue;
            }
            // A bucket made by hand (a folder copied in) has no record: use its mtime.
            let created = match records.get(&name) {
                Some(t) => *t,
                None => entry.metadata().and_then(|m| m.modified()).map(Into::into).unwrap_or_default(),
            };
            buckets.push(BucketInfo { name, created });
        }
        buckets.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(buckets)
    }

    /// ≙ ListObjectsV2 with a string prefix; without `recursive`, `/` is the delimiter and
    /// folders come back as common prefixes.
    pub async fn list(&self, uri: &S3Uri, recursive: bool) -> Result<Listing> {
        self.bucket_dir(&uri.bucket)?;
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

    /// ≙ PutObject: atomic, timestamped by the engine clock.
    pub async fn put(&self, uri: &S3Uri, data: Bytes) -> Result<ObjectInfo> {
        validate_key(&uri.key, false)?;
        self.bucket_dir(&uri.bucket)?;
        let path = store_path(&uri.bucket, &uri.key)?;
        let size = data.len() as u64;
        self.store.put(&path, PutPayload::from_bytes(data)).await?;
        let last_modified = self.stamp(uri)?;
        Ok(ObjectInfo { bucket: uri.bucket.clone(), key: uri.key.clone(), size, last_modified })
    }

    /// ≙ GetObject.
    pub async fn get(&self, uri: &S3Uri) -> Result<Bytes> {
        self.bucket_dir(&uri.bucket)?;
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
        self.bucket_dir(&uri.bucket)?;
        let path = store_path(&uri.bucket, &uri.key)?;
        match self.store.head(&path).await {
            Ok(meta) => self.object_info(&uri.bucket, &meta),
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
        self.prune_empty_dirs(uri);
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
        self.bucket_dir(&to.bucket)?;
        self.store.copy(&store_path(&from.bucket, &from.key)?, &store_path(&to.bucket, &to.key)?).await?;
        let last_modified = self.stamp(to)?;
        Ok(ObjectInfo { bucket: to.bucket.clone(), key: to.key.clone(), size: source.size, last_modified })
    }

    /// Moves an object within its bucket by a rename on disk (atomic), stamping it with the
    /// engine clock; false when the source is gone (moved already). A job's commit.
    pub fn rename(&self, from: &S3Uri, to: &S3Uri) -> Result<bool> {
        validate_key(&to.key, false)?;
        let bucket = self.bucket_dir(&from.bucket)?;
        let source = bucket.join(&from.key);
        if !source.is_file() {
            return Ok(false);
        }
        let target = self.bucket_dir(&to.bucket)?.join(&to.key);
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        fs::rename(&source, &target).map_err(|e| Error::io(&source, e))?;
        self.stamp(to)?;
        self.prune_empty_dirs(from);
        Ok(true)
    }

    /// The keys of the objects directly in folder `uri` (no sub-folders), read from disk
    /// without the object store: what a commit recovering at open needs.
    pub fn keys_in(&self, uri: &S3Uri) -> Vec<String> {
        let Ok(bucket) = self.bucket_dir(&uri.bucket) else { return Vec::new() };
        let Ok(entries) = fs::read_dir(bucket.join(&uri.key)) else { return Vec::new() };
        let mut keys: Vec<String> = entries.flatten().filter(|e| e.path().is_file()).map(|e| format!("{}{}", uri.key, e.file_name().to_string_lossy())).collect();
        keys.sort();
        keys
    }

    /// Deletes every object under `uri` whose key has the folder `marker` in it (the staged
    /// files of a job run that did not commit); returns how many.
    pub fn delete_marked(&self, uri: &S3Uri, marker: &str) -> Result<usize> {
        let Ok(bucket) = self.bucket_dir(&uri.bucket) else { return Ok(0) };
        let mut found = Vec::new();
        let mut stack = vec![bucket.join(&uri.key)];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    if path.ends_with(marker) {
                        found.push(path);
                    } else {
                        stack.push(path);
                    }
                }
            }
        }
        let mut deleted = 0;
        for dir in found {
            deleted += fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
            fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            if let Ok(key) = dir.strip_prefix(&bucket) {
                self.prune_empty_dirs(&S3Uri { bucket: uri.bucket.clone(), key: format!("{}/x", key.display()) });
            }
        }
        Ok(deleted)
    }

    /// Sizes for `%lake info`.
    pub fn info(&self) -> Result<LakeInfo> {
        fn walk(dir: &Path, objects: &mut u64, bytes: &mut u64) -> std::io::Result<()> {
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                if meta.is_dir() {
                    walk(&entry.path(), objects, bytes)?;
                } else {
                    *objects += 1;
                    *bytes += meta.len();
                }
            }
            Ok(())
        }
        let buckets = self.list_buckets()?;
        let (mut objects, mut bytes) = (0, 0);
        for bucket in &buckets {
            let dir = self.root.join(&bucket.name);
            walk(&dir, &mut objects, &mut bytes).map_err(|e| Error::io(&dir, e))?;
        }
        Ok(LakeInfo {
            workspace: self.workspace.clone(),
            lake_dir: self.root.clone(),
            buckets: buckets.len(),
            objects,
            bytes,
        })
    }

    fn bucket_dir(&self, bucket: &str) -> Result<PathBuf> {
        validate_legacy_bucket_name(bucket)?;
        let dir = self.root.join(bucket);
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(service_err!(NoSuchBucket, "the bucket {bucket} does not exist")
                .with_hint(format!("create it with `%lake mb s3://{bucket}`")))
        }
    }

    /// Sets the object's timestamp to the engine clock's now.
    fn stamp(&self, uri: &S3Uri) -> Result<chrono::DateTime<chrono::Utc>> {
        let now = self.clock.now();
        let file = self.root.join(&uri.bucket).join(&uri.key);
        fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(now.into()))
            .map_err(|e| Error::io(&file, e))?;
        Ok(now)
    }

    /// Removes folders left empty by a delete, up to (not including) the bucket.
    fn prune_empty_dirs(&self, uri: &S3Uri) {
        let bucket_dir = self.root.join(&uri.bucket);
        let mut dir = bucket_dir.join(&uri.key);
        while dir.pop() && dir != bucket_dir && dir.starts_with(&bucket_dir) {
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                // Gone already (the folder a caller just removed): its parents may be empty now.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(_) => break,
            }
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

    fn bucket_records(&self) -> Result<BTreeMap<String, chrono::DateTime<chrono::Utc>>> {
        Ok(read_json(&self.buckets_file)?.unwrap_or_default())
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
