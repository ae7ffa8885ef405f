"""%stream through the real kernel: routing shown per put, PutRecords' per-record results,
every iterator type with NextShardIterator, throttling on the manual clock, resharding with
parent-first reads, the seeded generator, consumers with checkpoints that survive a restart,
bulk loads, SQL over streams, and AWS-named errors that leave the kernel running."""

from __future__ import annotations

import json
import re
from pathlib import Path

from kernel_harness import Kernel, put_object

START = "%clock manual --at 2026-03-01T10:00:00Z"


def text(ex) -> str:
    return ex.result["text/plain"]


def test_put_shows_the_shard_md5_routing_picked(kernel: Kernel) -> None:
    kernel.ok(START)
    created = kernel.ok("%stream create clicks --shards 4")
    assert "Created stream clicks (provisioned, 4 shard(s), retention 24 h" in created.stream(), created.describe()
    assert "170141183460469231731687303715884105728" in text(created), "shard 2 starts at 2^127"
    # MD5("z") = fbade9e3… is in the top quarter of the hash space: shard 3.
    put = text(kernel.ok("%stream put clicks --partition-key z --data hello"))
    assert "shardId-000000000003" in put and "334539238117652783139009887043263471063" in put, put
    put = text(kernel.ok("%stream put clicks --partition-key a --data hello"))
    assert "shardId-000000000000" in put, put
    described = text(kernel.ok("%stream describe clicks"))
    assert "OPEN" in described and "writes up to 4 MiB/s, 4000 records/s" in described, described


def test_cell_put_reports_each_record_and_the_failed_count(kernel: Kernel) -> None:
    kernel.ok(START)
    kernel.ok("%stream create events --shards 1")
    body = "\n".join(json.dumps({"user": f"u{i % 3}", "n": i}) for i in range(5)) + '\n{"n": 99}\n'
    ex = kernel.ok("%%stream put events --partition-key-field user\n" + body)
    table = text(ex)
    assert "FailedRecordCount: 1" in table and "1 PutRecords call(s)" in table, table
    assert "InvalidArgumentException" in table, "the record without a user field has no partition key"
    # 1,000 records per second per shard: the 1,001st line in the same second is throttled.
    body = "\n".join(f"r{i}" for i in range(1001))
    table = text(kernel.ok("%%stream put events --partition-key k\n" + body))
    assert "FailedRecordCount: 6" in table and "3 PutRecords call(s)" in table, table
    assert "ProvisionedThroughputExceededException" in table, table
    kernel.ok("%clock advance 1s")
    assert "FailedRecordCount: 0" in text(kernel.ok("%%stream put events --partition-key k\nafter a second\n"))


def test_every_iterator_type_and_next_shard_iterator(kernel: Kernel) -> None:
    kernel.ok(START)
    kernel.ok("%stream create orders --shards 1")
    sequences = []
    for i in range(4):
        put = text(kernel.ok(f"%stream put orders -k o --data order-{i}"))
        sequences.append(re.search(r"49\d{54}", put).group(0))
        kernel.ok("%clock advance 10s")
    kernel.ok("%stream limits orders off")

    def get(flags: str) -> tuple[str, str]:
        ex = kernel.ok(f"%stream get orders --shard 0 {flags}")
        return text(ex), ex.stream()

    table, meta = get("--iterator TRIM_HORIZON --limit 2")
    assert "order-0" in table and "order-1" in table and "order-2" not in table, table
    assert "MillisBehindLatest: 20000" in meta, meta
    nxt = re.search(r"NextShardIterator: (\w+)", meta).group(1)
    table, meta = text(kernel.ok(f"%stream get orders --shard-iterator {nxt}")), ""
    assert "order-2" in table and "order-3" in table and "order-1" not in table, table
    assert "order-3" in get(f"--iterator AT_SEQUENCE_NUMBER --sequence-number {sequences[3]}")[0]
    table = get(f"--iterator AFTER_SEQUENCE_NUMBER --sequence-number {sequences[2]}")[0]
    assert "order-3" in table and "order-2" not in table, table
    table = get("--iterator AT_TIMESTAMP --timestamp 2026-03-01T10:00:15Z")[0]
    assert "order-2" in table and "order-1" not in table, table
    table, meta = get("--iterator LATEST")
    assert "0 rows" in table and "MillisBehindLatest: 0" in meta, table
    # Iterators expire after five minutes of engine time.
    kernel.ok("%clock advance 6m")
    kernel.failing(f"%stream get orders --shard-iterator {nxt}", "ExpiredIteratorException")


