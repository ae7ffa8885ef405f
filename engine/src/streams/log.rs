//! One shard's durable, append-only record log: `<workspace>/streams/<stream>/<shard>.log`.
//!
//! A frame is `[payload length u32 LE][CRC-32 of payload u32 LE][payload]`, the payload being
//! `[sequence u64][arrival ms i64][partition key length u16][partition key][data]`. A put
//! is acknowledged only after its frames are written and `fsync`ed (one sync per call, so a
//! PutRecords batch is one group commit). On open, frames are read back until the first
//! incomplete or corrupt one, and the file is truncated there: a crash mid-append loses only
//! what was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::error::{Error, Result};

/// A stored record (sequence numbers are per shard and start at 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub sequence: u64,
    pub arrival_ms: i64,
    pub partition_key: String,
    pub data: Bytes,
}

#[derive(Debug)]
pub struct ShardLog {
    path: PathBuf,
    file: File,
    /// Every record still in the log, oldest first.
    pub records: Vec<StoredRecord>,
    /// Bytes of the file that hold complete frames.
    len: u64,
    /// The sequence number the next record gets.
    next: u64,
}

const HEADER: usize = 8;
const FIXED: usize = 8 + 8 + 2;

fn io(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

impl ShardLog {
    /// Opens (or creates) the log, dropping a torn or corrupt tail. Numbering continues at
    /// `next_at_least` when every earlier record has expired.
    pub fn open(path: &Path, next_at_least: u64) -> Result<Self> {
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io(path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(path))?;
        let mut records = Vec::new();
        let mut at = 0usize;
        while let Some((record, next)) = decode(&bytes, at) {
            records.push(record);
            at = next;
        }
        if at < bytes.len() {
            tracing::warn!("{}: dropping {} byte(s) of an unacknowledged, torn write", path.display(), bytes.len() - at);
            file.set_len(at as u64).map_err(io(path))?;
            file.sync_all().map_err(io(path))?;
        }
        file.seek(SeekFrom::End(0)).map_err(io(path))?;
        let next = records.last().map_or(1, |r: &StoredRecord| r.sequence + 1).max(next_at_least);
        Ok(Self { path: path.to_path_buf(), file, records, len: at as u64, next })
    }

    /// The sequence number the next record gets.
    pub fn next_sequence(&self) -> u64 {
        self.next
    }

    /// Appends records durably; they are in `records` once this returns Ok.
    pub fn append(&mut self, batch: Vec<StoredRecord>) -> Result<()> {
        let mut buffer = Vec::with_capacity(batch.iter().map(|r| HEADER + FIXED + r.partition_key.len() + r.data.len()).sum());
        for record in &batch {
            encode(record, &mut buffer);
        }
        let written = self.file.write_all(&buffer).and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Leave the file as it was acknowledged: the next open would drop a partial
            // frame anyway, but later appends must not follow one.
            let _ = self.file.set_len(self.len);
            return Err(io(&self.path)(e));
        }
        self.len += buffer.len() as u64;
        if let Some(last) = batch.last() {
            self.next = last.sequence + 1;
        }
        self.records.extend(batch);
        Ok(())
    }

    /// Keeps only the records `keep` accepts, rewriting the file atomically (numbering
    /// continues where it was).
    pub fn retain(&mut self, keep: impl Fn(&StoredRecord) -> bool) -> Result<()> {
        let before = self.records.len();
        self.records.retain(|r| keep(r));
        if self.records.len() == before {
            return Ok(());
        }
        let mut buffer = Vec::new();
        for record in &self.records {
            encode(record, &mut buffer);
        }
        crate::workspace::atomic_write(&self.path, &buffer)?;
        self.file = OpenOptions::new().read(true).append(true).open(&self.path).map_err(io(&self.path))?;
        self.len = buffer.len() as u64;
        Ok(())
    }

    /// Drops records older than `cutoff_ms` (retention), rewriting the file atomically.
    pub fn trim_before(&mut self, cutoff_ms: i64) -> Result<usize> {
        let keep_from = self.records.iter().position(|r| r.arrival_ms >= cutoff_ms).unwrap_or(self.records.len());
        if keep_from == 0 {
            return Ok(0);
        }
        let mut buffer = Vec::new();
        for record in &self.records[keep_from..] {
            encode(record, &mut buffer);
        }
        crate::workspace::atomic_write(&self.path, &buffer)?;
        self.file = OpenOptions::new().read(true).append(true).open(&self.path).map_err(io(&self.path))?;
        self.len = buffer.len() as u64;
        self.records.drain(..keep_from);
        Ok(keep_from)
    }
}

