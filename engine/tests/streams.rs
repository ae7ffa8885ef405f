//! Kinesis-style streams through the engine: MD5 routing to known shards, per-shard
//! sequence order, every iterator type, iterator expiry on the manual clock, PutRecords'
//! per-record results, and durability across reopening.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lakebook_engine::Lakebook;
use lakebook_engine::streams::{IteratorStart, PutEntry};

fn open() -> (tempfile::TempDir, Lakebook) {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    lb.clock().set_manual(Some("2026-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap())).unwrap();
    (dir, lb)
}

#[test]
fn known_keys_route_to_known_shards() {
    let (_dir, lb) = open();
    // Shard indexes from MD5 of each key against floor(2^128/n)·i boundaries (computed apart).
    let expected = [("a", [0, 0, 0, 0, 0]), ("b", [0, 1, 1, 2, 4]), ("c", [0, 0, 0, 1, 2]), ("z", [0, 1, 2, 3, 7])];
    for (i, n) in [1u64, 2, 3, 4, 8].into_iter().enumerate() {
        let name = format!("s{n}");
        lb.streams().create(&name, Some(n), None).unwrap();
        for (key, shards) in expected {
            let put = lb.streams().put_record(&name, key, Bytes::from_static(b"x"), None).unwrap();
            assert_eq!(put.shard_id, format!("shardId-{:012}", shards[i]), "key {key} on {n} shards");
        }
    }
    // ExplicitHashKey overrides the hash.
    let put = lb.streams().put_record("s2", "a", Bytes::from_static(b"x"), Some(&u128::MAX.to_string())).unwrap();
    assert_eq!(put.shard_id, "shardId-000000000001");
}

#[test]
fn every_iterator_type_reads_in_sequence_order() {
    let (_dir, lb) = open();
    let streams = lb.streams();
    streams.create("clicks", Some(1), None).unwrap();
    let mut sequences = Vec::new();
    for i in 0..5 {
        sequences.push(streams.put_record("clicks", "user", Bytes::from(format!("r{i}")), None).unwrap().sequence_number);
        lb.clock().advance(std::time::Duration::from_secs(10)).unwrap();
    }
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "strictly increasing: {sequences:?}");
    let shard = "shardId-000000000000";
    let read = |start: IteratorStart| -> Vec<String> {
        let it = streams.shard_iterator("clicks", shard, start).unwrap();
        let out = streams.get_records(&it, None).unwrap();
        out.records.iter().map(|r| String::from_utf8(r.data.to_vec()).unwrap()).collect()
    };
    assert_eq!(read(IteratorStart::TrimHorizon), ["r0", "r1", "r2", "r3", "r4"]);
    assert!(read(IteratorStart::Latest).is_empty());
    assert_eq!(read(IteratorStart::AtSequenceNumber(sequences[2].clone())), ["r2", "r3", "r4"]);
    assert_eq!(read(IteratorStart::AfterSequenceNumber(sequences[2].clone())), ["r3", "r4"]);
    let at: DateTime<Utc> = "2026-01-01T00:00:20Z".parse().unwrap();
    assert_eq!(read(IteratorStart::AtTimestamp(at)), ["r2", "r3", "r4"]);

    // Paging with a limit: NextShardIterator continues, MillisBehindLatest counts the rest.
    let it = streams.shard_iterator("clicks", shard, IteratorStart::TrimHorizon).unwrap();
    let first = streams.get_records(&it, Some(2)).unwrap();
    assert_eq!(first.records.len(), 2);
    assert!(first.millis_behind_latest > 0);
    let rest = streams.get_records(first.next_shard_iterator.as_ref().unwrap(), None).unwrap();
    assert_eq!(rest.records.len(), 3);
    assert_eq!(rest.millis_behind_latest, 0);
    // An open shard always hands back an iterator, even with nothing new.
    let empty = streams.get_records(rest.next_shard_iterator.as_ref().unwrap(), None).unwrap();
    assert!(empty.records.is_empty() && empty.next_shard_iterator.is_some());
    // LATEST sees what arrives after it was taken.
    let latest = streams.shard_iterator("clicks", shard, IteratorStart::Latest).unwrap();
    streams.put_record("clicks", "user", Bytes::from_static(b"r5"), None).unwrap();
    assert_eq!(streams.get_records(&latest, None).unwrap().records[0].data, Bytes::from_static(b"r5"));

    // Iterators expire after five minutes of engine time.
    lb.clock().advance(std::time::Duration::from_secs(301)).unwrap();
    assert_eq!(streams.get_records(&latest, None).unwrap_err().code(), "ExpiredIteratorException");
    assert_eq!(streams.get_records(&latest, Some(0)).unwrap_err().code(), "InvalidArgumentException");
    let other = streams.shard_iterator("clicks", shard, IteratorStart::AtSequenceNumber("123".into())).unwrap_err();
    assert_eq!(other.code(), "InvalidArgumentException");
}

#[test]
fn put_records_reports_each_record_and_errors_have_aws_names() {
    let (_dir, lb) = open();
    let streams = lb.streams();
    streams.create("events", Some(2), Some(48)).unwrap();
    let entry = |key: &str, size: usize| PutEntry { partition_key: key.into(), data: Bytes::from(vec![b'x'; size]), explicit_hash_key: None };
    let results = streams.put_records("events", vec![entry("a", 10), entry("b", 2 * 1024 * 1024), entry("", 1), entry("z", 10)]).unwrap();
    assert!(results[0].is_ok() && results[3].is_ok());
    assert_eq!(results[1].as_ref().unwrap_err().code(), "InvalidArgumentException");
    assert_eq!(results[2].as_ref().unwrap_err().code(), "InvalidArgumentException");
    let too_many: Vec<PutEntry> = (0..501).map(|_| entry("k", 1)).collect();
    assert_eq!(streams.put_records("events", too_many).unwrap_err().code(), "InvalidArgumentException");
    assert_eq!(streams.create("events", Some(1), None).unwrap_err().code(), "ResourceInUseException");
    assert_eq!(streams.create("x", Some(1), Some(12)).unwrap_err().code(), "InvalidArgumentException");
    let missing = streams.put_record("event", "a", Bytes::new(), None).unwrap_err();
    assert_eq!(missing.code(), "ResourceNotFoundException");
    assert_eq!(missing.hint(), Some("did you mean events?"));
    assert_eq!(streams.describe("events").unwrap().retention_hours, 48);
}

#[test]
fn acknowledged_records_survive_reopening() {
    let (dir, lb) = open();
    lb.streams().create("durable", Some(4), None).unwrap();
    let entries: Vec<PutEntry> =
        (0..300).map(|i| PutEntry { partition_key: format!("k{i}"), data: Bytes::from(format!("{i}")), explicit_hash_key: None }).collect();
    let acked: Vec<_> = lb.streams().put_records("durable", entries).unwrap().into_iter().map(Result::unwrap).collect();
    drop(lb);
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    let description = lb.streams().describe("durable").unwrap();
    let mut seen = 0;
    for shard in &description.shards {
        let it = lb.streams().shard_iterator("durable", &shard.shard_id, IteratorStart::TrimHorizon).unwrap();
        let records = lb.streams().get_records(&it, None).unwrap().records;
        let expected: Vec<&String> = acked.iter().filter(|a| a.shard_id == shard.shard_id).map(|a| &a.sequence_number).collect();
        let got: Vec<&String> = records.iter().map(|r| &r.sequence_number).collect();
        assert_eq!(got, expected, "{}", shard.shard_id);
        seen += records.len();
    }
    assert_eq!(seen, 300);
    lb.streams().delete("durable").unwrap();
    assert!(lb.streams().list().is_empty());
}