def test_split_reads_parent_first_and_scale_follows_the_half_to_double_rule(kernel: Kernel) -> None:
    kernel.ok(START)
    kernel.ok("%stream create trips --shards 1")
    kernel.ok("%%stream put trips -k car\n" + "\n".join(f"before-{i}" for i in range(3)))
    split = kernel.ok("%stream split trips 0")
    assert "Split shardId-000000000000 into shardId-000000000001 and shardId-000000000002" in split.stream()
    described = text(split)
    assert "CLOSED" in described and described.count("shardId-000000000000") >= 3, described
    kernel.ok("%%stream put trips -k car\n" + "\n".join(f"after-{i}" for i in range(3)))
    table = text(kernel.ok("%stream read trips"))
    order = re.findall(r"(before|after)-(\d)", table)
    assert order == [("before", "0"), ("before", "1"), ("before", "2"), ("after", "0"), ("after", "1"), ("after", "2")], table
    kernel.failing("%stream scale trips --shards 5", "InvalidArgumentException")
    scaled = kernel.ok("%stream scale trips --shards 3")
    assert "Scaled trips to 3 open shard(s)" in scaled.stream()
    merge = kernel.failing("%stream merge trips 3 5", "InvalidArgumentException")
    assert "not adjacent" in merge.content["evalue"]
    merged = kernel.ok("%stream merge trips 3 4")
    assert "into shardId-000000000006" in merged.stream(), merged.describe()


def test_generator_is_deterministic_with_a_seed(start_kernel, tmp_path: Path) -> None:
    outputs = []
    for run in range(2):
        kernel = start_kernel(home=tmp_path / f"ws{run}", name=f"run{run}")
        kernel.ok(START)
        kernel.ok("%stream create clicks --shards 2")
        ex = kernel.ok("%stream generate clicks --template clickstream --rate 20/s --duration 5s --seed 7")
        assert "Generated 100 record(s) into clicks over 5s (20/s): 100 stored, 0 throttled" in ex.stream(), ex.describe()
        assert "Manual clock advanced to 2026-03-01T10:00:05Z" in ex.stream()
        outputs.append(text(kernel.ok("%stream read clicks")))
        kernel.stop()
    assert outputs[0] == outputs[1]
    assert '"event_type":' in outputs[0] and "user_" in outputs[0]


def test_throttling_generator_and_limits_off(kernel: Kernel) -> None:
    kernel.ok(START)
    kernel.ok("%stream create small --shards 1")
    ex = kernel.ok("%stream generate small --template iot --rate 1500/s --duration 2s --seed 1")
    assert "3000 record(s)" in ex.stream() and "2000 stored, 1000 throttled" in ex.stream(), ex.describe()
    assert "ProvisionedThroughputExceededException" in ex.stream("stderr")
    kernel.ok("%stream limits small off")
    ex = kernel.ok("%stream generate small --template iot --rate 1500/s --duration 1s --seed 2")
    assert "1500 stored, 0 throttled" in ex.stream(), ex.describe()


def test_consumers_checkpoint_and_survive_a_restart(start_kernel) -> None:
    first = start_kernel(name="first")
    first.ok(START)
    first.ok("%stream create pay --shards 2")
    first.ok("%%stream put pay --partition-key-field id\n" + "\n".join(json.dumps({"id": f"p{i}"}) for i in range(6)))
    got = text(first.ok("%stream consume pay --app billing --limit 4"))
    assert "4 rows" in got, got
    first.stop()
    second = start_kernel(name="second")
    rest = text(second.ok("%stream consume pay --app billing"))
    assert "2 rows" in rest, rest
    leases = text(second.ok("%stream leases pay --app billing"))
    assert "shardId-000000000000" in leases and "49" in leases, leases
    assert "0 rows" in text(second.ok("%stream consume pay --app billing"))
    registered = second.ok("%stream consumer register pay dashboard")
    assert "own 2 MiB/s per shard" in registered.stream() and "dashboard" in text(registered)
    got = second.ok("%stream get pay --shard 0 --consumer dashboard")
    assert "NextShardIterator" in got.stream()
    second.failing("%stream get pay --shard 0 --consumer nobody", "ResourceNotFoundException")