fn encode(record: &StoredRecord, out: &mut Vec<u8>) {
    let key = record.partition_key.as_bytes();
    let len = FIXED + key.len() + record.data.len();
    let start = out.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&record.sequence.to_le_bytes());
    out.extend_from_slice(&record.arrival_ms.to_le_bytes());
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&record.data);
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// The frame at `at`, and where the next one starts; None at a torn or corrupt frame.
fn decode(bytes: &[u8], at: usize) -> Option<(StoredRecord, usize)> {
    let header = bytes.get(at..at + HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let payload = bytes.get(at + HEADER..at + HEADER + len)?;
    if len < FIXED || crc32fast::hash(payload) != crc {
        return None;
    }
    let sequence = u64::from_le_bytes(payload[..8].try_into().ok()?);
    let arrival_ms = i64::from_le_bytes(payload[8..16].try_into().ok()?);
    let key_len = u16::from_le_bytes(payload[16..18].try_into().ok()?) as usize;
    let key = payload.get(FIXED..FIXED + key_len)?;
    let partition_key = String::from_utf8(key.to_vec()).ok()?;
    let data = Bytes::copy_from_slice(&payload[FIXED + key_len..]);
    Some((StoredRecord { sequence, arrival_ms, partition_key, data }, at + HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prop_assert_eq;

    fn record(sequence: u64, data: &str) -> StoredRecord {
        StoredRecord { sequence, arrival_ms: sequence as i64 * 10, partition_key: format!("k{sequence}"), data: Bytes::from(data.to_string()) }
    }

    #[test]
    fn records_survive_reopening_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard.log");
        let mut log = ShardLog::open(&path, 1).unwrap();
        log.append(vec![record(1, "one"), record(2, "two")]).unwrap();
        log.append(vec![record(3, "three")]).unwrap();
        drop(log);
        // A crash mid-append: half a frame at the end.
        let full = std::fs::read(&path).unwrap();
        let mut torn = full.clone();
        let mut extra = Vec::new();
        encode(&record(4, "four"), &mut extra);
        torn.extend_from_slice(&extra[..extra.len() / 2]);
        std::fs::write(&path, &torn).unwrap();
        let mut log = ShardLog::open(&path, 1).unwrap();
        assert_eq!(log.records, vec![record(1, "one"), record(2, "two"), record(3, "three")]);
        assert_eq!(std::fs::read(&path).unwrap(), full, "the torn frame is cut off");
        assert_eq!(log.next_sequence(), 4);
        log.append(vec![record(4, "four")]).unwrap();
        assert_eq!(ShardLog::open(&path, 1).unwrap().records.len(), 4);
    }

    #[test]
    fn a_corrupt_frame_ends_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard.log");
        let mut log = ShardLog::open(&path, 1).unwrap();
        log.append(vec![record(1, "one"), record(2, "two")]).unwrap();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(ShardLog::open(&path, 1).unwrap().records, vec![record(1, "one")]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, failure_persistence: None, ..Default::default() })]

        /// A log cut anywhere or with any bit flipped opens to the records wholly before the
        /// damage (a stream's shard and a delivery stream's buffer alike), and takes appends
        /// after it.
        #[test]
        fn a_truncated_or_bit_flipped_log_opens_to_its_intact_prefix(
            datas in proptest::collection::vec("[ -~]{0,40}", 1..12),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
            flip in proptest::option::of((proptest::prelude::any::<proptest::sample::Index>(), 0u8..8)),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("shard.log");
            let written: Vec<StoredRecord> = datas.iter().enumerate().map(|(i, d)| record(i as u64 + 1, d)).collect();
            let mut ends = Vec::new();
            let mut bytes = Vec::new();
            for r in &written {
                encode(r, &mut bytes);
                ends.push(bytes.len());
            }
            let mut log = ShardLog::open(&path, 1).unwrap();
            log.append(written.clone()).unwrap();
            drop(log);
            prop_assert_eq!(std::fs::read(&path).unwrap(), bytes.clone());
            // The damage: a flipped bit, or else a cut.
            let damaged_at = match flip {
                Some((at, bit)) => {
                    let at = at.index(bytes.len());
                    bytes[at] ^= 1 << bit;
                    at
                }
                None => {
                    let at = cut.index(bytes.len() + 1);
                    bytes.truncate(at);
                    at
                }
            };
            std::fs::write(&path, &bytes).unwrap();
            let intact = ends.iter().take_while(|&&end| end <= damaged_at).count();
            let mut log = ShardLog::open(&path, 1).unwrap();
            prop_assert_eq!(&log.records, &written[..intact].to_vec());
            let next = intact as u64 + 1;
            prop_assert_eq!(log.next_sequence(), next);
            log.append(vec![record(next, "after")]).unwrap();
            let reopened = ShardLog::open(&path, 1).unwrap();
            prop_assert_eq!(reopened.records.len(), intact + 1);
            prop_assert_eq!(&reopened.records[intact], &record(next, "after"));
        }
    }

    #[test]
    fn retention_trims_old_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shard.log");
        let mut log = ShardLog::open(&path, 1).unwrap();
        log.append((1..=5).map(|i| record(i, "x")).collect()).unwrap();
        assert_eq!(log.trim_before(30).unwrap(), 2);
        log.append(vec![record(6, "y")]).unwrap();
        let reopened = ShardLog::open(&path, 1).unwrap();
        assert_eq!(reopened.records.iter().map(|r| r.sequence).collect::<Vec<_>>(), [3, 4, 5, 6]);
    }
}
