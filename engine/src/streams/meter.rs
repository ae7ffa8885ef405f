//! Throughput limits, measured on the engine clock so a notebook on the manual clock shows
//! throttling deterministically: nothing refills until `%clock advance`.
//!
//! - Writes: per shard, at most 1,000 records and 1 MiB in each clock second.
//! - Shared reads (GetRecords): per shard, 5 calls in each clock second, and a 2 MiB/s byte
//!   budget. As in Kinesis, one call may return up to 10 MiB; the budget then goes into debt
//!   and later calls are refused until it has refilled (a 10 MiB read blocks ~4 seconds).
//! - Enhanced fan-out: each registered consumer has its own 2 MiB/s budget per shard and no
//!   call limit.

use std::collections::HashMap;

pub const WRITE_RECORDS_PER_SECOND: u64 = 1_000;
pub const WRITE_BYTES_PER_SECOND: u64 = 1024 * 1024;
pub const READ_CALLS_PER_SECOND: u32 = 5;
pub const READ_BYTES_PER_SECOND: i64 = 2 * 1024 * 1024;

/// One clock second's writes to a shard.
#[derive(Debug, Default, Clone, Copy)]
struct WriteWindow {
    second: i64,
    records: u64,
    bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct ReadBudget {
    /// The clock second `calls` counts in.
    second: i64,
    calls: u32,
    /// Bytes that may still be read; negative after a large read.
    bytes: i64,
    /// When `bytes` was last refilled (engine ms).
    at_ms: i64,
}

/// Who a read is charged to: the shared GetRecords budget or a fan-out consumer's own.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reader {
    Shared,
    Consumer(String),
}

#[derive(Debug, Default)]
pub struct Meters {
    writes: HashMap<(String, String), WriteWindow>,
    reads: HashMap<(String, String, Reader), ReadBudget>,
    /// Streams that refused a write since the last on-demand scaling check.
    throttled_writes: std::collections::HashSet<String>,
}

impl Meters {
    /// Counts a record of `bytes` against the shard's write limit; false when it would exceed
    /// this second's allowance (the record is then not counted).
    pub fn admit_write(&mut self, stream: &str, shard: &str, bytes: u64, now_ms: i64) -> bool {
        let second = now_ms.div_euclid(1000);
        let window = self.writes.entry((stream.to_string(), shard.to_string())).or_default();
        if window.second != second {
            *window = WriteWindow { second, records: 0, bytes: 0 };
        }
        if window.records + 1 > WRITE_RECORDS_PER_SECOND || window.bytes + bytes > WRITE_BYTES_PER_SECOND {
            self.throttled_writes.insert(stream.to_string());
            return false;
        }
        window.records += 1;
        window.bytes += bytes;
        true
    }

    /// Whether a read may start now; counts the call when it may.
    pub fn admit_read(&mut self, stream: &str, shard: &str, reader: &Reader, now_ms: i64) -> bool {
        let budget = self.budget(stream, shard, reader, now_ms);
        let second = now_ms.div_euclid(1000);
        if budget.second != second {
            budget.second = second;
            budget.calls = 0;
        }
        if budget.bytes <= 0 || (*reader == Reader::Shared && budget.calls >= READ_CALLS_PER_SECOND) {
            return false;
        }
        budget.calls += 1;
        true
    }

    /// Charges the bytes a read returned.
    pub fn charge_read(&mut self, stream: &str, shard: &str, reader: &Reader, bytes: u64, now_ms: i64) {
        self.budget(stream, shard, reader, now_ms).bytes -= bytes as i64;
    }

    fn budget(&mut self, stream: &str, shard: &str, reader: &Reader, now_ms: i64) -> &mut ReadBudget {
        let budget = self.reads.entry((stream.to_string(), shard.to_string(), reader.clone())).or_insert(ReadBudget {
            second: now_ms.div_euclid(1000),
            calls: 0,
            bytes: READ_BYTES_PER_SECOND,
            at_ms: now_ms,
        });
        let elapsed = (now_ms - budget.at_ms).max(0);
        budget.bytes = (budget.bytes + elapsed * READ_BYTES_PER_SECOND / 1000).min(READ_BYTES_PER_SECOND);
        budget.at_ms = now_ms;
        budget
    }

    /// Whether the stream refused writes since the last call (and forgets it).
    pub fn take_write_throttled(&mut self, stream: &str) -> bool {
        self.throttled_writes.remove(stream)
    }

    /// Forgets a stream's meters (it was deleted).
    pub fn forget(&mut self, stream: &str) {
        self.writes.retain(|(s, _), _| s != stream);
        self.reads.retain(|(s, _, _), _| s != stream);
        self.throttled_writes.remove(stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_refill_each_clock_second() {
        let mut m = Meters::default();
        for _ in 0..1000 {
            assert!(m.admit_write("s", "a", 10, 5_000));
        }
        assert!(!m.admit_write("s", "a", 10, 5_999), "the 1,001st record in one second");
        assert!(m.admit_write("s", "b", 10, 5_999), "limits are per shard");
        assert!(m.admit_write("s", "a", 10, 6_000), "a new second");
        assert!(!m.admit_write("s", "c", WRITE_BYTES_PER_SECOND + 1, 0), "more than 1 MiB");
    }

    #[test]
    fn reads_allow_five_calls_and_a_large_read_blocks_until_refilled() {
        let mut m = Meters::default();
        let shared = Reader::Shared;
        for _ in 0..5 {
            assert!(m.admit_read("s", "a", &shared, 0));
        }
        assert!(!m.admit_read("s", "a", &shared, 999));
        assert!(m.admit_read("s", "a", &shared, 1_000));
        m.charge_read("s", "a", &shared, 10 * 1024 * 1024, 1_000);
        assert!(!m.admit_read("s", "a", &shared, 4_000), "8 MiB of debt needs 4 s");
        assert!(m.admit_read("s", "a", &shared, 5_001));
        // A fan-out consumer has its own budget and no call limit.
        let efo = Reader::Consumer("app".into());
        for _ in 0..20 {
            assert!(m.admit_read("s", "a", &efo, 1_000));
        }
    }
}
