"""%emr through the real kernel: cluster states on the manual clock, a Hadoop-streaming step
whose reducer proves grouping and sort order, a map-only job with the task environment, SQL
steps from a cell body, queued steps with ActionOnFailure, task logs, usage and service
errors, an interrupt that cancels a running step, and clusters surviving a kernel restart."""

from __future__ import annotations

import re
import time

from kernel_harness import Kernel

# Prints each key once with its values in arrival order: proves a reducer sees a key's lines
# together (a key seen twice would print twice) and in sorted key order.
GROUPS = r"""
import sys
groups = []
for line in sys.stdin:
    key, _, value = line.rstrip("\n").partition("\t")
    if groups and groups[-1][0] == key:
        groups[-1][1].append(value)
    else:
        groups.append((key, [value]))
for key, values in groups:
    print(key + "\t" + ",".join(sorted(values)))
"""


def setup_lake(kernel: Kernel) -> None:
    kernel.ok("%clock manual --at 2026-05-04T08:00:00Z")
    kernel.ok("%lake mb s3://jobs")
    kernel.ok("%%lake put s3://jobs/in/a.txt\nb\t2\na\t1\nc\t3\nünï\t\nnotab")
    kernel.ok("%%lake put s3://jobs/in/b.txt\na\t4\nb\t5")
    kernel.ok("%%lake put s3://jobs/in/_ignored.txt\nz\t9")
    kernel.ok("%%lake put s3://jobs/code/groups.py\n" + GROUPS)


def test_cluster_states_follow_the_manual_clock(kernel: Kernel) -> None:
    kernel.ok("%clock manual --at 2026-05-04T08:00:00Z")
    created = kernel.ok("%emr create lab --core 2 --task 1 --task-market spot --slots 2").stream()
    assert re.search(r"Created cluster lab \(j-[0-9A-Z]{13}, emr-7\.5\.0\): 1 master, 2 core, 1 task node\(s\), 6 slot\(s\); STARTING", created), created
    assert "BOOTSTRAPPING" in kernel.ok("%clock advance 60s").stream()
    ready = kernel.ok("%clock advance 30s").stream()
    assert "is WAITING" in ready, ready
    described = kernel.ok("%emr describe lab")
    nodes = described.of_type("display_data")[0]["content"]["data"]["text/plain"]
    assert nodes.count("RUNNING") == 4 and "SPOT" in nodes, nodes
    listed = kernel.ok("%emr list").result["text/plain"]
    assert re.search(r"lab\s+┆ WAITING", listed), listed
    kernel.failing("%emr create lab", "ValidationException")
    missing = kernel.failing("%emr describe lba", "ResourceNotFoundException")
    assert "lab" in "\n".join(missing.error["traceback"]), missing.describe()
    assert "TERMINATING" in kernel.ok("%emr terminate lab").stream()
    assert "TERMINATED" in kernel.ok("%clock advance 1m").stream()
    kernel.failing("%emr step lab --mapper cat --reducers 0 --input s3://jobs/in/ --output s3://jobs/out/", "InvalidRequestException")


def test_streaming_step_groups_sorts_and_counts(kernel: Kernel) -> None:
    setup_lake(kernel)
    kernel.ok("%emr create lab --core 1 --slots 2")
    step = kernel.ok(
        "%emr step lab --name groups --mapper cat --reducer 'python3 groups.py' --files s3://jobs/code/groups.py "
        "--input s3://jobs/in/ --output s3://jobs/out/"
    )
    assert re.search(r"step groups \(s-[0-9A-Z]{13}\) COMPLETED → s3://jobs/out/", step.stream()), step.describe()
    counters = step.result["text/plain"]
    assert re.search(r"Map input records\s+┆ 7 ", counters) and re.search(r"Reduce input groups\s+┆ 5 ", counters), counters
    listing = kernel.ok("%lake ls s3://jobs/out/").result["text/plain"]
    assert "out/_SUCCESS" in listing and "out/part-00000" in listing, listing
    # keys sorted bytewise, each key's values together; a line without a tab is a key with an
    # empty value; the `_` file is not input
    assert kernel.ok("%lake cat s3://jobs/out/part-00000").stream() == "a\t1,4\nb\t2,5\nc\t3\nnotab\t\nünï\t\n"
    exists = kernel.failing("%emr step lab --mapper cat --reducers 0 --input s3://jobs/in/ --output s3://jobs/out/", "StepFailed")
    assert "already exists" in exists.error["evalue"], exists.describe()


def test_map_only_job_sees_the_task_environment(kernel: Kernel) -> None:
    setup_lake(kernel)
    kernel.ok("%emr create lab --core 2 --slots 1")
    mapper = "sh -c 'while read l; do echo \"$mapreduce_map_input_file\"; done'"
    step = kernel.ok(f"%emr step lab --mapper \"{mapper}\" --reducers 0 --input s3://jobs/in/ --output s3://jobs/maponly/")
    assert re.search(r"Launched reduce tasks\s+┆ 0 ", step.result["text/plain"]), step.describe()
    parts = kernel.ok("%lake ls s3://jobs/maponly/").result["text/plain"]
    assert "part-00000" in parts and "part-00001" in parts, parts  # one part per map task
    text = kernel.ok("%lake cat s3://jobs/maponly/part-00000").stream() + kernel.ok("%lake cat s3://jobs/maponly/part-00001").stream()
    assert sorted(text.split()) == ["s3://jobs/in/a.txt"] * 5 + ["s3://jobs/in/b.txt"] * 2, text


