//! The local lake: buckets are folders under `<workspace>/lake`, objects plain files, so
//! DuckDB, pandas or Spark read them directly. Folders and file times are the file system's,
//! so what S3 keeps as metadata (a bucket's existence, an object's time) lives there too.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::model::{BucketCreated, BucketInfo, S3Uri, validate_legacy_bucket_name};
use crate::error::{Error, Result};
use crate::service_err;
use crate::workspace::{read_json, write_json};

#[derive(Debug)]
pub(super) struct Disk {
    pub root: PathBuf,
    buckets_file: PathBuf,
}

impl Disk {
    pub fn new(root: PathBuf, buckets_file: PathBuf) -> Self {
        Self { root, buckets_file }
    }

    pub fn make_bucket(&self, name: &str, now: DateTime<Utc>) -> Result<BucketCreated> {
        let dir = self.root.join(name);
        if dir.is_dir() {
            return Ok(BucketCreated::AlreadyOwnedByYou);
        }
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut buckets = self.bucket_records()?;
        buckets.insert(name.to_string(), now);
        write_json(&self.buckets_file, &buckets)
            .map(|()| BucketCreated::Created)
    }

    /// Removes an emptied bucket.
    pub fn forget_bucket(&self, name: &str) -> Result<()> {
        let dir = self.bucket_dir(name)?;
        fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut buckets = self.bucket_records()?;
        buckets.remove(name);
        write_json(&self.buckets_file, &buckets)
    }

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

    pub fn bucket_dir(&self, bucket: &str) -> Result<PathBuf> {
        validate_legacy_bucket_name(bucket)?;
        let dir = self.root.join(bucket);
        if dir.is_dir() { Ok(dir) } else { Err(no_such_bucket(bucket)) }
    }

    /// Sets the object's time to the engine clock's `now`.
    pub fn stamp(&self, uri: &S3Uri, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        let file = self.root.join(&uri.bucket).join(&uri.key);
        fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|f| f.set_modified(now.into()))
            .map_err(|e| Error::io(&file, e))?;
        Ok(now)
    }

    /// Moves a file by a rename (atomic); false when the source is gone.
    pub fn rename(&self, from: &S3Uri, to: &S3Uri, now: DateTime<Utc>) -> Result<bool> {
        let source = self.bucket_dir(&from.bucket)?.join(&from.key);
        if !source.is_file() {
            return Ok(false);
        }
        let target = self.bucket_dir(&to.bucket)?.join(&to.key);
        if let Some(dir) = target.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        fs::rename(&source, &target).map_err(|e| Error::io(&source, e))?;
        self.stamp(to, now)?;
        self.prune_empty_dirs(from);
        Ok(true)
    }

    pub fn keys_in(&self, uri: &S3Uri) -> Vec<String> {
        let Ok(bucket) = self.bucket_dir(&uri.bucket) else { return Vec::new() };
        let Ok(entries) = fs::read_dir(bucket.join(&uri.key)) else { return Vec::new() };
        let mut keys: Vec<String> = entries.flatten().filter(|e| e.path().is_file()).map(|e| format!("{}{}", uri.key, e.file_name().to_string_lossy())).collect();
        keys.sort();
        keys
    }

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

    /// Objects and bytes in the named buckets.
    pub fn totals(&self, buckets: &[BucketInfo]) -> Result<(u64, u64)> {
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
        let (mut objects, mut bytes) = (0, 0);
        for bucket in buckets {
            let dir = self.root.join(&bucket.name);
            walk(&dir, &mut objects, &mut bytes).map_err(|e| Error::io(&dir, e))?;
        }
        Ok((objects, bytes))
    }

    /// Removes folders left empty by a delete, up to (not including) the bucket.
    pub fn prune_empty_dirs(&self, uri: &S3Uri) {
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

    fn bucket_records(&self) -> Result<BTreeMap<String, DateTime<Utc>>> {
        Ok(read_json(&self.buckets_file)?.unwrap_or_default())
    }
}

pub(super) fn no_such_bucket(bucket: &str) -> Error {
    service_err!(NoSuchBucket, "the bucket {bucket} does not exist").with_hint(format!("create it with `%lake mb s3://{bucket}`"))
}