def test_bulk_load_from_a_file_and_sql_over_the_stream(kernel: Kernel, kernel_cwd: Path, lake_home: Path) -> None:
    kernel.ok(START)
    kernel.ok("%stream create sensors --shards 2")
    lines = [json.dumps({"device": f"d{i % 4}", "temp": 20 + i % 10, "ts": f"2026-03-01T10:{i // 60:02d}:{i % 60:02d}Z"}) for i in range(180)]
    (kernel_cwd / "sensors.jsonl").write_text("\n".join(lines) + "\n")
    loaded = kernel.ok("%stream put sensors --partition-key-field device --from sensors.jsonl")
    assert re.search(r"sensors\.jsonl\s*┆\s*180\s*┆\s*0", text(loaded)), text(loaded)
    ex = kernel.ok(
        "%%sql\nSELECT date_bin(INTERVAL '1 minute', ts) AS minute, count(*) AS n, round(avg(temp), 2) AS avg_temp\n"
        "FROM streams.sensors GROUP BY 1 ORDER BY 1"
    )
    table = text(ex)
    assert "2026-03-01 10:00:00" in table and "2026-03-01 10:02:00" in table and "┆ 60 " in table, table
    joined = text(kernel.ok("%sql SELECT count(*) AS n FROM streams.sensors s WHERE s.partition_key = 'd1' AND shard_id LIKE 'shardId-%'"))
    assert "45" in joined, joined
    # Joined with a reference table from the catalog.
    put_object(lake_home, "lake/ref/devices/devices.csv", "device,room,floor\nd0,lab,1\nd1,lab,1\nd2,hall,0\nd3,roof,5\n")
    kernel.ok("%crawl s3://lake/ref/devices/ --database ref")
    rooms = text(kernel.ok("%sql SELECT r.room, count(*) AS n FROM streams.sensors s JOIN ref.devices r ON s.device = r.device GROUP BY 1 ORDER BY 1"))
    assert re.search(r"hall\s*┆ 45", rooms) and re.search(r"lab\s*┆ 90", rooms) and re.search(r"roof\s*┆ 45", rooms), rooms


def test_errors_are_aws_named_and_the_kernel_stays_up(kernel: Kernel) -> None:
    kernel.ok("%stream create real --shards 1")
    ex = kernel.failing("%stream put reel -k a --data x", "ResourceNotFoundException")
    assert "did you mean real?" in "\n".join(ex.content["traceback"]), ex.describe()
    kernel.failing("%stream create real --shards 1", "ResourceInUseException")
    kernel.failing("%stream create big --shards 501", "InvalidArgumentException")
    kernel.failing("%stream create short --shards 1 --retention 12h", "InvalidArgumentException")
    kernel.failing("%stream get real --shard 7", "ResourceNotFoundException")
    kernel.failing("%stream get real --shard 0 --iterator AT_SEQUENCE_NUMBER --sequence-number 12", "InvalidArgumentException")
    kernel.failing("%stream put real --data x", "UsageError")
    kernel.failing("%stream generate real --template nonsense", "InvalidArgumentException")
    kernel.failing("%stream generate real --rate fast", "InvalidArgumentException")
    assert "real" in text(kernel.ok("%stream list"))


def test_records_survive_a_kernel_restart(start_kernel) -> None:
    first = start_kernel(name="first")
    first.ok("%stream create keep --on-demand --retention 48h")
    first.ok("%%stream put keep -k a\none\ntwo\nthree")
    first.stop()
    second = start_kernel(name="second")
    table = text(second.ok("%stream read keep"))
    assert re.findall(r"one|two|three", table) == ["one", "two", "three"], table
    described = text(second.ok("%stream describe keep"))
    assert "on-demand" in described and "retention 48 h" in described, described
