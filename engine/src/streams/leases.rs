//! KCL-style checkpointed consumption. An application keeps a lease table with one lease per
//! shard holding its checkpoint (`TRIM_HORIZON`, the last processed sequence number, or
//! `SHARD_END`), persisted at `<workspace>/streams/<stream>/leases/<app>.json`. A shard is
//! read only after every ancestor (the closed shards it came from) reached `SHARD_END`, so
//! records of one partition key come out in order across splits and merges.
//!
//! Reading and checkpointing are separate ([`Streams::lease_read`] then
//! [`Streams::checkpoint`]) so a processor such as a delivery stream checkpoints only what it
//! has durably handled; [`Streams::consume`] does both at once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meter::Reader;
use super::{Record, Streams, parse_sequence, read_shard, record_of, sequence_string, stream, validate_stream_name};
use crate::error::Result;
use crate::service_err;
use crate::workspace::{read_json, write_json};

pub const TRIM_HORIZON: &str = "TRIM_HORIZON";
pub const SHARD_END: &str = "SHARD_END";

/// One row of an application's lease table (≙ the KCL's DynamoDB lease item).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub shard_id: String,
    /// `TRIM_HORIZON`, the last processed sequence number, or `SHARD_END`.
    pub checkpoint: String,
    /// Bumped at every checkpoint.
    pub lease_counter: u64,
    pub parent_shard_ids: Vec<String>,
}

impl Lease {
    fn ended(&self) -> bool {
        self.checkpoint == SHARD_END
    }
}

/// Where a new application starts on shards without parents (children always start at
/// their TRIM_HORIZON so nothing is skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    TrimHorizon,
    Latest,
}

/// Records read for an application, not yet checkpointed.
#[derive(Debug, Clone)]
pub struct LeaseBatch<T = (String, Record)> {
    /// (shard id, record), shard by shard in parent-before-child order (or what the
    /// reader made of each, see [`Streams::lease_read_with`]).
    pub records: Vec<T>,
    /// Shards whose read was refused by the throughput limits (retry later).
    pub throttled: Vec<String>,
    /// The lease table as it will be once this batch is checkpointed.
    pub leases: Vec<Lease>,
}

impl Streams {
    /// The application's lease table (empty before its first read).
    pub fn leases(&self, name: &str, app: &str) -> Result<Vec<Lease>> {
        stream(&self.lock(), name)?;
        Ok(self.load_leases(name, app)?.into_values().collect())
    }

    /// Reads up to `max_records` records after the application's checkpoints, parents
    /// before children. Reads are metered: against the app's own fan-out budget when a
    /// consumer of that name is registered, else the shared GetRecords budget.
    pub fn lease_read(&self, name: &str, app: &str, initial: InitialPosition, max_records: usize) -> Result<LeaseBatch> {
        self.lease_read_with(name, app, initial, max_records, |shard, record| (shard.shard_id.clone(), record_of(shard, record)))
    }

