//! EMR: cluster and step state machines on the manual clock, Hadoop-streaming jobs with real
//! processes (grouping, sort order, partitions, splits, compression, map-only, combiners),
//! retries and ActionOnFailure, node losses, persistence, interrupts and SQL steps.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use lakebook_engine::clock::parse_time;
use lakebook_engine::emr::{
    ActionOnFailure, AttemptState, ClusterConfig, ClusterState, LossTrigger, Market, NodeKind, NodeState, Phase, SqlStep, Step,
    StepConfig, StepKind, StepState, StreamingStep,
};
use lakebook_engine::{Lakebook, S3Uri};

const T0: &str = "2026-01-01T00:00:00Z";

async fn setup() -> (tempfile::TempDir, Lakebook) {
    let dir = tempfile::tempdir().unwrap();
    let lb = Lakebook::open(dir.path().join("ws")).unwrap();
    lb.clock().set_manual(Some(parse_time(T0).unwrap())).unwrap();
    lb.lake().create_bucket("lake").unwrap();
    (dir, lb)
}

fn uri(text: &str) -> S3Uri {
    S3Uri::parse(text).unwrap()
}

async fn put(lb: &Lakebook, at: &str, data: impl Into<Bytes>) {
    lb.lake().put(&uri(at), data.into()).await.unwrap();
}

fn job(mapper: &str, reducer: Option<&str>, input: &str, output: &str) -> StreamingStep {
    StreamingStep::new(mapper, reducer, vec![uri(input)], uri(output))
}

fn step(name: &str, spec: StreamingStep) -> StepConfig {
    StepConfig { name: name.into(), action_on_failure: ActionOnFailure::Continue, kind: StepKind::Streaming(spec) }
}

/// Adds the steps and runs them, returning them as they ended.
async fn run(lb: &Lakebook, cluster: &str, steps: Vec<StepConfig>) -> Vec<Step> {
    for s in steps {
        lb.emr().add_step(cluster, s).unwrap();
    }
    lb.emr().run_pending(cluster, lb.sql(), &mut |_| {}).await.unwrap()
}

async fn run_one(lb: &Lakebook, cluster: &str, spec: StreamingStep) -> Step {
    run(lb, cluster, vec![step("job", spec)]).await.pop().unwrap()
}

fn completed(step: &Step) -> &Step {
    assert_eq!(step.state, StepState::Completed, "step failed: {:?}", step.reason);
    step
}

/// The part files under a prefix, by file name.
async fn parts(lb: &Lakebook, prefix: &str) -> BTreeMap<String, String> {
    let listing = lb.lake().list(&uri(prefix), true).await.unwrap();
    let mut out = BTreeMap::new();
    for o in listing.objects {
        let data = lb.lake().get(&S3Uri { bucket: o.bucket, key: o.key.clone() }).await.unwrap();
        out.insert(o.key.rsplit('/').next().unwrap().to_string(), String::from_utf8(data.to_vec()).unwrap());
    }
    out
}

