//! Kinesis-style streams through the engine: MD5 routing to known shards, per-shard
//! sequence order, every iterator type, iterator expiry on the manual clock, PutRecords'
//! per-record results, durability across reopening, throughput limits, resharding lineage
//! with parent-first reads, retention, consumers and lease tables, the generator, and SQL
//! over streams.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::time::Duration;

use lakebook_engine::streams::generator::Template;
use lakebook_engine::streams::leases::{InitialPosition, SHARD_END};
use lakebook_engine::streams::meter::Reader;
use lakebook_engine::streams::ReadFrom;
use lakebook_engine::{GenerateSpec, Lakebook};
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
    // Many reads in one simulated second: limits are tested on their own below.
    streams.set_limits("clicks", false).unwrap();
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
fn many_records_go_in_calls_of_at_most_500_in_order() {
    let (_dir, lb) = open();
    let streams = lb.streams();
    // Three shards keep each under its 1,000 records per second.
    streams.create("bulk", Some(3), None).unwrap();
    let entries: Vec<PutEntry> = (0..1201).map(|i| entry(&format!("k{i}"), format!("{i}"))).collect();
    let results: Vec<_> = streams.put_records_in_calls("bulk", entries).unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(results.len(), 1201);
    let stats = streams.shard_stats("bulk").unwrap();
    assert_eq!(stats.iter().map(|s| s.records).sum::<u64>(), 1201);
    let mut all = Vec::new();
    for shard in &stats {
        // Within a shard, records are stored in put order.
        let put: Vec<&String> = results.iter().filter(|r| r.shard_id == shard.shard_id).map(|r| &r.sequence_number).collect();
        assert_eq!(shard.first_sequence.as_ref(), put.first().copied());
        assert_eq!(shard.last_sequence.as_ref(), put.last().copied());
        let it = streams.shard_iterator("bulk", &shard.shard_id, IteratorStart::TrimHorizon).unwrap();
        let read = streams.get_records(&it, Some(10_000)).unwrap().records;
        assert_eq!(read.iter().map(|r| &r.sequence_number).collect::<Vec<_>>(), put);
        all.extend(datas_of(&read).into_iter().map(|d| d.parse::<u32>().unwrap()));
    }
    all.sort_unstable();
    assert_eq!(all, (0..1201).collect::<Vec<u32>>());
    assert_eq!(streams.put_records_in_calls("nope", vec![entry("k", "x")]).unwrap_err().code(), "ResourceNotFoundException");
}

fn datas_of(records: &[lakebook_engine::streams::Record]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8_lossy(&r.data).into_owned()).collect()
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

fn entry(key: &str, data: impl Into<Bytes>) -> PutEntry {
    PutEntry { partition_key: key.into(), data: data.into(), explicit_hash_key: None }
}

fn datas(records: &[(String, lakebook_engine::streams::Record)]) -> Vec<String> {
    records.iter().map(|(_, r)| String::from_utf8(r.data.to_vec()).unwrap()).collect()
}

#[test]
fn write_limits_throttle_per_shard_per_second_on_the_manual_clock() {
    let (_dir, lb) = open();
    let streams = lb.streams();
    streams.create("hot", Some(1), None).unwrap();
    // 1,000 records per second per shard: the 1,001st in the same second is throttled alone.
    let mut stored = 0;
    for _ in 0..2 {
        let batch: Vec<PutEntry> = (0..500).map(|i| entry(&format!("k{i}"), "x")).collect();
        stored += streams.put_records("hot", batch).unwrap().iter().filter(|r| r.is_ok()).count();
    }
    assert_eq!(stored, 1000);
    let results = streams.put_records("hot", vec![entry("k", "x"), entry("k", "y")]).unwrap();
    assert!(results.iter().all(|r| r.as_ref().unwrap_err().code() == "ProvisionedThroughputExceededException"));
    let single = streams.put_record("hot", "k", Bytes::from_static(b"z"), None).unwrap_err();
    assert_eq!(single.code(), "ProvisionedThroughputExceededException");
    assert!(single.message().contains("Rate exceeded for shard shardId-000000000000 in stream hot"), "{}", single.message());
    // The next clock second refills the allowance.
    lb.clock().advance(Duration::from_secs(1)).unwrap();
    assert!(streams.put_record("hot", "k", Bytes::from_static(b"z"), None).is_ok());
    // 1 MiB per second: two 600 KB records in one second, the second is throttled.
    lb.clock().advance(Duration::from_secs(1)).unwrap();
    let big = || entry("k", vec![b'x'; 600 * 1024]);
    let results = streams.put_records("hot", vec![big(), big()]).unwrap();
    assert!(results[0].is_ok());
    assert_eq!(results[1].as_ref().unwrap_err().code(), "ProvisionedThroughputExceededException");
    // PutRecords carries at most 5 MiB.
    let huge: Vec<PutEntry> = (0..6).map(|_| entry("k", vec![b'x'; 1000 * 1024])).collect();
    assert_eq!(streams.put_records("hot", huge).unwrap_err().code(), "InvalidArgumentException");
    // Switched off for a bulk load, nothing is throttled.
    streams.set_limits("hot", false).unwrap();
    let report = streams.load("hot", (0..5000).map(|i| entry(&format!("k{i}"), "x")).collect()).unwrap();
    assert_eq!((report.stored, report.failed), (5000, 0));
    assert!(!lb.streams().describe("hot").unwrap().limits);
}