def test_sql_step_from_the_cell_body_and_queued_steps_with_action_on_failure(kernel: Kernel) -> None:
    setup_lake(kernel)
    kernel.ok("%catalog create-database jobs")
    kernel.ok("%emr create lab --core 1")
    step = kernel.ok(
        "%%emr step lab --type sql --name squares --output s3://jobs/squares/ --table jobs.squares\n"
        "SELECT value AS n, value * value AS square FROM generate_series(1, 5)"
    )
    assert "COMPLETED → s3://jobs/squares/" in step.stream(), step.describe()
    executions = step.result["text/plain"]
    assert re.search(r"┆ DML\s+┆ SUCCEEDED\s+┆", executions) and "CREATE TABLE jobs.squares" in executions, step.describe()
    total = kernel.ok("%sql SELECT sum(square) AS total FROM jobs.squares").result["text/plain"]
    assert re.search(r"│ 55\s+│", total), total

    # queued: a failing step that cancels the rest, then a step that never runs
    kernel.ok("%emr step lab --name bad --mapper false --reducers 0 --input s3://jobs/in/b.txt --output s3://jobs/bad/ --action-on-failure cancel-and-wait --no-wait")
    queued = kernel.ok("%emr step lab --name later --mapper cat --reducers 0 --input s3://jobs/in/ --output s3://jobs/later/ --no-wait")
    later = re.search(r"\((s-[0-9A-Z]{13})\): PENDING", queued.stream()).group(1)
    failed = kernel.failing("%emr run lab", "StepFailed")
    assert "failed 4 times" in failed.error["evalue"], failed.describe()
    assert re.search(rf"step later \({later}\) CANCELLED", failed.stream()), failed.describe()
    bad = re.search(r"step bad \((s-[0-9A-Z]{13})\)", failed.error["evalue"]).group(1)
    logs = kernel.ok(f"%emr logs lab {bad}").result["text/plain"]
    assert logs.count("attempt_") == 4, logs
    steps = kernel.ok("%emr steps lab").result["text/plain"]
    assert "COMPLETED" in steps and "FAILED" in steps and "CANCELLED" in steps, steps
    assert "no pending steps" in kernel.ok("%emr run lab").stream()


def test_usage_errors_name_what_is_missing(kernel: Kernel) -> None:
    kernel.ok("%emr create lab")
    assert "--mapper" in kernel.failing("%emr step lab --input s3://jobs/in/ --output s3://jobs/o/", "UsageError").error["evalue"]
    assert "--reducers 0" in kernel.failing("%emr step lab --mapper cat --input s3://jobs/in/ --output s3://jobs/o/", "UsageError").error["evalue"]
    assert "statement" in kernel.failing("%emr step lab --type sql", "UsageError").error["evalue"]
    assert "cell body" in kernel.failing("%%emr list\nSELECT 1", "UsageError").error["evalue"]
    assert "--split-size" in kernel.failing("%emr step lab --mapper cat --reducers 0 --input s3://jobs/in/ --output s3://jobs/o/ --split-size 0", "UsageError").error["evalue"]
    kernel.failing("%emr lose-node lab", "UsageError")
    kernel.failing("%emr cancel lab s-NOSUCHSTEP000", "ResourceNotFoundException")


def test_interrupt_cancels_a_running_step_and_the_kernel_goes_on(kernel: Kernel) -> None:
    setup_lake(kernel)
    kernel.ok("%emr create lab --core 1")
    kernel.ok("%clock advance 90s")
    msg_id = kernel.execute_async("%emr step lab --name slow --mapper 'sleep 60' --reducers 0 --input s3://jobs/in/b.txt --output s3://jobs/slow/")
    time.sleep(1.5)
    assert not kernel.has_reply(msg_id), "the step should still be running"
    sent = time.monotonic()
    kernel.send("control", "interrupt_request", {})
    reply = kernel.reply(msg_id, timeout=10)
    assert time.monotonic() - sent < 2.0
    assert reply["content"]["ename"] == "KeyboardInterrupt", reply
    steps = kernel.ok("%emr steps lab").result["text/plain"]
    assert re.search(r"slow\s+┆ streaming ┆ CANCELLED", steps), steps
    assert "WAITING" in kernel.ok("%emr describe lab").stream()
    kernel.ok("%emr step lab --mapper cat --reducers 0 --input s3://jobs/in/b.txt --output s3://jobs/after/")