/// All output lines of a job's part files, sorted.
async fn output_lines(lb: &Lakebook, prefix: &str) -> Vec<String> {
    let mut lines: Vec<String> = parts(lb, prefix)
        .await
        .iter()
        .filter(|(name, _)| name.starts_with("part-"))
        .flat_map(|(_, text)| text.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    lines.sort();
    lines
}

fn cluster_config(core: u32, task: u32, slots: u32) -> ClusterConfig {
    ClusterConfig { core, task, slots_per_node: slots, ..ClusterConfig::default() }
}

#[tokio::test]
async fn cluster_states_follow_the_engine_clock() {
    let (_dir, lb) = setup().await;
    let t0 = parse_time(T0).unwrap();
    let c = lb.emr().create_cluster("lab", cluster_config(2, 1, 2)).unwrap();
    assert!(c.id.starts_with("j-") && c.id.len() == 15);
    assert_eq!(c.state, ClusterState::Starting);
    assert_eq!(c.nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["ip-10-0-0-1", "ip-10-0-1-1", "ip-10-0-1-2", "ip-10-0-2-1"]);
    assert_eq!(lb.emr().create_cluster("lab", ClusterConfig::default()).unwrap_err().code(), "ValidationException");

    lb.clock().advance(Duration::from_secs(59)).unwrap();
    assert!(lb.run_due_work().await.iter().all(|r| !r.contains("EMR")));
    assert_eq!(lb.emr().describe("lab").unwrap().state, ClusterState::Starting);
    lb.clock().advance(Duration::from_secs(1)).unwrap();
    assert!(lb.run_due_work().await.iter().any(|r| r.contains(&c.id) && r.ends_with("is BOOTSTRAPPING")));
    lb.clock().advance(Duration::from_secs(30)).unwrap();
    lb.run_due_work().await;
    let waiting = lb.emr().describe(&c.id).unwrap();
    assert_eq!(waiting.state, ClusterState::Waiting);
    assert_eq!(waiting.ready, Some(t0 + chrono::Duration::seconds(90)));
    assert!(waiting.nodes.iter().all(|n| n.state == NodeState::Running));

    // Unknown names get a did-you-mean hint.
    let err = lb.emr().describe("lb").unwrap_err();
    assert_eq!(err.code(), "ResourceNotFoundException");
    assert_eq!(err.hint(), Some("did you mean lab?"));

    // Terminate: pending steps are cancelled, TERMINATING lasts 30 s, then no more steps.
    let pending = lb.emr().add_step("lab", step("never", job("cat", None, "s3://lake/in/", "s3://lake/out/"))).unwrap();
    let terminating = lb.emr().terminate("lab").unwrap();
    assert_eq!(terminating.state, ClusterState::Terminating);
    assert_eq!(terminating.reason.as_ref().unwrap().code.as_deref(), Some("USER_REQUEST"));
    assert_eq!(lb.emr().describe_step("lab", &pending.id).unwrap().state, StepState::Cancelled);
    lb.clock().advance(Duration::from_secs(30)).unwrap();
    lb.run_due_work().await;
    let ended = lb.emr().describe("lab").unwrap();
    assert_eq!(ended.state, ClusterState::Terminated);
    assert!(ended.nodes.iter().all(|n| n.state == NodeState::Terminated));
    let err = lb.emr().add_step("lab", step("late", job("cat", None, "s3://lake/in/", "s3://lake/out/"))).unwrap_err();
    assert_eq!(err.code(), "InvalidRequestException");
    // The name is free again once the cluster is terminated.
    let again = lb.emr().create_cluster("lab", ClusterConfig::default()).unwrap();
    assert_ne!(again.id, c.id);
    assert_eq!(lb.emr().describe("lab").unwrap().id, again.id);
    assert_eq!(lb.emr().clusters().len(), 2);
}

#[tokio::test]
async fn run_pending_advances_a_manual_clock_to_ready_and_stamps_steps() {
    let (_dir, lb) = setup().await;
    let t0 = parse_time(T0).unwrap();
    put(&lb, "s3://lake/in/a.txt", "x\n").await;
    lb.emr().create_cluster("c", ClusterConfig::default()).unwrap();
    let added = lb.emr().add_step("c", step("copy", job("cat", None, "s3://lake/in/", "s3://lake/out/"))).unwrap();
    assert_eq!(added.state, StepState::Pending);
    let mut phases = Vec::new();
    let ran = lb.emr().run_pending("c", lb.sql(), &mut |p| phases.push(p.phase)).await.unwrap();
    let s = completed(&ran[0]);
    assert_eq!(lb.clock().now(), t0 + chrono::Duration::seconds(90));
    assert_eq!(s.started, Some(t0 + chrono::Duration::seconds(90)));
    assert!(s.job_id.as_deref().unwrap().starts_with("job_"));
    assert_eq!(phases.first(), Some(&Phase::Provisioning));
    assert_eq!(phases.last(), Some(&Phase::Done));
    assert!(phases.contains(&Phase::Reduce) && phases.contains(&Phase::Commit));
    assert_eq!(lb.emr().describe("c").unwrap().state, ClusterState::Waiting);
    assert_eq!(parts(&lb, "s3://lake/out/").await.get("_SUCCESS").map(String::as_str), Some(""));
}

#[tokio::test]
async fn reducers_see_sorted_groups_and_keys_land_in_their_hash_partition() {
    let (_dir, lb) = setup().await;
    // Keys without a tab, empty values, unicode, repeated keys across files.
    put(&lb, "s3://lake/in/one.txt", "b\t1\na\nhello\tworld\né\tx\nzebra\t\napple\t2\n").await;
    put(&lb, "s3://lake/in/two.txt", "a\t3\nnaïve\tv\nb\t2\nhello\tagain\n").await;
    lb.emr().create_cluster("c", cluster_config(2, 0, 2)).unwrap();
    let mut spec = job("cat", None, "s3://lake/in/", "s3://lake/out/");
    spec.reducers = 3;
    let s = run_one(&lb, "c", spec).await;
    completed(&s);
    let out = parts(&lb, "s3://lake/out/").await;
    assert_eq!(out.keys().collect::<Vec<_>>(), ["_SUCCESS", "part-00000", "part-00001", "part-00002"]);
    // Text.hashCode (h = 1; h = 31h + signed byte) & MAX % 3, computed by hand:
    // a = 128 → 2, b = 129 → 0, hello = 127791473 → 2, apple = 121658361 → 0,
    // zebra = 144405413 → 2, é = -1017 → 2, naïve = -170566801 → 1.
    let expected = [("a", 2), ("b", 0), ("hello", 2), ("apple", 0), ("zebra", 2), ("é", 2), ("naïve", 1)];
    for (key, part) in expected {
        for (name, text) in out.iter().filter(|(n, _)| n.starts_with("part-")) {
            let here = text.lines().any(|l| l.split('\t').next() == Some(key));
            assert_eq!(here, *name == format!("part-{part:05}"), "key {key} in {name}");
        }
    }
    // Within a part, keys are sorted by their bytes (z < é) and equal keys are together;
    // a line without a tab reaches the reducer (and the output) as `key<TAB>`.
    assert_eq!(out["part-00002"], "a\t\na\t3\nhello\tworld\nhello\tagain\nzebra\t\né\tx\n");
    assert_eq!(out["part-00000"], "apple\t2\nb\t1\nb\t2\n");
    assert_eq!(out["part-00001"], "naïve\tv\n");
    assert_eq!(s.counters.reduce_input_groups, 7);
    assert_eq!(s.counters.reduce_input_records, 10);
    assert_eq!(s.counters.map_input_records, 10);
    assert_eq!(s.counters.launched_reduce_tasks, 3);
}

#[tokio::test]
async fn a_python_reducer_sees_each_key_once_with_many_maps_and_a_combiner() {
    let (_dir, lb) = setup().await;
    let text: String = (0..2000).map(|i| format!("w{} v{} shared\n", i % 17, i % 5)).collect();
    put(&lb, "s3://lake/words/text.txt", text.clone()).await;
    // The reducer exits 3 if a key comes back after another key: grouping is what it checks.
    let reducer = r#"import sys
seen, last, total = set(), None, 0
for line in sys.stdin:
    key, value = line.rstrip("\n").split("\t", 1)
    if key != last:
        if key in seen: sys.exit(3)
        if last is not None: print(f"{last}\t{total}")
        seen.add(key); last, total = key, 0
    total += int(value)
if last is not None: print(f"{last}\t{total}")
"#;
    put(&lb, "s3://lake/scripts/count.py", reducer).await;
    lb.emr().create_cluster("c", cluster_config(2, 1, 2)).unwrap();
    let mapper = r#"awk '{for (i = 1; i <= NF; i++) print $i "\t1"}'"#;
    let make = |output: &str, combiner: bool| {
        let mut spec = job(mapper, Some("python3 count.py"), "s3://lake/words/", output);
        spec.reducers = 4;
        spec.split_size = Some(4096);
        spec.files = vec![uri("s3://lake/scripts/count.py")];
        if combiner {
            spec.combiner = Some("python3 count.py".into());
        }
        spec
    };
    let plain = run_one(&lb, "c", make("s3://lake/plain/", false)).await;
    let combined = run_one(&lb, "c", make("s3://lake/combined/", true)).await;
    completed(&plain);
    completed(&combined);
    let expected: Vec<String> = {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for w in text.split_whitespace() {
            *counts.entry(w.to_string()).or_default() += 1;
        }
        let mut v: Vec<String> = counts.iter().map(|(k, n)| format!("{k}\t{n}")).collect();
        v.sort();
        v
    };
    assert_eq!(output_lines(&lb, "s3://lake/plain/").await, expected);
    assert_eq!(output_lines(&lb, "s3://lake/combined/").await, expected);
    assert!(plain.counters.launched_map_tasks > 4, "{:?}", plain.counters);
    assert_eq!(plain.counters.map_output_records, 6000);
    assert_eq!(plain.counters.reduce_input_records, 6000);
    assert_eq!(combined.counters.combine_input_records, 6000);
    assert!(combined.counters.combine_output_records < 6000);
    assert_eq!(combined.counters.reduce_input_records, combined.counters.combine_output_records);
    assert!(combined.counters.reduce_shuffle_bytes < plain.counters.reduce_shuffle_bytes);
    assert_eq!(plain.counters.reduce_output_records, 23);
    // Tasks ran on all three workers.
    let nodes: std::collections::BTreeSet<_> = plain.attempts.iter().map(|a| a.node.as_str()).collect();
    assert_eq!(nodes.len(), 3);
}

#[tokio::test]
async fn plain_files_are_split_and_compressed_files_are_not() {
    let (_dir, lb) = setup().await;
    let mut text = String::new();
    let mut n = 0;
    while text.len() < 1024 * 1024 {
        text.push_str(&format!("line-{n:07}\t{}\n", "p".repeat(n % 50)));
        n += 1;
    }
    text.truncate(1024 * 1024);
    // Cut mid-line at exactly 1 MiB: the last (partial) line still counts once.
    let lines = text.lines().count() as u64;
    put(&lb, "s3://lake/plain/big.txt", text.clone()).await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    put(&lb, "s3://lake/gz/big.txt.gz", gz.finish().unwrap()).await;
    let mut expected: Vec<String> = text.lines().map(|l| if l.contains('\t') { l.to_string() } else { format!("{l}\t") }).collect();
    expected.sort();

    lb.emr().create_cluster("c", ClusterConfig::default()).unwrap();
    for (input, output, maps) in [("s3://lake/plain/", "s3://lake/out-plain/", 4), ("s3://lake/gz/", "s3://lake/out-gz/", 1)] {
        let mut spec = job("cat", None, input, output);
        spec.split_size = Some(256 * 1024);
        let s = run_one(&lb, "c", spec).await;
        completed(&s);
        assert_eq!(s.counters.launched_map_tasks, maps, "{input}");
        assert_eq!(s.counters.map_input_records, lines, "{input}");
        assert_eq!(output_lines(&lb, output).await, expected, "{input}: every line read exactly once");
    }
}

#[tokio::test]
async fn map_only_jobs_write_one_part_per_map_skip_hidden_files_and_see_streaming_env() {
    let (_dir, lb) = setup().await;
    put(&lb, "s3://lake/in/a.txt", "1\n2\n").await;
    put(&lb, "s3://lake/in/b.txt", "3\n").await;
    put(&lb, "s3://lake/in/_SUCCESS", "hidden\n").await;
    put(&lb, "s3://lake/in/.b.txt.crc", "hidden\n").await;
    lb.emr().create_cluster("c", ClusterConfig::default()).unwrap();
    let mapper = r#"while read -r l; do echo "$l"; done; echo "env	$mapreduce_map_input_file $mapreduce_map_input_start $mapreduce_map_input_length $mapreduce_task_partition $mapreduce_task_ismap $mapreduce_task_attempt_id""#;
    let mut spec = job(mapper, None, "s3://lake/in/", "s3://lake/out/");
    spec.reducers = 0;
    let s = run_one(&lb, "c", spec).await;
    completed(&s);
    let out = parts(&lb, "s3://lake/out/").await;
    assert_eq!(out.keys().collect::<Vec<_>>(), ["_SUCCESS", "part-00000", "part-00001"]);
    let job_tail = s.job_id.as_deref().unwrap().strip_prefix("job_").unwrap().to_string();
    assert_eq!(out["part-00000"], format!("1\t\n2\t\nenv\ts3://lake/in/a.txt 0 4 0 true attempt_{job_tail}_m_000000_0\n"));
    assert_eq!(out["part-00001"], format!("3\t\nenv\ts3://lake/in/b.txt 0 2 1 true attempt_{job_tail}_m_000001_0\n"));
    assert_eq!(s.counters.launched_reduce_tasks, 0);
}

#[tokio::test]
async fn a_mapper_that_fails_once_is_retried_and_its_stderr_kept() {
    let (dir, lb) = setup().await;
    put(&lb, "s3://lake/in/a.txt", "k\tv\n").await;
    let marker = dir.path().join("failed-once");
    let script = format!("if [ ! -e {m} ]; then touch {m}; echo 'boom: first attempt' >&2; exit 1; fi\ncat\n", m = marker.display());
    put(&lb, "s3://lake/scripts/flaky.sh", script).await;
    lb.emr().create_cluster("c", ClusterConfig::default()).unwrap();
    let mut spec = job("sh flaky.sh", Some("cat"), "s3://lake/in/", "s3://lake/out/");
    spec.files = vec![uri("s3://lake/scripts/flaky.sh")];
    let s = run_one(&lb, "c", spec).await;
    completed(&s);
    assert_eq!(output_lines(&lb, "s3://lake/out/").await, ["k\tv"]);
    assert_eq!(s.counters.failed_map_tasks, 1);
    assert_eq!(s.counters.launched_map_tasks, 2);
    let maps: Vec<_> = s.attempts.iter().filter(|a| a.task_id.contains("_m_")).collect();
    assert_eq!(maps.iter().map(|a| (a.state, a.exit_code)).collect::<Vec<_>>(), [(AttemptState::Failed, Some(1)), (AttemptState::Succeeded, Some(0))]);
    assert!(maps[0].attempt_id.ends_with("_0") && maps[1].attempt_id.ends_with("_1"));
    let logs = lb.emr().logs("c", &s.id).unwrap();
    let failed = logs.iter().find(|l| l.task_attempt == maps[0].attempt_id).unwrap();
    assert_eq!(failed.stderr_tail, "boom: first attempt");
    assert_eq!(failed.node, maps[0].node);
}

fn always_failing() -> StreamingStep {
    let mapper = "for i in $(seq 1 25); do echo \"err $i\" >&2; done; exit 2";
    job(mapper, Some("cat"), "s3://lake/in/", "s3://lake/never/")
}

#[tokio::test]
async fn a_mapper_that_always_fails_fails_the_step_with_its_stderr_tail() {
    let (_dir, lb) = setup().await;
    put(&lb, "s3://lake/in/a.txt", "x\n").await;
    lb.emr().create_cluster("c", ClusterConfig::default()).unwrap();
    let steps = run(
        &lb,
        "c",
        vec![step("bad", always_failing()), step("good", job("cat", None, "s3://lake/in/", "s3://lake/ok/"))],
    )
    .await;
    assert_eq!(steps[0].state, StepState::Failed);
    let reason = steps[0].reason.as_ref().unwrap();
    assert_eq!(reason.code.as_deref(), Some("TaskFailed"));
    assert!(reason.message.contains("_m_000000 failed 4 times"), "{}", reason.message);
    assert!(reason.message.contains("exited with code 2"), "{}", reason.message);
    assert!(reason.message.contains("err 6\n") && reason.message.contains("err 25"), "{}", reason.message);
    assert!(!reason.message.contains("err 5\n"), "only the last 20 lines: {}", reason.message);
    assert_eq!(steps[0].counters.failed_map_tasks, 4);
    assert!(parts(&lb, "s3://lake/never/").await.is_empty(), "a failed job writes nothing");
    // CONTINUE: the next step still runs.
    completed(&steps[1]);
    assert_eq!(lb.emr().describe("c").unwrap().state, ClusterState::Waiting);
}

#[tokio::test]
async fn cancel_and_wait_and_terminate_cluster_on_failure() {
    let (_dir, lb) = setup().await;
    put(&lb, "s3://lake/in/a.txt", "x\n").await;
    lb.emr().create_cluster("wait", ClusterConfig::default()).unwrap();
    let mut bad = step("bad", always_failing());
    bad.action_on_failure = ActionOnFailure::CancelAndWait;
    let steps = run(&lb, "wait", vec![bad, step("next", job("cat", None, "s3://lake/in/", "s3://lake/o1/"))]).await;
    assert_eq!(steps.len(), 1);
    let listed = lb.emr().steps("wait").unwrap();
    assert_eq!(listed.iter().map(|s| s.state).collect::<Vec<_>>(), [StepState::Failed, StepState::Cancelled]);
    assert_eq!(lb.emr().describe("wait").unwrap().state, ClusterState::Waiting);

    lb.emr().create_cluster("term", ClusterConfig::default()).unwrap();
    let mut bad = step("bad", always_failing());
    bad.action_on_failure = ActionOnFailure::TerminateCluster;
    run(&lb, "term", vec![bad, step("next", job("cat", None, "s3://lake/in/", "s3://lake/o2/"))]).await;
    let c = lb.emr().describe("term").unwrap();
    assert_eq!(c.state, ClusterState::Terminating);
    assert_eq!(c.reason.as_ref().unwrap().code.as_deref(), Some("STEP_FAILURE"));
    assert_eq!(c.steps[1].state, StepState::Cancelled);
    lb.clock().advance(Duration::from_secs(30)).unwrap();
    lb.run_due_work().await;
    assert_eq!(lb.emr().describe("term").unwrap().state, ClusterState::TerminatedWithErrors);
}

#[tokio::test]
async fn an_existing_output_location_fails_the_step_before_anything_runs() {
    let (dir, lb) = setup().await;
    put(&lb, "s3://lake/in/a.txt", "x\n").await;
    put(&lb, "s3://lake/out/old", "keep me").await;
    lb.emr().create_cluster("c", ClusterConfig::default()).unwrap();
    let marker = dir.path().join("ran");
    let s = run_one(&lb, "c", job(&format!("touch {}; cat", marker.display()), None, "s3://lake/in/", "s3://lake/out/")).await;
    assert_eq!(s.state, StepState::Failed);
    let reason = s.reason.unwrap();
    assert_eq!(reason.code.as_deref(), Some("FileAlreadyExistsException"));
    assert!(reason.message.starts_with("Output directory s3://lake/out/ already exists"), "{}", reason.message);
    assert!(!marker.exists());
    assert_eq!(s.counters.launched_map_tasks, 0);
    assert_eq!(parts(&lb, "s3://lake/out/").await.len(), 1);
}

/// Six splits of a word-count job, for the node-loss tests.
async fn loss_input(lb: &Lakebook) -> StreamingStep {
    let text: String = (0..600).map(|i| format!("k{} k{}\n", i % 13, i % 7)).collect();
    put(lb, "s3://lake/words/t.txt", text.clone()).await;
    let mut spec = job(r#"awk '{for (i = 1; i <= NF; i++) print $i "\t1"}'"#, Some("awk -F'\t' '{n[$1] += $2} END {for (k in n) print k \"\\t\" n[k]}'"), "s3://lake/words/", "s3://lake/unused/");
    spec.split_size = Some((text.len() as u64).div_ceil(6));
    spec.reducers = 2;
    spec
}

#[tokio::test]
async fn losing_a_spot_task_node_reruns_its_maps_elsewhere_with_the_same_output() {
    let (_dir, lb) = setup().await;
    let base = loss_input(&lb).await;
    let config = ClusterConfig { task_market: Market::Spot, ..cluster_config(1, 2, 1) };
    lb.emr().create_cluster("spot", config).unwrap();
    let mut quiet = base.clone();
    quiet.output = uri("s3://lake/quiet/");
    let quiet = run_one(&lb, "spot", quiet).await;
    completed(&quiet);
    assert_eq!(quiet.counters.launched_map_tasks, 6);

    assert_eq!(lb.emr().lose_node("spot", NodeKind::Task, LossTrigger::AfterMaps(2)).unwrap(), None);
    let mut lossy = base.clone();
    lossy.output = uri("s3://lake/lossy/");
    let lossy = run_one(&lb, "spot", lossy).await;
    completed(&lossy);
    assert_eq!(output_lines(&lb, "s3://lake/lossy/").await, output_lines(&lb, "s3://lake/quiet/").await);
    // The lost node's finished map output was lost with it and its map ran again.
    assert!(lossy.counters.launched_map_tasks > 6, "{:?}", lossy.counters);
    assert!(lossy.counters.killed_map_tasks >= 1);
    // An attempt on the lost node is killed, never failed (its files vanish with the node).
    assert_eq!(lossy.counters.failed_map_tasks, 0, "{:?}", lossy.counters);
    let killed: Vec<_> = lossy.attempts.iter().filter(|a| a.state == AttemptState::Killed).collect();
    assert!(!killed.is_empty());
    let lost_node = killed[0].node.clone();
    assert!(lossy.attempts.iter().any(|a| a.task_id == killed[0].task_id && a.state == AttemptState::Succeeded && a.node != lost_node));
    let c = lb.emr().describe("spot").unwrap();
    let node = c.nodes.iter().find(|n| n.id == lost_node).unwrap();
    assert_eq!((node.kind, node.market, node.state), (NodeKind::Task, Market::Spot, NodeState::Lost));
    assert_eq!(c.group_size(NodeKind::Task), 1);
    assert_eq!(c.state, ClusterState::Waiting);
    assert!(c.armed_losses.is_empty());
}

#[tokio::test]
async fn losing_core_nodes_recovers_until_the_last_one_goes() {
    let (_dir, lb) = setup().await;
    let base = loss_input(&lb).await;
    lb.emr().create_cluster("two", cluster_config(2, 0, 2)).unwrap();
    lb.emr().lose_node("two", NodeKind::Core, LossTrigger::AfterMaps(1)).unwrap();
    let mut spec = base.clone();
    spec.output = uri("s3://lake/two/");
    completed(&run_one(&lb, "two", spec).await);
    let c = lb.emr().describe("two").unwrap();
    assert_eq!((c.state, c.group_size(NodeKind::Core)), (ClusterState::Waiting, 1));

    // Losing the last core node (now, between steps) ends the cluster with errors.
    let lost = lb.emr().lose_node("two", NodeKind::Core, LossTrigger::Now).unwrap();
    assert!(lost.is_some());
    let c = lb.emr().describe("two").unwrap();
    assert_eq!(c.state, ClusterState::Terminating);
    assert_eq!(c.reason.as_ref().unwrap().code.as_deref(), Some("INSTANCE_FAILURE"));
    lb.clock().advance(Duration::from_secs(30)).unwrap();
    lb.run_due_work().await;
    assert_eq!(lb.emr().describe("two").unwrap().state, ClusterState::TerminatedWithErrors);

    // Losing the only core node inside a step fails the step.
    lb.emr().create_cluster("one", cluster_config(1, 1, 2)).unwrap();
    lb.emr().lose_node("one", NodeKind::Core, LossTrigger::AfterMaps(1)).unwrap();
    let mut spec = base.clone();
    spec.output = uri("s3://lake/one/");
    let s = run_one(&lb, "one", spec).await;
    assert_eq!(s.state, StepState::Failed);
    assert_eq!(s.reason.as_ref().unwrap().code.as_deref(), Some("NodeLost"));
    let c = lb.emr().describe("one").unwrap();
    assert_eq!(c.state, ClusterState::Terminating);
    assert_eq!(c.nodes.iter().filter(|n| n.state == NodeState::Lost).count(), 1);
    lb.clock().advance(Duration::from_secs(30)).unwrap();
    lb.run_due_work().await;
    assert_eq!(lb.emr().describe("one").unwrap().state, ClusterState::TerminatedWithErrors);
    assert!(parts(&lb, "s3://lake/one/").await.is_empty());
}

#[tokio::test]
async fn auto_terminate_after_the_last_step_and_idle_timeout() {
    let (_dir, lb) = setup().await;
    put(&lb, "s3://lake/in/a.txt", "x\n").await;
    let auto = ClusterConfig { auto_terminate: true, ..ClusterConfig::default() };
    lb.emr().create_cluster("auto", auto).unwrap();
    completed(&run(&lb, "auto", vec![step("s", job("cat", None, "s3://lake/in/", "s3://lake/o/"))]).await[0]);
    let c = lb.emr().describe("auto").unwrap();
    assert_eq!(c.state, ClusterState::Terminating);
    assert_eq!(c.reason.as_ref().unwrap().code.as_deref(), Some("ALL_STEPS_COMPLETED"));
    lb.clock().advance(Duration::from_secs(30)).unwrap();
    lb.run_due_work().await;
    assert_eq!(lb.emr().describe("auto").unwrap().state, ClusterState::Terminated);

    let idle = ClusterConfig { idle_timeout: Some(Duration::from_secs(300)), ..ClusterConfig::default() };
    lb.emr().create_cluster("idle", idle).unwrap();
    lb.clock().advance(Duration::from_secs(90)).unwrap();
    lb.run_due_work().await;
    assert_eq!(lb.emr().describe("idle").unwrap().state, ClusterState::Waiting);
    lb.clock().advance(Duration::from_secs(299)).unwrap();
    lb.run_due_work().await;
    assert_eq!(lb.emr().describe("idle").unwrap().state, ClusterState::Waiting);
    lb.clock().advance(Duration::from_secs(1)).unwrap();
    lb.run_due_work().await;
    let c = lb.emr().describe("idle").unwrap();
    assert_eq!(c.state, ClusterState::Terminating);
    assert!(c.reason.unwrap().message.contains("5m"));
    let err = lb.emr().create_cluster("x", ClusterConfig { idle_timeout: Some(Duration::from_secs(5)), ..ClusterConfig::default() });
    assert_eq!(err.unwrap_err().code(), "ValidationException");
}

#[tokio::test]
async fn clusters_and_steps_survive_a_reopen_and_a_dead_kernel_s_running_step_ends_as_its_commit_did() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("ws");
    let (id, step) = {
        let lb = Lakebook::open(&home).unwrap();
        lb.clock().set_manual(Some(parse_time(T0).unwrap())).unwrap();
        lb.lake().create_bucket("lake").unwrap();
        put(&lb, "s3://lake/in/a.txt", "x\n").await;
        let c = lb.emr().create_cluster("keep", ClusterConfig::default()).unwrap();
        let s = run(&lb, "keep", vec![step("s", job("cat", Some("cat"), "s3://lake/in/", "s3://lake/o/"))]).await.pop().unwrap();
        (c.id, completed(&s).clone())
    };
    let lb = Lakebook::open(&home).unwrap();
    let c = lb.emr().describe(&id).unwrap();
    assert_eq!(c.state, ClusterState::Waiting);
    assert_eq!(c.steps, vec![step.clone()]);
    assert!(!lb.emr().logs(&id, &step.id).unwrap().is_empty());
    drop(lb);

    // A kernel that died mid-step left it RUNNING on disk: after its job committed
    // (`_SUCCESS` is there) the step is completed…
    let path = home.join("emr").join("clusters.json");
    let running = || {
        let text = std::fs::read_to_string(&path).unwrap().replace("\"COMPLETED\"", "\"RUNNING\"").replace("\"WAITING\"", "\"RUNNING\"");
        std::fs::write(&path, text).unwrap();
    };
    running();
    let lb = Lakebook::open(&home).unwrap();
    let c = lb.emr().describe(&id).unwrap();
    assert_eq!((c.state, c.steps[0].state), (ClusterState::Waiting, StepState::Completed));
    // …before it, the step failed and the output is as it was before the job.
    lb.lake().delete_prefix(&uri("s3://lake/o/")).await.unwrap();
    drop(lb);
    running();
    let lb = Lakebook::open(&home).unwrap();
    let c = lb.emr().describe(&id).unwrap();
    assert_eq!(c.state, ClusterState::Waiting);
    assert_eq!(c.steps[0].state, StepState::Failed);
    assert_eq!(c.steps[0].reason.as_ref().unwrap().message, "the kernel stopped while the step ran");
}

#[tokio::test]
async fn an_interrupt_kills_the_tasks_and_cancels_the_step() {
    let (dir, lb) = setup().await;
    put(&lb, "s3://lake/in/a.txt", "x\n").await;
    lb.emr().create_cluster("c", ClusterConfig::default()).unwrap();
    let pid_file = dir.path().join("pid");
    let mapper = format!("echo $$ > {}.tmp && mv {0}.tmp {0} && exec sleep 600", pid_file.display());
    let s = lb.emr().add_step("c", step("slow", job(&mapper, None, "s3://lake/in/", "s3://lake/o/"))).unwrap();
    {
        let mut quiet = |_: &_| {};
        let running = lb.emr().run_pending("c", lb.sql(), &mut quiet);
        let started = async {
            while !pid_file.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        tokio::select! {
            _ = running => panic!("the step should still be sleeping"),
            _ = started => {}
        }
    }
    let pid = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists(), "the mapper process was killed");
    let s = lb.emr().describe_step("c", &s.id).unwrap();
    assert_eq!(s.state, StepState::Cancelled);
    assert_eq!(lb.emr().describe("c").unwrap().state, ClusterState::Waiting);
}

#[tokio::test]
async fn sql_steps_run_queries_and_write_parquet_tables() {
    let (_dir, lb) = setup().await;
    put(&lb, "s3://lake/clicks/c.csv", "1,/a\n2,/b\n3,/a\n").await;
    lb.sql()
        .run("CREATE EXTERNAL TABLE clicks (user_id int, page string) ROW FORMAT DELIMITED FIELDS TERMINATED BY ',' LOCATION 's3://lake/clicks/'", "default")
        .await
        .unwrap();
    lb.emr().create_cluster("c", ClusterConfig::default()).unwrap();
    let sql = |name: &str, output: Option<&str>, table: Option<&str>| StepConfig {
        name: name.into(),
        action_on_failure: ActionOnFailure::Continue,
        kind: StepKind::Sql(SqlStep {
            sql: "SELECT page, count(*) AS hits FROM clicks GROUP BY page;".into(),
            output: output.map(uri),
            table: table.map(str::to_string),
        }),
    };
    let steps = run(&lb, "c", vec![sql("table", Some("s3://lake/hits/"), Some("default.hits")), sql("files", Some("s3://lake/hits-files/"), None), sql("query", None, None)]).await;
    for s in &steps {
        completed(s);
        assert!(!s.query_ids.is_empty());
    }
    let result = lb.sql().run("SELECT page, hits FROM hits ORDER BY page", "default").await.unwrap().pop().unwrap();
    assert_eq!(result.execution.rows, 2);
    let files = lb.lake().list(&uri("s3://lake/hits-files/"), true).await.unwrap();
    assert!(!files.objects.is_empty() && files.objects.iter().all(|o| o.key.ends_with(".parquet")), "{:?}", files.objects);
    assert!(lb.catalog().tables("default").unwrap().iter().all(|t| !t.name.starts_with("emr_")), "the temporary table is dropped");
    // A failing query fails its step with the SQL error's name.
    let bad = StepConfig { name: "bad".into(), action_on_failure: ActionOnFailure::Continue, kind: StepKind::Sql(SqlStep { sql: "SELECT * FROM nope".into(), output: None, table: None }) };
    let s = run(&lb, "c", vec![bad]).await.pop().unwrap();
    assert_eq!(s.state, StepState::Failed);
    assert_eq!(s.reason.unwrap().code.as_deref(), Some("TABLE_NOT_FOUND"));
}