#[test]
fn read_limits_five_calls_and_two_mib_per_second_and_fan_out_consumers_have_their_own() {
    let (_dir, lb) = open();
    let streams = lb.streams();
    streams.create("reads", Some(1), None).unwrap();
    streams.set_limits("reads", false).unwrap();
    let report = streams.load("reads", (0..10).map(|_| entry("k", vec![b'x'; 1000 * 1024])).collect()).unwrap();
    assert_eq!(report.stored, 10);
    streams.set_limits("reads", true).unwrap();
    let shard = "shardId-000000000000";
    let latest = streams.shard_iterator("reads", shard, IteratorStart::Latest).unwrap();
    for _ in 0..5 {
        streams.get_records(&latest, None).unwrap();
    }
    assert_eq!(streams.get_records(&latest, None).unwrap_err().code(), "ProvisionedThroughputExceededException");
    lb.clock().advance(Duration::from_secs(1)).unwrap();
    // A 10 MiB read is served, then the shard's shared budget is in debt for ~4 seconds.
    let all = streams.shard_iterator("reads", shard, IteratorStart::TrimHorizon).unwrap();
    let read = streams.get_records(&all, None).unwrap();
    assert_eq!(read.records.len(), 10);
    lb.clock().advance(Duration::from_secs(3)).unwrap();
    assert_eq!(streams.get_records(&latest, None).unwrap_err().code(), "ProvisionedThroughputExceededException");
    // A registered fan-out consumer reads with its own budget meanwhile.
    let efo = Reader::Consumer("dashboard".into());
    assert_eq!(streams.get_records_as(&all, None, &efo).unwrap_err().code(), "ResourceNotFoundException");
    streams.register_consumer("reads", "dashboard").unwrap();
    assert_eq!(streams.register_consumer("reads", "dashboard").unwrap_err().code(), "ResourceInUseException");
    let all = streams.shard_iterator("reads", shard, IteratorStart::TrimHorizon).unwrap();
    assert_eq!(streams.get_records_as(&all, Some(1), &efo).unwrap().records.len(), 1);
    lb.clock().advance(Duration::from_secs(2)).unwrap();
    let fresh = streams.shard_iterator("reads", shard, IteratorStart::Latest).unwrap();
    assert!(streams.get_records(&fresh, None).is_ok(), "refilled after 5 seconds");
    streams.deregister_consumer("reads", "dashboard").unwrap();
    assert!(streams.describe("reads").unwrap().consumers.is_empty());
}

