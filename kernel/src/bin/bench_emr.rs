//! EMR streaming word count against the shell pipeline (not a test).
//!
//!     cargo run --bin bench_emr -- [MEGABYTES]
//!
//! Writes a deterministic English-like text of MEGABYTES (default 200) into the lake, then runs
//! the word count of notebooks/05-emr (the same Python mapper and reducer) three ways in one
//! run:
//!   - the peer: `python3 mapper.py < text | LC_ALL=C sort | python3 reducer.py`;
//!   - an EMR streaming step on a cluster with 1 map slot and 1 reducer;
//!   - the same step with 2 map slots (maps in parallel).
//!
//! Splits are 32 MB. Every output is checked to be the same counts. Targets: the 1-slot step
//! ≤ 1.2× the pipeline's time, the 2-slot step faster than the pipeline. Prints one JSON line.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{DateTime, Utc};
use lakebook_engine::emr::{ActionOnFailure, ClusterConfig, StepConfig, StepKind, StepState, StreamingStep};
use lakebook_engine::{Lakebook, S3Uri};
use rand::{Rng, SeedableRng};

/// The kernel's allocator, so the benchmark measures what the kernel runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const MAPPER: &str = r#"import re
import sys

for line in sys.stdin:
    for word in re.findall(r"[a-z']+", line.lower()):
        print(f"{word}\t1")
"#;

const REDUCER: &str = r#"import sys

current, total = None, 0
for line in sys.stdin:
    word, count = line.rstrip("\n").split("\t")
    if word != current:
        if current is not None:
            print(f"{current}\t{total}")
        current, total = word, 0
    total += int(count)
if current is not None:
    print(f"{current}\t{total}")
"#;

const WORDS: &[&str] = &[
    "the", "of", "and", "to", "a", "in", "that", "it", "was", "he", "i", "his", "you", "with", "as", "for", "had", "is", "her", "not", "but", "at", "on",
    "she", "be", "have", "by", "which", "him", "they", "this", "from", "all", "were", "my", "we", "one", "so", "said", "me", "there", "or", "an", "are",
    "no", "would", "their", "if", "been", "when", "them", "will", "what", "who", "more", "out", "into", "up", "man", "could", "time", "some", "very",
    "little", "then", "any", "upon", "about", "may", "its", "only", "now", "than", "do", "can", "like", "well", "great", "sea", "whale", "ship", "truth",
    "fortune", "wife", "times", "age", "wisdom", "season", "light", "darkness", "spring", "hope", "winter", "despair", "everything", "nothing",
    "ishmael", "money", "purse", "shore", "watery", "world", "spleen", "circulation", "neighbourhood", "daughters", "property", "feelings", "o'clock",
];

/// Zipf-like text: lines of 8–14 words drawn with weight 1/rank.
fn write_text(path: &Path, bytes: usize) -> usize {
    let weights: Vec<f64> = (1..=WORDS.len()).map(|r| 1.0 / r as f64).collect();
    let total: f64 = weights.iter().sum();
    let cumulative: Vec<f64> = weights.iter().scan(0.0, |acc, w| {
        *acc += w / total;
        Some(*acc)
    }).collect();
    let mut random = rand::rngs::StdRng::seed_from_u64(5);
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut written = 0;
    let mut line = String::new();
    while written < bytes {
        line.clear();
        for i in 0..random.random_range(8..=14) {
            let u: f64 = random.random();
            let word = WORDS[cumulative.partition_point(|c| *c < u).min(WORDS.len() - 1)];
            if i == 0 {
                let mut chars = word.chars();
                line.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                line.push_str(chars.as_str());
            } else {
                line.push(' ');
                line.push_str(word);
            }
        }
        line.push_str(".\n");
        out.write_all(line.as_bytes()).unwrap();
        written += line.len();
    }
    out.flush().unwrap();
    written
}

