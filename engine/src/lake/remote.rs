//! The lake on an S3-compatible store: lake bucket `b` is the folder `<prefix>/b/` of the
//! connected bucket, objects are objects. What the local lake gets from its file system it
//! gets here from S3 itself, with these differences (said in README, "Beyond one machine"):
//! - object times are the store's (S3 sets LastModified; the engine clock cannot);
//! - a bucket exists once it holds an object; one made by `%lake mb` and still empty is
//!   remembered by this workspace only;
//! - a rename (a job's commit) is a copy then a delete: not atomic, but every commit that
//!   uses it publishes a decision object first and finishes the renames idempotently, so a
//!   kill midway is finished (or undone) at the next open exactly as on disk.
//!
//! Every request runs on the lake's I/O runtime (see `connect::io_runtime`); the sync
//! operations here wait for it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::connect::{LakeSetting, SettingSource, block_on};
use super::disk::no_such_bucket;
use super::model::{BucketCreated, BucketInfo, S3Uri, validate_legacy_bucket_name};
use super::store_path;
use crate::error::Result;
use crate::workspace::{read_json, write_json};

/// Which buckets this workspace made, per connected lake (S3 has no empty folders).
pub const RECORDS_FILE: &str = "lake-buckets.s3.json";

type Records = BTreeMap<String, BTreeMap<String, DateTime<Utc>>>;

#[derive(Debug)]
pub(super) struct Remote {
    pub setting: LakeSetting,
    pub source: SettingSource,
    store: Arc<dyn ObjectStore>,
    records_file: PathBuf,
    /// Buckets seen to exist, so an operation checks its bucket once, not per request.
    known: Mutex<BTreeSet<String>>,
}

impl Remote {
    pub fn open(workspace: &Path, setting: LakeSetting, source: SettingSource) -> Result<Self> {
        let store = setting.store()?;
        Ok(Self { setting, source, store, records_file: workspace.join(RECORDS_FILE), known: Mutex::new(BTreeSet::new()) })
    }

    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// One listing of the lake's top level: whether the store answers, and lets us in.
    pub fn probe(&self) -> Result<()> {
        let store = self.store.clone();
        block_on(async move { Ok(store.list_with_delimiter(None).await?) }).map(|_| ())
    }

    pub fn make_bucket(&self, name: &str, now: DateTime<Utc>) -> Result<BucketCreated> {
        if self.check_bucket(name).is_ok() {
            return Ok(BucketCreated::AlreadyOwnedByYou);
        }
        self.update_records(|records| {
            records.insert(name.to_string(), now);
        })?;
        self.known().insert(name.to_string());
        Ok(BucketCreated::Created)
    }

    /// Forgets an emptied bucket.
    pub fn forget_bucket(&self, name: &str) -> Result<()> {
        self.known().remove(name);
        self.update_records(|records| {
            records.remove(name);
        })
    }

    /// The top-level folders of the lake and the buckets this workspace made; a folder met
    /// for the first time is recorded as created now.
    pub fn list_buckets(&self, now: DateTime<Utc>) -> Result<Vec<BucketInfo>> {
        let store = self.store.clone();
        let listed = block_on(async move { Ok(store.list_with_delimiter(None).await?) })?;
        let folders: Vec<String> = listed
            .common_prefixes
            .iter()
            .map(|p| p.as_ref().to_string())
            .filter(|name| validate_legacy_bucket_name(name).is_ok())
            .collect();
        let mut records = self.records()?;
        if folders.iter().any(|f| !records.contains_key(f)) {
            self.update_records(|r| {
                for folder in &folders {
                    r.entry(folder.clone()).or_insert(now);
                }
            })?;
            records = self.records()?;
        }
        self.known().extend(records.keys().cloned());
        Ok(records.into_iter().map(|(name, created)| BucketInfo { name, created }).collect())
    }

    pub fn check_bucket(&self, bucket: &str) -> Result<()> {
        validate_legacy_bucket_name(bucket)?;
        if self.known().contains(bucket) || self.records()?.contains_key(bucket) {
            return Ok(());
        }
        let store = self.store.clone();
        let prefix = store_path(bucket, "")?;
        let any = block_on(async move { Ok(store.list(Some(&prefix)).try_next().await?.is_some()) })?;
        if !any {
            return Err(no_such_bucket(bucket));
        }
        self.known().insert(bucket.to_string());
        Ok(())
    }

    /// A copy then a delete; false when the source is gone (moved already).
    pub fn rename(&self, from: &S3Uri, to: &S3Uri) -> Result<bool> {
        self.check_bucket(&from.bucket)?;
        self.check_bucket(&to.bucket)?;
        let (store, source, target) = (self.store.clone(), store_path(&from.bucket, &from.key)?, store_path(&to.bucket, &to.key)?);
        block_on(async move {
            match store.copy(&source, &target).await {
                Ok(()) => {}
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(e.into()),
            }
            match store.delete(&source).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(true),
                Err(e) => Err(e.into()),
            }
        })
    }

    pub fn keys_in(&self, uri: &S3Uri) -> Result<Vec<String>> {
        let (store, dir) = (self.store.clone(), store_path(&uri.bucket, &uri.key)?);
        let listed = block_on(async move { Ok(store.list_with_delimiter(Some(&dir)).await?) })?;
        let mut keys: Vec<String> = listed.objects.iter().filter_map(|m| m.location.filename().map(|name| format!("{}{name}", uri.key))).collect();
        keys.sort();
        Ok(keys)
    }

    /// Deletes the objects under `uri` inside a folder ending in `marker`'s segments.
    pub fn delete_marked(&self, uri: &S3Uri, marker: &str) -> Result<usize> {
        if self.check_bucket(&uri.bucket).is_err() {
            return Ok(0);
        }
        let (store, dir) = (self.store.clone(), store_path(&uri.bucket, &uri.key)?);
        let needle = format!("/{}/", marker.trim_matches('/'));
        block_on(async move {
            let metas: Vec<_> = store.list(Some(&dir)).try_collect().await?;
            let mut deleted = 0;
            for meta in metas.iter().filter(|m| format!("/{}", m.location.as_ref()).contains(&needle)) {
                match store.delete(&meta.location).await {
                    Ok(()) => deleted += 1,
                    Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(deleted)
        })
    }

    /// Objects and bytes in the named buckets (one listing each).
    pub fn totals(&self, buckets: &[BucketInfo]) -> Result<(u64, u64)> {
        let store = self.store.clone();
        let prefixes: Vec<StorePath> = buckets.iter().map(|b| store_path(&b.name, "")).collect::<Result<_>>()?;
        block_on(async move {
            let (mut objects, mut bytes) = (0, 0);
            for prefix in prefixes {
                let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
                objects += metas.len() as u64;
                bytes += metas.iter().map(|m| m.size).sum::<u64>();
            }
            Ok((objects, bytes))
        })
    }

    fn known(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.known.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn records(&self) -> Result<BTreeMap<String, DateTime<Utc>>> {
        let mut all: Records = read_json(&self.records_file)?.unwrap_or_default();
        Ok(all.remove(&self.setting.url).unwrap_or_default())
    }

    fn update_records(&self, change: impl FnOnce(&mut BTreeMap<String, DateTime<Utc>>)) -> Result<()> {
        let mut all: Records = read_json(&self.records_file)?.unwrap_or_default();
        change(all.entry(self.setting.url.clone()).or_default());
        write_json(&self.records_file, &all)
    }
}
