//! The Redshift destination: a manifest per staged batch, the COPYs that are due, retries
//! for the retry duration, and skipped batches' manifests under the error prefix.

use super::*;

impl Firehose {
    /// Writes the manifest of a staged batch's data objects (≙ the manifests Firehose writes
    /// in the intermediate bucket) and returns the COPY to queue, if the batch has data.
    pub(super) async fn write_manifest(&self, stream: &DeliveryStream, objects: &[DeliveredObject], oldest_ms: i64, now: DateTime<Utc>) -> Result<Option<PendingCopy>> {
        let data: Vec<&DeliveredObject> = objects.iter().filter(|o| o.error_output_type.is_none()).collect();
        let Some(first) = data.first() else { return Ok(None) };
        let oldest = DateTime::from_timestamp_millis(oldest_ms).unwrap_or(now);
        let file = first.uri.rsplit('/').next().unwrap_or_default();
        let key = manifest_key(keys::static_part(&stream.prefix), oldest, file);
        let uri = S3Uri { bucket: stream.bucket.clone(), key };
        self.lake.put(&uri, manifest_body(data.iter().map(|o| o.uri.as_str()))).await?;
        Ok(Some(PendingCopy {
            manifest: uri.to_string(),
            records: data.iter().map(|o| o.records).sum(),
            oldest,
            first_attempt: now,
            next_attempt: now,
            attempts: 0,
            last_error: None,
        }))
    }

    /// Runs the pending COPYs of `name` that are due, oldest first, stopping at one that
    /// failed and is still within its retry duration (later batches wait behind it).
    pub(super) async fn copy_due(&self, name: &str, now: DateTime<Utc>) -> Result<Vec<CopyEvent>> {
        let stream = get(&self.lock(), name)?.clone();
        let Some(dest) = stream.redshift.clone() else { return Ok(Vec::new()) };
        let mut events = Vec::new();
        for mut pending in stream.pending_copies.clone() {
            if pending.next_attempt > now {
                break;
            }
            pending.attempts += 1;
            let sql = format!("COPY {} FROM '{}' MANIFEST {}", dest.table, pending.manifest, dest.copy_options);
            // A COPY that committed before a killed kernel could note it is not run again:
            // the cluster's stl_load_commits says whether its files are loaded.
            let already = self.redshift.manifest_loaded(&dest.cluster, &dest.table, &pending.manifest).await.ok().flatten();
            let run = match already {
                Some(rows) => Ok(rows),
                None => self.redshift.run(&dest.cluster, &sql).await.map(|outcomes| outcomes.iter().filter_map(|o| o.rows_loaded).sum()),
            };
            let (error, result) = match run {
                Ok(rows) => (None, CopyResult::Loaded { rows }),
                Err(e) => {
                    pending.last_error = Some(e.to_string());
                    let retry_until = pending.first_attempt + chrono::Duration::seconds(dest.retry_duration_s as i64);
                    let result = if now >= retry_until {
                        CopyResult::Skipped { error_manifest: self.skip(&stream, &pending).await? }
                    } else {
                        pending.next_attempt = (now + chrono::Duration::seconds(COPY_RETRY_INTERVAL_S)).min(retry_until);
                        CopyResult::Retrying { next_attempt: pending.next_attempt }
                    };
                    (pending.last_error.clone(), result)
                }
            };
            let retrying = matches!(result, CopyResult::Retrying { .. });
            let mut state = self.lock();
            let s = state.streams.get_mut(name).ok_or_else(|| crate::internal_err!("{name} vanished during a COPY"))?;
            match &result {
                CopyResult::Retrying { .. } => s.pending_copies[0] = pending.clone(),
                CopyResult::Loaded { rows } => {
                    s.metrics.loaded_records += rows;
                    s.pending_copies.remove(0);
                }
                CopyResult::Skipped { .. } => {
                    s.metrics.skipped_batches += 1;
                    s.pending_copies.remove(0);
                }
            }
            self.save(&mut state)?;
            drop(state);
            events.push(CopyEvent { delivery_stream: name.to_string(), target: dest.target(), manifest: pending.manifest, attempt: pending.attempts, error, result });
            if retrying {
                break;
            }
        }
        Ok(events)
    }

    /// Gives up on a batch: its manifest goes under the error prefix (`errors/` by default)
    /// so it can be loaded by hand later with COPY … MANIFEST.
    pub(super) async fn skip(&self, stream: &DeliveryStream, pending: &PendingCopy) -> Result<String> {
        let manifest = S3Uri::parse(&pending.manifest)?;
        let body = self.lake.get(&manifest).await?;
        let base = stream.error_prefix.as_deref().map_or("errors/", keys::static_part);
        let file = manifest.key.rsplit('/').next().unwrap_or_default();
        let uri = S3Uri { bucket: stream.bucket.clone(), key: manifest_key(base, pending.oldest, file) };
        self.lake.put(&uri, body).await?;
        Ok(uri.to_string())
    }
}