#[test]
fn split_merge_and_scale_keep_lineage_and_reads_go_parent_first() {
    let (_dir, lb) = open();
    let streams = lb.streams();
    streams.create("lineage", Some(2), None).unwrap();
    streams.set_limits("lineage", false).unwrap();
    for i in 0..20 {
        streams.put_record("lineage", "same-key", Bytes::from(format!("a{i}")), None).unwrap();
    }
    let parent = streams.put_record("lineage", "same-key", Bytes::from_static(b"a20"), None).unwrap().shard_id;
    let children = streams.split("lineage", &parent, None).unwrap();
    assert_eq!(children.len(), 2);
    assert_eq!(children[0].shard_id, "shardId-000000000002");
    assert_eq!(children[1].shard_id, "shardId-000000000003");
    assert!(children.iter().all(|c| c.parent_shard_id.as_deref() == Some(parent.as_str())));
    let description = streams.describe("lineage").unwrap();
    let closed = description.shards.iter().find(|s| s.shard_id == parent).unwrap();
    assert!(closed.ending_sequence_number.is_some() && !closed.is_open());
    // The closed parent takes no more writes and cannot be split again.
    assert_eq!(streams.split("lineage", &parent, None).unwrap_err().code(), "ResourceInUseException");
    for i in 21..30 {
        let put = streams.put_record("lineage", "same-key", Bytes::from(format!("a{i}")), None).unwrap();
        assert!(children.iter().any(|c| c.shard_id == put.shard_id));
    }
    // Per-key order holds across the split: the parent is read before its child.
    let records = streams.read("lineage", &ReadFrom::TrimHorizon).unwrap();
    assert_eq!(datas(&records), (0..30).map(|i| format!("a{i}")).collect::<Vec<_>>());
    // A drained closed shard hands back no next iterator.
    let it = streams.shard_iterator("lineage", &parent, IteratorStart::TrimHorizon).unwrap();
    assert!(streams.get_records(&it, None).unwrap().next_shard_iterator.is_none());

    // Merge the two children back; only adjacent open shards merge.
    let other = description.shards.iter().find(|s| s.is_open() && s.shard_id != children[0].shard_id && s.shard_id != children[1].shard_id).unwrap();
    let not_adjacent = if parent == "shardId-000000000000" { streams.merge("lineage", &children[0].shard_id, &other.shard_id) } else { streams.merge("lineage", &other.shard_id, &children[1].shard_id) };
    assert_eq!(not_adjacent.unwrap_err().code(), "InvalidArgumentException");
    let merged = streams.merge("lineage", &children[0].shard_id, &children[1].shard_id).unwrap();
    assert_eq!(merged[0].parent_shard_id.as_deref(), Some(children[0].shard_id.as_str()));
    assert_eq!(merged[0].adjacent_parent_shard_id.as_deref(), Some(children[1].shard_id.as_str()));
    assert_eq!(merged[0].hash_range(), (children[0].hash_range().0, children[1].hash_range().1));

    // UpdateShardCount: at most double, at least half; the result splits the space evenly.
    assert_eq!(streams.scale("lineage", 5).unwrap_err().code(), "InvalidArgumentException");
    let scaled = streams.scale("lineage", 3).unwrap();
    assert_eq!(scaled.iter().map(|s| s.hash_range()).collect::<Vec<_>>(), lakebook_engine::streams::even_ranges(3));
    assert!(scaled.iter().all(|s| s.parent_shard_id.is_some()));
    streams.put_record("lineage", "same-key", Bytes::from_static(b"a30"), None).unwrap();
    let records = streams.read("lineage", &ReadFrom::TrimHorizon).unwrap();
    let same_key: Vec<String> = datas(&records).into_iter().filter(|d| d.starts_with('a')).collect();
    assert_eq!(same_key, (0..31).map(|i| format!("a{i}")).collect::<Vec<_>>());
    assert_eq!(streams.describe("lineage").unwrap().open_shards().count(), 3);
}

#[test]
fn kcl_style_consumers_checkpoint_per_shard_and_finish_parents_first() {
    let (dir, lb) = open();
    let streams = lb.streams();
    streams.create("orders", Some(1), None).unwrap();
    streams.set_limits("orders", false).unwrap();
    for i in 0..5 {
        streams.put_record("orders", "k", Bytes::from(format!("o{i}")), None).unwrap();
    }
    let first = streams.consume("orders", "billing", InitialPosition::TrimHorizon, 3).unwrap();
    assert_eq!(datas(&first.records), ["o0", "o1", "o2"]);
    streams.split("orders", "shardId-000000000000", None).unwrap();
    for i in 5..8 {
        streams.put_record("orders", "k", Bytes::from(format!("o{i}")), None).unwrap();
    }
    // The lease table survives a restart.
    drop(lb);
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    let streams = lb.streams();
    let rest = streams.consume("orders", "billing", InitialPosition::TrimHorizon, 100).unwrap();
    assert_eq!(datas(&rest.records), ["o3", "o4", "o5", "o6", "o7"]);
    let leases = streams.leases("orders", "billing").unwrap();
    assert_eq!(leases[0].checkpoint, SHARD_END);
    assert_eq!(leases[1].parent_shard_ids, ["shardId-000000000000"]);
    assert!(streams.consume("orders", "billing", InitialPosition::TrimHorizon, 100).unwrap().records.is_empty());
    // Another application has its own checkpoints; LATEST starts after what is there.
    assert_eq!(streams.consume("orders", "audit", InitialPosition::TrimHorizon, 100).unwrap().records.len(), 8);
    let late = streams.consume("orders", "late", InitialPosition::Latest, 100).unwrap();
    assert!(late.records.is_empty(), "{:?}", datas(&late.records));
    // Reading without checkpointing leaves the table as it was.
    streams.put_record("orders", "k", Bytes::from_static(b"o8"), None).unwrap();
    let peek = streams.lease_read("orders", "billing", InitialPosition::TrimHorizon, 100).unwrap();
    assert_eq!(datas(&peek.records), ["o8"]);
    assert_eq!(datas(&streams.consume("orders", "billing", InitialPosition::TrimHorizon, 100).unwrap().records), ["o8"]);
}