fn sorted_lines(text: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(text).lines().map(str::to_string).collect();
    lines.sort();
    lines
}

fn main() {
    let megabytes: usize = std::env::args().nth(1).map_or(200, |n| n.parse().expect("MEGABYTES is a number"));
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
    lb.clock().set_manual(Some(start)).unwrap();
    lb.lake().create_bucket("books").unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();

    let text = dir.path().join("text.txt");
    let bytes = write_text(&text, megabytes * 1_000_000);
    let scripts = dir.path().join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    std::fs::write(scripts.join("mapper.py"), MAPPER).unwrap();
    std::fs::write(scripts.join("reducer.py"), REDUCER).unwrap();
    runtime.block_on(async {
        lb.lake().put(&S3Uri::parse("s3://books/input/text.txt").unwrap(), std::fs::read(&text).unwrap().into()).await.unwrap();
        lb.lake().put(&S3Uri::parse("s3://books/code/mapper.py").unwrap(), bytes::Bytes::from_static(MAPPER.as_bytes())).await.unwrap();
        lb.lake().put(&S3Uri::parse("s3://books/code/reducer.py").unwrap(), bytes::Bytes::from_static(REDUCER.as_bytes())).await.unwrap();
    });

    // the peer: the shell pipeline, on the same file
    let started = Instant::now();
    let piped = Command::new("sh")
        .arg("-c")
        .arg(format!("python3 mapper.py < {} | LC_ALL=C sort | python3 reducer.py", text.display()))
        .current_dir(&scripts)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let pipeline_s = started.elapsed().as_secs_f64();
    assert!(piped.status.success(), "the pipeline failed");
    let expected = sorted_lines(&piped.stdout);

    let step = |cluster: &str, slots: u32| -> f64 {
        lb.emr().create_cluster(cluster, ClusterConfig { core: 1, slots_per_node: slots, ..ClusterConfig::default() }).unwrap();
        let mut streaming = StreamingStep::new(
            "python3 mapper.py",
            Some("python3 reducer.py"),
            vec![S3Uri::parse("s3://books/input/").unwrap()],
            S3Uri::parse(&format!("s3://books/{cluster}/")).unwrap(),
        );
        streaming.split_size = Some(32 << 20);
        streaming.files = vec![S3Uri::parse("s3://books/code/mapper.py").unwrap(), S3Uri::parse("s3://books/code/reducer.py").unwrap()];
        let config = StepConfig { name: "word count".into(), action_on_failure: ActionOnFailure::Continue, kind: StepKind::Streaming(streaming) };
        lb.emr().add_step(cluster, config).unwrap();
        let started = Instant::now();
        let ran = runtime.block_on(lb.emr().run_pending(cluster, lb.sql(), &mut |_| {})).unwrap();
        let elapsed = started.elapsed().as_secs_f64();
        assert_eq!(ran[0].state, StepState::Completed, "{:?}", ran[0].reason);
        let output = runtime.block_on(lb.lake().get(&S3Uri::parse(&format!("s3://books/{cluster}/part-00000")).unwrap())).unwrap();
        assert!(sorted_lines(&output) == expected, "the {cluster} step counted differently from the pipeline");
        elapsed
    };
    let one_slot_s = step("one-slot", 1);
    let two_slots_s = step("two-slots", 2);

    println!(
        "{{\"bench\":\"emr_wordcount\",\"input_mb\":{:.1},\"distinct_words\":{},\"pipeline_s\":{pipeline_s:.2},\"step_1_slot_s\":{one_slot_s:.2},\"step_2_slots_s\":{two_slots_s:.2},\
         \"ratio_1_slot\":{:.3},\"ratio_2_slots\":{:.3},\"target\":\"1-slot ratio <= 1.2, 2-slot ratio < 1.0\"}}",
        bytes as f64 / 1e6,
        expected.len(),
        one_slot_s / pipeline_s,
        two_slots_s / pipeline_s
    );
}
