//! Crash safety of stream puts: a separate process (`lakebook put-records`) puts records in
//! a loop and is killed with SIGKILL at a random point, 20 times. After reopening the
//! workspace every acknowledged record is present with the sequence number it was given, in
//! order, and every record present is exactly one that was sent (nothing torn or corrupt).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use lakebook_engine::Lakebook;
use lakebook_engine::streams::ReadFrom;

const TRIALS: usize = 20;

/// The record sent as line `n`: JSON with a partition key and padding that varies in length,
/// so frames straddle write boundaries at different offsets.
fn line(n: u64) -> String {
    format!(r#"{{"k":"key{}","n":{n},"pad":"{}"}}"#, n % 7, "x".repeat((n % 97) as usize))
}

/// xorshift64*: enough randomness for kill times, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn sigkill_never_loses_an_acknowledged_record_nor_leaves_a_corrupt_one() {
    let seed = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    println!("kill-time seed {seed}");
    let mut rng = Rng(seed);
    let mut total_acked = 0;
    for trial in 0..TRIALS {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("ws");
        {
            let engine = Lakebook::open(&home).unwrap();
            engine.streams().create("crash", Some(3), None).unwrap();
            engine.streams().set_limits("crash", false).unwrap();
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_lakebook"))
            .args(["put-records", "crash", "--partition-key-field", "k", "--home"])
            .arg(&home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start lakebook put-records");
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            // Feeds lines until the child dies (broken pipe).
            for n in 0.. {
                if writeln!(stdin, "{}", line(n)).is_err() {
                    break;
                }
            }
        });
        let acks: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let reader = {
            let acks = acks.clone();
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                let mut stdout = BufReader::new(stdout);
                let mut ack = String::new();
                // An acknowledgement is a whole line: the kill can cut the last one short, and a
                // client never saw that one end.
                while matches!(stdout.read_line(&mut ack), Ok(n) if n > 0) && ack.ends_with('\n') {
                    let (shard, sequence) = ack.trim_end().split_once('\t').expect("SHARD\\tSEQUENCE");
                    acks.lock().unwrap().push((shard.to_string(), sequence.to_string()));
                    ack.clear();
                }
            })
        };
        // Kill at a random point: sometimes before the first acknowledgement, mostly after.
        let delay = Duration::from_millis(rng.next() % 400);
        let started = Instant::now();
        while started.elapsed() < delay {
            std::thread::sleep(Duration::from_millis(1));
        }
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
        writer.join().unwrap();
        reader.join().unwrap();
        let acks = acks.lock().unwrap().clone();
        total_acked += acks.len();

        let engine = Lakebook::open(&home).unwrap();
        let stored = engine.streams().read("crash", &ReadFrom::TrimHorizon).unwrap();
        let by_sequence: HashMap<&str, (&str, String)> =
            stored.iter().map(|(shard, r)| (r.sequence_number.as_str(), (shard.as_str(), String::from_utf8(r.data.to_vec()).unwrap()))).collect();
        // Every acknowledged record (the n-th ack is line n) is there, intact, where it was put.
        for (n, (shard, sequence)) in acks.iter().enumerate() {
            assert_ne!(shard, "-", "trial {trial}: record {n} failed: {sequence}");
            let (stored_shard, data) = by_sequence.get(sequence.as_str()).unwrap_or_else(|| panic!("trial {trial}: acknowledged record {n} ({sequence}) is missing"));
            assert_eq!((stored_shard, data.as_str()), (&shard.as_str(), line(n as u64).as_str()), "trial {trial}: record {n}");
        }
        // Nothing present is corrupt: each record is a line that was sent, each shard holds
        // them in the order they were sent (a batch may be stored before its acknowledgement
        // was printed, so there can be more records than acknowledgements).
        let mut last_n: HashMap<&str, i64> = HashMap::new();
        for (shard, record) in &stored {
            let data = String::from_utf8(record.data.to_vec()).unwrap();
            let n: u64 = serde_json::from_str::<serde_json::Value>(&data).unwrap()["n"].as_u64().unwrap();
            assert_eq!(data, line(n), "trial {trial}: a stored record is not one that was sent");
            let last = last_n.entry(shard.as_str()).or_insert(-1);
            assert!(n as i64 > *last, "trial {trial}: {shard} out of order");
            *last = n as i64;
        }
        assert!(stored.len() >= acks.len(), "trial {trial}");
        println!("trial {trial}: killed after {delay:?}, {} acknowledged, {} stored", acks.len(), stored.len());
    }
    assert!(total_acked > 0, "no trial got as far as an acknowledgement: the test proved nothing");
}