#[test]
fn retention_expires_records_on_the_engine_clock() {
    let (dir, lb) = open();
    let streams = lb.streams();
    streams.create("short", Some(1), None).unwrap();
    streams.put_record("short", "k", Bytes::from_static(b"old"), None).unwrap();
    lb.clock().advance(Duration::from_secs(23 * 3600)).unwrap();
    let young = streams.put_record("short", "k", Bytes::from_static(b"young"), None).unwrap();
    lb.clock().advance(Duration::from_secs(3600 + 1)).unwrap();
    assert_eq!(datas(&streams.read("short", &ReadFrom::TrimHorizon).unwrap()), ["young"]);
    lb.clock().advance(Duration::from_secs(23 * 3600)).unwrap();
    let reports = futures_executor(lb.run_due_work());
    assert!(reports.iter().any(|r| r.contains("expired")), "{reports:?}");
    assert!(streams.read("short", &ReadFrom::TrimHorizon).unwrap().is_empty());
    // Numbering continues after expired records, also across a restart.
    drop(lb);
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    let next = lb.streams().put_record("short", "k", Bytes::from_static(b"new"), None).unwrap();
    assert!(next.sequence_number > young.sequence_number, "{} > {}", next.sequence_number, young.sequence_number);
}

fn futures_executor<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

#[test]
fn the_generator_is_deterministic_with_a_seed_and_the_manual_clock() {
    let run = || {
        let (_dir, lb) = open();
        lb.streams().create("clicks", Some(2), None).unwrap();
        let spec = GenerateSpec {
            stream: "clicks".into(),
            template: Template::named_or_text("clickstream").unwrap(),
            rate: 50.0,
            duration: Duration::from_secs(4),
            seed: Some(42),
        };
        let report = futures_executor(lb.generate(&spec, |_, _| {})).unwrap();
        assert_eq!((report.sent, report.stored, report.throttled), (200, 200, 0));
        assert_eq!(lb.clock().now().to_rfc3339(), "2026-01-01T00:00:04+00:00", "four simulated seconds");
        datas(&lb.streams().read("clicks", &ReadFrom::TrimHorizon).unwrap())
    };
    let first = run();
    assert_eq!(first, run());
    let value: serde_json::Value = serde_json::from_str(&first[0]).unwrap();
    assert!(value["user_id"].as_str().unwrap().starts_with("user_"));
    // More than a shard takes per second is throttled and counted.
    let (_dir, lb) = open();
    lb.streams().create("tiny", Some(1), None).unwrap();
    let spec = GenerateSpec { stream: "tiny".into(), template: Template::named_or_text("iot").unwrap(), rate: 1500.0, duration: Duration::from_secs(2), seed: Some(1) };
    let report = futures_executor(lb.generate(&spec, |_, _| {})).unwrap();
    assert_eq!((report.stored, report.throttled), (2000, 1000));
}

