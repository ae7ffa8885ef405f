//! Firehose-style delivery through the engine, on the manual clock: size and interval
//! triggers, object keys, per-prefix buffers with dynamic partitioning, every compression,
//! Parquet conversion with its failures, transform result states, durable buffers across a
//! restart, and a stream source whose checkpoints survive a restart without duplicates.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lakebook_engine::firehose::{Compression, Config, Conversion, PartitionKey, Trigger};
use lakebook_engine::{Lakebook, S3Uri};

fn open_at(dir: &std::path::Path) -> Lakebook {
    Lakebook::open(dir.join("ws")).unwrap()
}

fn open() -> (tempfile::TempDir, Lakebook) {
    let dir = tempfile::tempdir().unwrap();
    let lb = open_at(dir.path());
    lb.clock().set_manual(Some("2026-01-02T03:04:05Z".parse::<DateTime<Utc>>().unwrap())).unwrap();
    lb.lake().create_bucket("dest").unwrap();
    (dir, lb)
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn config(prefix: &str) -> Config {
    Config { bucket: "dest".into(), prefix: prefix.into(), buffer_mb: Some(1), buffer_interval_s: Some(60), ..Config::default() }
}

fn records(items: &[&str]) -> Vec<Bytes> {
    items.iter().map(|s| Bytes::from(s.to_string())).collect()
}

/// Every object under s3://dest/ with its content.
fn objects(lb: &Lakebook) -> Vec<(String, Bytes)> {
    block(async {
        let listing = lb.lake().list(&S3Uri::parse("s3://dest/").unwrap(), true).await.unwrap();
        let mut out = Vec::new();
        for o in listing.objects {
            let uri = S3Uri { bucket: "dest".into(), key: o.key.clone() };
            out.push((o.key, lb.lake().get(&uri).await.unwrap()));
        }
        out
    })
}

#[test]
fn interval_and_size_triggers_and_the_default_key() {
    let (_dir, lb) = open();
    let fh = lb.firehose();
    fh.create("web", config("logs/")).unwrap();
    let put = block(fh.put("web", records(&["a", "b", "c"]))).unwrap();
    assert!(put.results.iter().all(Result::is_ok) && put.delivered.is_empty());
    lb.clock().advance(Duration::from_secs(59)).unwrap();
    assert!(block(lb.run_due_work()).iter().all(|r| !r.contains("firehose")), "59 s < the 60 s interval");
    lb.clock().advance(Duration::from_secs(1)).unwrap();
    let reports = block(lb.run_due_work());
    assert!(reports.iter().any(|r| r.contains("firehose delivered 3 record(s)")), "{reports:?}");
    let objs = objects(&lb);
    assert_eq!(objs.len(), 1);
    let (key, body) = &objs[0];
    // <prefix>yyyy/MM/dd/HH/<stream>-<version>-yyyy-MM-dd-HH-mm-ss-<uuid>, the oldest record's time.
    let re = regex_lite(key);
    assert!(re, "{key}");
    assert_eq!(&body[..], b"abc", "records are concatenated verbatim");
    // The size trigger does not wait for the clock: 1 MB in one put is delivered at once.
    let big: Vec<Bytes> = (0..3).map(|_| Bytes::from(vec![b'x'; 400 * 1024])).collect();
    let put = block(fh.put("web", big)).unwrap();
    assert_eq!(put.delivered.objects.len(), 1);
    assert_eq!(put.delivered.objects[0].records, 3);
    let (d, fills) = fh.describe("web").unwrap();
    assert!(fills.is_empty());
    assert_eq!((d.metrics.incoming_records, d.metrics.delivered_records, d.metrics.delivered_objects), (6, 6, 2));
}

fn regex_lite(key: &str) -> bool {
    let Some(rest) = key.strip_prefix("logs/2026/01/02/03/web-1-2026-01-02-03-04-05-") else { return false };
    rest.len() == 36 && rest.chars().filter(|c| *c == '-').count() == 4
}

#[test]
fn dynamic_partitioning_keeps_one_buffer_per_evaluated_prefix() {
    let (_dir, lb) = open();
    let fh = lb.firehose();
    let mut cfg = config("customer=!{partitionKeyFromQuery:customer}/year=!{timestamp:yyyy}/");
    cfg.error_prefix = Some("errors/!{firehose:error-output-type}/".into());
    cfg.partition_keys = vec![PartitionKey::parse("customer=.customer.id").unwrap()];
    cfg.newline = true;
    fh.create("orders", cfg).unwrap();
    let put = block(fh.put("orders", records(&[r#"{"customer":{"id":"a"},"n":1}"#, r#"{"customer":{"id":"b"},"n":2}"#, r#"{"customer":{"id":"a"},"n":3}"#, r#"{"n":4}"#]))).unwrap();
    assert!(put.results.iter().all(Result::is_ok));
    assert_eq!(fh.describe("orders").unwrap().1.len(), 3, "buffers: customer a, customer b, and the failed record");
    let delivered = block(fh.deliver("orders", Trigger::Force)).unwrap().objects;
    assert_eq!(delivered.len(), 3);
    let objs = objects(&lb);
    let a = objs.iter().find(|(k, _)| k.starts_with("customer=a/year=2026/orders-1-")).expect("customer a");
    assert_eq!(&a.1[..], b"{\"customer\":{\"id\":\"a\"},\"n\":1}\n{\"customer\":{\"id\":\"a\"},\"n\":3}\n");
    assert!(objs.iter().any(|(k, _)| k.starts_with("customer=b/year=2026/")));
    let failed = objs.iter().find(|(k, _)| k.starts_with("errors/partitioning-failed/")).expect("error object");
    let doc: serde_json::Value = serde_json::from_slice(failed.1.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(doc["rawData"], "eyJuIjo0fQ==", "base64 of {{\"n\":4}}");
    // Expressions need an error prefix, and keys must be defined.
    assert_eq!(fh.create("x", config("!{timestamp:yyyy}/")).unwrap_err().code(), "InvalidArgumentException");
    let mut undefined = config("!{partitionKeyFromQuery:zone}/");
    undefined.error_prefix = Some("e/".into());
    assert_eq!(fh.create("y", undefined).unwrap_err().code(), "InvalidArgumentException");
}

#[test]
fn every_compression_is_applied_and_named() {
    let (_dir, lb) = open();
    for (name, compression) in [("g", Compression::Gzip), ("z", Compression::Zip), ("s", Compression::Snappy), ("h", Compression::HadoopSnappy)] {
        let mut cfg = config(&format!("{name}/"));
        cfg.compression = compression;
        lb.firehose().create(name, cfg).unwrap();
        block(lb.firehose().put(name, records(&["hello ", "world"]))).unwrap();
        let delivered = block(lb.firehose().deliver(name, Trigger::Force)).unwrap().objects;
        assert!(delivered[0].uri.ends_with(compression.extension()), "{}", delivered[0].uri);
    }
    for (key, body) in objects(&lb) {
        let mut text = Vec::new();
        match key.split('/').next().unwrap() {
            "g" => {
                flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut text).unwrap();
            }
            "s" => {
                snap::read::FrameDecoder::new(&body[..]).read_to_end(&mut text).unwrap();
            }
            "h" => text = snap::raw::Decoder::new().decompress_vec(&body[8..]).unwrap(),
            "z" => {
                let mut archive = zip::ZipArchive::new(std::io::Cursor::new(body.to_vec())).unwrap();
                archive.by_index(0).unwrap().read_to_end(&mut text).unwrap();
            }
            other => panic!("unexpected object {other}"),
        }
        assert_eq!(text, b"hello world", "{key}");
    }
}

#[test]
fn parquet_conversion_and_transform_result_states() {
    let (_dir, lb) = open();
    lb.catalog().create_database("web", "").unwrap();
    block(lb.sql().run("CREATE EXTERNAL TABLE web.clicks (id bigint, page string) STORED AS PARQUET LOCATION 's3://dest/clicks/'", "web")).unwrap();
    let mut cfg = config("clicks/");
    cfg.buffer_mb = Some(64);
    cfg.error_prefix = Some("errors/!{firehose:error-output-type}/".into());
    cfg.conversion = Some(Conversion { format: "parquet".into(), table: "web.clicks".into() });
    // The transform drops page views of /health and fails records that are not JSON.
    cfg.transform = Some(
        "SELECT record_id, data, CASE WHEN data NOT LIKE '{%' THEN 'ProcessingFailed' WHEN data LIKE '%/health%' THEN 'Dropped' ELSE 'Ok' END AS result FROM records".into(),
    );
    let small = config("x/");
    let mut too_small = small.clone();
    too_small.conversion = cfg.conversion.clone();
    assert_eq!(lb.firehose().create("tiny", too_small).unwrap_err().code(), "InvalidArgumentException", "conversion wants ≥ 64 MB");
    lb.firehose().create("clicks", cfg).unwrap();
    let input = [r#"{"id":1,"page":"/"}"#, r#"{"id":2,"page":"/health"}"#, "not json", r#"{"id":"three","page":"/cart"}"#, r#"{"id":4,"page":"/cart","extra":1}"#];
    let put = block(lb.firehose().put("clicks", records(&input))).unwrap();
    assert!(put.results.iter().all(Result::is_ok), "every record is acknowledged; failures go to the error prefix");
    let delivered = block(lb.firehose().deliver("clicks", Trigger::Force)).unwrap().objects;
    let kinds: Vec<Option<&str>> = delivered.iter().map(|o| o.error_output_type.as_deref()).collect();
    assert!(kinds.contains(&None) && kinds.contains(&Some("processing-failed")) && kinds.contains(&Some("format-conversion-failed")), "{kinds:?}");
    let data = delivered.iter().find(|o| o.error_output_type.is_none()).unwrap();
    assert!(data.uri.starts_with("s3://dest/clicks/2026/01/02/03/clicks-1-") && data.uri.ends_with(".parquet"), "{}", data.uri);
    assert_eq!(data.records, 2);
    let rows = block(lb.sql().run("SELECT id, page FROM web.clicks ORDER BY id", "web")).unwrap();
    let text = arrow_cast::pretty::pretty_format_batches(&rows[0].batches).unwrap().to_string();
    assert!(text.contains("| 1  | /     |") && text.contains("| 4  | /cart |"), "{text}");
    let (d, _) = lb.firehose().describe("clicks").unwrap();
    assert_eq!(d.metrics.dropped_records, 1);
    assert_eq!(d.metrics.failed_records.get("processing-failed"), Some(&1));
    assert_eq!(d.metrics.failed_records.get("format-conversion-failed"), Some(&1));
}

#[test]
fn buffered_records_survive_a_restart_and_are_delivered_once() {
    let (dir, lb) = open();
    lb.firehose().create("durable", config("d/")).unwrap();
    block(lb.firehose().put("durable", records(&["1,", "2,", "3,"]))).unwrap();
    drop(lb);
    let lb = open_at(dir.path());
    assert_eq!(lb.firehose().describe("durable").unwrap().1[0].records, 3);
    lb.clock().advance(Duration::from_secs(60)).unwrap();
    block(lb.run_due_work());
    assert!(block(lb.firehose().deliver("durable", Trigger::Force)).unwrap().is_empty(), "nothing left to deliver");
    drop(lb);
    let lb = open_at(dir.path());
    block(lb.firehose().put("durable", records(&["4,"]))).unwrap();
    block(lb.firehose().deliver("durable", Trigger::Force)).unwrap();
    let bodies: Vec<String> = objects(&lb).into_iter().map(|(_, b)| String::from_utf8(b.to_vec()).unwrap()).collect();
    assert_eq!(bodies.concat().len(), "1,2,3,4,".len(), "{bodies:?}");
}

#[test]
fn a_stream_source_is_read_from_its_checkpoints_across_restarts() {
    let (dir, lb) = open();
    lb.streams().create("clicks", Some(2), None).unwrap();
    lb.streams().put_record("clicks", "before", Bytes::from_static(b"old,"), None).unwrap();
    let mut cfg = config("from-stream/");
    cfg.source = Some("stream:clicks".into());
    lb.firehose().create("fromstream", cfg).unwrap();
    assert_eq!(block(lb.firehose().put("fromstream", records(&["x"]))).unwrap_err().code(), "InvalidArgumentException");
    for i in 0..10 {
        lb.streams().put_record("clicks", &format!("k{i}"), Bytes::from(format!("r{i},")), None).unwrap();
    }
    lb.clock().advance(Duration::from_secs(1)).unwrap();
    block(lb.run_due_work());
    assert_eq!(lb.firehose().describe("fromstream").unwrap().0.metrics.incoming_records, 10, "from LATEST at creation: the old record is not read");
    drop(lb);
    let lb = open_at(dir.path());
    for i in 10..15 {
        lb.streams().put_record("clicks", &format!("k{i}"), Bytes::from(format!("r{i},")), None).unwrap();
    }
    lb.clock().advance(Duration::from_secs(120)).unwrap();
    block(lb.run_due_work());
    block(lb.run_due_work());
    let all: String = objects(&lb).into_iter().map(|(_, b)| String::from_utf8(b.to_vec()).unwrap()).collect();
    let mut got: Vec<&str> = all.split(',').filter(|s| !s.is_empty()).collect();
    got.sort_by_key(|s| s[1..].parse::<u32>().unwrap());
    assert_eq!(got, (0..15).map(|i| format!("r{i}")).collect::<Vec<_>>(), "each record delivered exactly once");
}