    /// [`lease_read`](Self::lease_read), with each record made into what `map` returns
    /// from its shard and its stored form (a reader that needs only the data skips making
    /// sequence numbers and copies of ids).
    pub fn lease_read_with<T>(
        &self,
        name: &str,
        app: &str,
        initial: InitialPosition,
        max_records: usize,
        mut map: impl FnMut(&super::Shard, &super::log::StoredRecord) -> T,
    ) -> Result<LeaseBatch<T>> {
        validate_stream_name(app)?;
        let now = self.clock.now().timestamp_millis();
        let mut leases = self.load_leases(name, app)?;
        let new_app = leases.is_empty();
        let mut state = self.lock();
        self.expire_stream(&mut state, name)?;
        let state = &mut *state;
        let description = stream(state, name)?.clone();
        let reader = if description.consumers.iter().any(|c| c.name == app) { Reader::Consumer(app.to_string()) } else { Reader::Shared };
        let mut shards: Vec<_> = description.shards.iter().collect();
        shards.sort_by_key(|s| s.number());
        let mut batch = LeaseBatch { records: Vec::new(), throttled: Vec::new(), leases: Vec::new() };
        for shard in shards {
            let log = &state.logs[&(name.to_string(), shard.shard_id.clone())];
            let ancestors: Vec<&str> = description.ancestors(shard).map(|s| s.shard_id.as_str()).collect();
            leases.entry(shard.shard_id.clone()).or_insert_with(|| {
                // A new application starting at LATEST begins at the tip of the open shards
                // and skips the closed ones; shards created later start at TRIM_HORIZON.
                let checkpoint = match initial {
                    InitialPosition::Latest if new_app && !shard.is_open() => SHARD_END.to_string(),
                    InitialPosition::Latest if new_app && log.next_sequence() > 1 => sequence_string(shard.number(), log.next_sequence() - 1),
                    _ => TRIM_HORIZON.to_string(),
                };
                let parents = [&shard.parent_shard_id, &shard.adjacent_parent_shard_id].into_iter().flatten().cloned().collect();
                Lease { shard_id: shard.shard_id.clone(), checkpoint, lease_counter: 0, parent_shard_ids: parents }
            });
            // Ancestors have lower numbers, so their leases were settled earlier in this loop.
            let ready = ancestors.iter().all(|a| leases.get(*a).is_some_and(Lease::ended));
            if leases[&shard.shard_id].ended() || !ready || batch.records.len() >= max_records {
                continue;
            }
            let lease = leases.get_mut(&shard.shard_id).expect("inserted above");
            let after = match lease.checkpoint.as_str() {
                TRIM_HORIZON => 0,
                sequence => parse_sequence(sequence, shard.number())?,
            };
            if description.limits && !state.meters.admit_read(name, &shard.shard_id, &reader, now) {
                batch.throttled.push(shard.shard_id.clone());
                continue;
            }
            let read = read_shard(shard, log, after + 1, max_records - batch.records.len(), now);
            if description.limits {
                state.meters.charge_read(name, &shard.shard_id, &reader, read.bytes, now);
            }
            let records = log.read(read.range)?;
            if let Some(last) = records.last() {
                lease.checkpoint = sequence_string(shard.number(), last.sequence);
            }
            if read.next.is_none() {
                lease.checkpoint = SHARD_END.to_string();
            }
            batch.records.extend(records.iter().map(|r| map(shard, r)));
            batch.leases.push(lease.clone());
        }
        // Leases not touched by this read keep their checkpoints.
        for (id, lease) in leases {
            if !batch.leases.iter().any(|l| l.shard_id == id) {
                batch.leases.push(lease);
            }
        }
        batch.leases.sort_by(|a, b| a.shard_id.cmp(&b.shard_id));
        Ok(batch)
    }

    /// Persists the lease table a [`LeaseBatch`] carries (the records are handled).
    pub fn checkpoint(&self, name: &str, app: &str, leases: &[Lease]) -> Result<()> {
        let previous = self.load_leases(name, app)?;
        let table: BTreeMap<String, Lease> = leases
            .iter()
            .map(|lease| {
                let mut lease = lease.clone();
                let changed = match previous.get(&lease.shard_id) {
                    Some(p) => p.checkpoint != lease.checkpoint,
                    None => lease.checkpoint != TRIM_HORIZON,
                };
                lease.lease_counter = previous.get(&lease.shard_id).map_or(0, |p| p.lease_counter) + u64::from(changed);
                (lease.shard_id.clone(), lease)
            })
            .collect();
        write_json(&self.lease_path(name, app), &table)
    }

    /// Reads since the application's checkpoints and checkpoints at once.
    pub fn consume(&self, name: &str, app: &str, initial: InitialPosition, max_records: usize) -> Result<LeaseBatch> {
        let batch = self.lease_read(name, app, initial, max_records)?;
        self.checkpoint(name, app, &batch.leases)?;
        Ok(LeaseBatch { leases: self.load_leases(name, app)?.into_values().collect(), ..batch })
    }

    /// Forgets an application's lease table (the application was deleted).
    pub fn delete_leases(&self, name: &str, app: &str) -> Result<()> {
        let path = self.lease_path(name, app);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(crate::Error::io(&path, e)),
        }
    }

    fn lease_path(&self, name: &str, app: &str) -> std::path::PathBuf {
        self.dir.join(name).join("leases").join(format!("{app}.json"))
    }

    fn load_leases(&self, name: &str, app: &str) -> Result<BTreeMap<String, Lease>> {
        validate_stream_name(app).map_err(|_| service_err!(ValidationException, "{app:?} is not a valid application name"))?;
        Ok(read_json(&self.lease_path(name, app))?.unwrap_or_default())
    }
}