#[test]
fn streams_are_tables_in_the_streams_schema_with_json_fields() {
    let (_dir, lb) = open();
    let streams = lb.streams();
    streams.create("iot", Some(2), None).unwrap();
    for i in 0..120 {
        let data = format!(r#"{{"device":"d{}","temp":{}.5,"ts":"2026-01-01T00:{:02}:{:02}Z"}}"#, i % 3, i, i / 60, i % 60);
        streams.put_record("iot", &format!("d{}", i % 3), Bytes::from(data), None).unwrap();
        lb.clock().advance(Duration::from_millis(500)).unwrap();
    }
    let sql = "SELECT date_bin(INTERVAL '1 minute', ts) AS minute, count(*) AS n, max(temp) AS hottest \
               FROM streams.iot GROUP BY 1 ORDER BY 1";
    let results = futures_executor(lb.sql().run(sql, "default")).unwrap();
    let batch = &results[0].batches[0];
    let text = arrow_cast::pretty::pretty_format_batches(std::slice::from_ref(batch)).unwrap().to_string();
    assert!(text.contains("2026-01-01T00:00:00 | 60 | 59.5"), "{text}");
    assert!(text.contains("2026-01-01T00:01:00 | 60 | 119.5"), "{text}");
    // Arrival-time windows and the metadata columns work too.
    let sql = "SELECT count(DISTINCT shard_id) AS shards, min(approximate_arrival_timestamp) AS first FROM streams.iot WHERE partition_key = 'd1'";
    let results = futures_executor(lb.sql().run(sql, "default")).unwrap();
    let text = arrow_cast::pretty::pretty_format_batches(&results[0].batches).unwrap().to_string();
    assert!(text.contains("| 1      | 2026-01-01T00:00:00.500 |"), "{text}");
}

#[test]
fn on_demand_streams_start_at_four_mib_and_scale_when_throttled() {
    let (_dir, lb) = open();
    let created = lb.streams().create("auto", None, None).unwrap();
    assert_eq!(created.shards.len(), 4);
    assert_eq!(created.write_capacity(), "4 MiB/s, 4000 records/s");
    let spec = GenerateSpec { stream: "auto".into(), template: Template::named_or_text("iot").unwrap(), rate: 6000.0, duration: Duration::from_secs(2), seed: Some(3) };
    let report = futures_executor(lb.generate(&spec, |_, _| {})).unwrap();
    assert!(report.throttled > 0, "6,000 records/s is more than 4 shards take");
    assert!(report.due_work.iter().any(|r| r.contains("scaled from 4 to 8 shards")), "{:?}", report.due_work);
    let described = lb.streams().describe("auto").unwrap();
    assert_eq!(described.open_shards().count(), 8);
    // A provisioned stream never scales by itself.
    lb.streams().create("fixed", Some(1), None).unwrap();
    let spec = GenerateSpec { stream: "fixed".into(), ..spec };
    futures_executor(lb.generate(&spec, |_, _| {})).unwrap();
    assert_eq!(lb.streams().describe("fixed").unwrap().open_shards().count(), 1);
}

/// A stream table is scanned a chunk at a time from the shard logs: every record once,
/// parents before children, in order, as a snapshot of when the query was planned.
#[test]
fn a_stream_table_reads_every_record_once_across_chunks_and_reshards() {
    let (_dir, lb) = open();
    let streams = lb.streams();
    streams.create("big", Some(1), None).unwrap();
    let mut n = 0;
    let mut put = |count: usize| {
        for _ in 0..count / 500 {
            let entries = (0..500).map(|_| { n += 1; PutEntry { partition_key: format!("k{}", n % 7), data: Bytes::from(format!(r#"{{"n":{n}}}"#)), explicit_hash_key: None } }).collect();
            assert!(streams.put_records("big", entries).unwrap().iter().all(Result::is_ok));
            lb.clock().advance(Duration::from_secs(1)).unwrap();
        }
    };
    put(12_000);
    streams.split("big", "shardId-000000000000", None).unwrap();
    put(9_000);
    let run = |sql: &str| {
        let results = futures_executor(lb.sql().run(sql, "default")).unwrap();
        arrow_cast::pretty::pretty_format_batches(&results[0].batches).unwrap().to_string()
    };
    let text = run("SELECT count(*) AS c, count(DISTINCT n) AS d, min(n) AS lo, max(n) AS hi, count(DISTINCT shard_id) AS s FROM streams.big");
    assert!(text.contains("| 21000 | 21000 | 1  | 21000 | 3 |"), "{text}");
    // Scan order is the log order (the parent's 12,000 first); it matches the console read.
    let whole: Vec<String> = streams.read("big", &ReadFrom::TrimHorizon).unwrap().into_iter().map(|(_, r)| String::from_utf8(r.data.to_vec()).unwrap()).collect();
    let results = futures_executor(lb.sql().run("SELECT data FROM streams.big", "default")).unwrap();
    let scanned: Vec<String> = results[0]
        .batches
        .iter()
        .flat_map(|b| b.column(0).as_any().downcast_ref::<arrow_array::StringArray>().unwrap().iter().map(|v| v.unwrap().to_string()).collect::<Vec<_>>())
        .collect();
    assert_eq!(scanned, whole);
    assert!(scanned[..12_000].iter().enumerate().all(|(i, d)| *d == format!(r#"{{"n":{}}}"#, i + 1)));
    assert!(results[0].batches.len() > 2, "read in chunks, not one batch");
}
