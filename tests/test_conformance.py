"""jupyter_kernel_test conformance suite against the installed 'lakebook' kernelspec.

Every sample attribute KernelTests (jupyter_kernel_test 0.7) knows is set, so no test of the
suite is skipped. The class shares one kernel and one workspace; tests run in alphabetical
order, but every sample is written to hold in any order:

- setUp puts the clock back to system mode (silently, outside history), because
  `code_clear_output` needs a real wait while the execute_result samples switch to manual;
- `code_history_pattern` matches exactly one distinct cell of everything this class runs, as
  the 'unique' sub-test demands (history is persisted in the workspace and searched whole).

IopubWelcomeTests (JEP 65 iopub_welcome on an XPUB socket) is not used: the behaviour
contract does not ask for it, and with support_iopub_welcome=False the test only skips.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import jupyter_kernel_test as jkt  # not `from … import KernelTests`: pytest would collect it
from jupyter_client.manager import start_new_kernel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_harness import check_kernelspec, put_object  # noqa: E402


class LakebookKernelTests(jkt.KernelTests):
    kernel_name = "lakebook"

    # test_kernel_info
    language_name = "rust"
    file_extension = ".rs"

    # test_execute_stdout: setUpClass creates s3://demo/hello.txt before the kernel starts
    code_hello_world = "%lake cat s3://demo/hello.txt"

    # test_execute_stderr: the bucket exists → ok, warning (BucketAlreadyOwnedByYou) on stderr
    code_stderr = "%lake mb s3://demo"

    # test_completion: matches are compared as sets, exactly
    completion_samples = [
        {"text": "%la", "matches": ["%lake"]},
        {"text": "%%la", "matches": ["%%lake", "%%lakebook-allow-error"]},
        {"text": "%cl", "matches": ["%clock"]},
        {"text": "%lsm", "matches": ["%lsmagic"]},
        {"text": "%lake l", "matches": ["ls"]},
        {"text": "%lake r", "matches": ["rb", "rm"]},
        {"text": "%clock ma", "matches": ["manual"]},
        {"text": "%clock a", "matches": ["advance"]},
        {"text": "%lake ls s3://demo --rec", "matches": ["--recursive"]},
        {"text": "%lake rb s3://demo --fo", "matches": ["--force"]},
    ]

    # test_is_complete
    complete_code_samples = [
        "%lsmagic",
        "%clock",
        "%clock manual --at 2026-01-01T00:00:00Z\n%clock",
        "%lake ls s3://demo --recursive",
        "%lake cat 's3://demo/hello.txt'",
        "%%lake put s3://demo/notes.txt\nfirst line\nsecond line\n\n",  # a cell magic ends with an empty line
    ]
    incomplete_code_samples = [
        "%lake cat 's3://demo/hello.txt",  # open quote
        '%lake cat "s3://demo/hello.txt',  # open quote
        "%lake ls s3://demo \\",  # trailing backslash
        "%%lake put s3://demo/notes.txt",  # cell magic without a body yet
        "%%lake put s3://demo/notes.txt\nfirst line",  # … or not ended by an empty line (IPython's rule)
    ]
    invalid_code_samples = [
        "%nosuchmagic",
        "%%nosuchmagic\nsome body",
    ]

    # test_pager
    code_page_something = "%lake?"

    # test_error: exactly one iopub output, the error (NoSuchKey)
    code_generate_error = "%lake cat s3://demo/missing.txt"

    # test_execute_result (and test_history, which re-runs these codes)
    code_execute_result = [
        {
            "code": "%clock manual --at 2026-01-01T00:00:00Z\n%clock",
            "result": "2026-01-01T00:00:00Z (manual)",
        },
        {
            "code": "%clock manual --at 2026-06-30T23:59:00Z\n%clock advance 1m30s\n%clock",
            "result": "2026-07-01T00:00:30Z (manual)",
        },
        {"code": "%help clock", "mime": "text/plain"},
        {"code": "%lsmagic", "mime": "text/plain"},
        {"code": "%lake ls s3://demo", "mime": "text/html"},
    ]

    # test_display_data: a value of a non-final stacked magic is display_data
    code_display_data = [
        {"code": "%lake ls s3://demo\n%clock", "mime": "text/html"},
        {"code": "%lake ls s3://demo\n%clock", "mime": "text/plain"},
        {"code": "%lake info\n%lsmagic", "mime": "text/html"},
    ]

    # test_history: glob; must match exactly ONE distinct cell (the 'unique' sub-test) — the
    # first execute_result sample — and at least 3 history entries (the 'n=3' sub-test).
    code_history_pattern = "%clock manual --at 2026-01-*?%clock"
    supported_history_operations = ("tail", "range", "search")

    # test_inspect
    code_inspect_sample = "%lake"

    # test_clear_output: the progress display is the cell's only output → clear_output, then a
    # one-line stdout summary. Needs the system clock (setUp).
    code_clear_output = "%clock wait 300ms"

    @classmethod
    def setUpClass(cls) -> None:
        check_kernelspec()
        cls._tmp = Path(tempfile.mkdtemp(prefix="lakebook-conformance-"))
        home = cls._tmp / "home"
        put_object(home, "demo/hello.txt", "hello, world\n")
        saved = os.environ.get("LAKEBOOK_HOME")
        os.environ["LAKEBOOK_HOME"] = str(home)
        try:
            cls.km, cls.kc = start_new_kernel(kernel_name=cls.kernel_name, cwd=str(cls._tmp))
        finally:
            if saved is None:
                os.environ.pop("LAKEBOOK_HOME", None)
            else:
                os.environ["LAKEBOOK_HOME"] = saved

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            super().tearDownClass()
        finally:
            shutil.rmtree(cls._tmp, ignore_errors=True)

    def setUp(self) -> None:
        super().setUp()
        self._quietly("%clock system")

    def _quietly(self, code: str, timeout: float = 15) -> None:
        """Run code silently (no output, no history), wait for its reply and idle."""
        msg_id = self.kc.execute(code, silent=True, store_history=False)
        deadline = time.monotonic() + timeout
        while True:
            reply = self.kc.get_shell_msg(timeout=max(0.01, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        self.assertEqual(reply["content"]["status"], "ok", f"{code!r} failed: {reply['content']}")
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(0.01, deadline - time.monotonic()))
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
            ):
                break
        self.flush_channels()


class LakebookRustKernelTests(LakebookKernelTests):
    """The same suite with Rust samples: plain cells run in the lakebook-rust worker (evcxr).
    The magic samples of the class above stay where Rust has no counterpart (the pager, the
    progress display that clears itself)."""

    code_hello_world = 'println!("hello, world");'
    code_stderr = 'eprintln!("careful: {}", 1 + 1);'
    completion_samples = [
        {"text": "let numbers: Vec<i32> = Vec::new();\nnumbers.is_em", "matches": ["is_empty()"]},
        {"text": "std::collections::BTreeS", "matches": ["BTreeSet"]},
        {"text": "%la", "matches": ["%lake"]},
    ]
    complete_code_samples = ["let x = 1;", "fn f() {\n}", "let s = \"{\";", "%clock\nlet y = [1, 2];"]
    incomplete_code_samples = ["fn f() {", "let v = vec![1,", "let s = \"open", "%clock\nstruct S {"]
    invalid_code_samples = ["%nosuchmagic"]
    code_generate_error = 'let n: i32 = "one";'
    code_execute_result = [
        {"code": "6 * 7", "result": "42"},
        {"code": "let answer: i32 = 40;\nanswer + 2", "result": "42"},
        {"code": 'format!("{}-{}", "a", 1)', "result": '"a-1"'},
    ]
    # a magic stacked above Rust displays its value; the Rust's value is the result
    code_display_data = [{"code": "%lake ls s3://demo\nlet shown = 1;", "mime": "text/html"}]
    code_history_pattern = "let answer*"
    code_inspect_sample = "Vec::new"

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        # The first plain cell starts the worker (evcxr compiles its first crate): done here,
        # so each sample runs within the suite's 15 s.
        msg_id = cls.kc.execute("let warm: i32 = 1;", silent=True, store_history=False)
        while True:
            reply = cls.kc.get_shell_msg(timeout=180)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "ok", reply["content"]