def test_clusters_and_steps_survive_a_kernel_restart(start_kernel) -> None:
    first = start_kernel(name="first")
    setup_lake(first)
    first.ok("%emr create keep --core 1")
    first.ok("%emr step keep --mapper cat --reducers 0 --input s3://jobs/in/b.txt --output s3://jobs/kept/")
    first.stop()

    second = start_kernel(name="second")
    steps = second.ok("%emr steps keep").result["text/plain"]
    assert "COMPLETED" in steps, steps
    assert "WAITING" in second.ok("%emr describe keep").stream()


# The guides' sample mapper: Python 2 (`print "…"`), run by its `#!/usr/bin/python` line.
PY2_SPLITTER = """#!/usr/bin/python
import sys
import re
pattern = re.compile("[a-zA-Z][a-zA-Z0-9]*")
for line in sys.stdin:
    for word in pattern.findall(line):
        print "LongValueSum:" + word.lower() + "\\t" + "1"
"""


def test_release_label_decides_python_and_aggregate_reduces(kernel: Kernel) -> None:
    kernel.ok("%clock manual --at 2026-05-04T08:00:00Z")
    kernel.ok("%lake mb s3://wcb")
    kernel.ok("%%lake put s3://wcb/in/a.txt\nThe dog, the fox\nthe end")
    kernel.ok("%%lake put s3://wcb/code/split.py\n" + PY2_SPLITTER)
    kernel.ok("%emr create old --core 1 --release-label emr-5.36.0")
    kernel.ok("%emr create new --core 1")
    step = "--files s3://wcb/code/split.py --mapper split.py --reducer aggregate --input s3://wcb/in/ --output s3://wcb/{}/"
    ran = kernel.ok("%emr step old " + step.format("old"))
    assert "COMPLETED" in ran.stream(), ran.describe()
    assert kernel.ok("%lake cat s3://wcb/old/part-00000").stream() == "dog\t1\nend\t1\nfox\t1\nthe\t3\n"
    # emr-7's /usr/bin/python is Python 3: the same script is a SyntaxError in the task log
    failed = kernel.failing("%emr step new " + step.format("new"), "StepFailed")
    step_id = re.search(r"\((s-[0-9A-Z]+)\)", "\n".join(failed.error["traceback"]) + failed.stream()).group(1)
    logs = kernel.ok(f"%emr logs new {step_id}").result["text/plain"]
    assert "SyntaxError" in logs, logs
    kernel.failing("%emr create bad --release-label emr-3.11.0", "ValidationException")


def test_aws_cli_emr_steps_queue_run_and_fail_as_hadoop_would(kernel: Kernel) -> None:
    kernel.ok("%clock manual --at 2026-05-04T08:00:00Z")
    kernel.ok("%lake mb s3://wcb")
    kernel.ok("%%lake put s3://wcb/in/a.txt\nLongValueMax:x\t3\nLongValueMax:x\t9\nUniqValueCount:u\tp\nUniqValueCount:u\tp")
    created = kernel.ok("%aws emr create-cluster --release-label emr-7.5.0 --instance-type m5.xlarge --instance-count 3 "
                        "--steps Type=STREAMING,Name=agg,Args=[-mapper,cat,-reducer,aggregate,-combiner,aggregate,-input,s3://wcb/in/,-output,s3://wcb/out/] "
                        "Type=STREAMING,Name=typo,Args=[--files,x.py,-mapper,x.py,-input,s3://wcb/in/,-output,s3://wcb/typo/]").stream()
    cluster = re.search(r'"ClusterId": "(j-[0-9A-Z]+)"', created).group(1)
    assert '"ClusterArn": "arn:aws:elasticmapreduce:' in created, created
    steps = kernel.ok(f"%aws emr list-steps --cluster-id {cluster} --query Steps[].[Name,Status.State] --output text").stream()
    assert steps.split() == ["typo", "PENDING", "agg", "PENDING"], steps
    first = kernel.ok(f"%aws emr list-steps --cluster-id {cluster} --step-states PENDING --query Steps[-1].Id --output text").stream().strip()
    kernel.ok(f"%aws emr wait step-complete --cluster-id {cluster} --step-id {first}")
    # sorted by the whole key, type prefix included (LongValueMax:x before UniqValueCount:u)
    assert kernel.ok("%lake cat s3://wcb/out/part-00000").stream() == "x\t9\nu\t1\n"
    described = kernel.ok(f"%aws emr describe-step --cluster-id {cluster} --step-id {first}").stream()
    assert '"hadoop-streaming"' in described and '"aggregate"' in described and '"COMPLETED"' in described, described
    typo = kernel.ok(f"%aws emr list-steps --cluster-id {cluster} --query Steps[0]").stream()
    assert "Unrecognized option: --files" in typo and '"FAILED"' in typo, typo
    kernel.failing(f"%aws emr add-steps --cluster-id {cluster} --steps Type=HIVE,Args=[-f,s3://wcb/q.sql]", "ValidationException")
    missing = kernel.failing("%aws emr describe-cluster --cluster-id j-NOPE", "ResourceNotFoundException")
    assert "when calling the DescribeCluster operation" in missing.error["evalue"], missing.describe()
