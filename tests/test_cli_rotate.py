"""
``nylas-async rotate`` against the fake Nylas over loopback.

CliRunner tests serve the fake from a thread, since the command runs
its own event loop; the kill tests run the command as a subprocess and
serve the fake from the test's loop.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from nylas_async import _journal, read_journal
from nylas_async._cli import _rotate, main
from nylas_async.testing import FakeNylas, FakeServer, Fault

KEY = "nyk_cli_test"


class Served:
    """A fake Nylas served on loopback from a thread of its own."""

    def __init__(self, fake: FakeNylas) -> None:
        self.fake = fake
        self.url = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(),)
        )

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with FakeServer(self.fake) as server:
            self.url = server.url
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> Served:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@pytest.fixture
def served() -> Iterator[Served]:
    with Served(FakeNylas(KEY)) as s:
        yield s


def _invoke(
    served: Served, *args: str, input: str | bytes | None = None
) -> Result:
    env = {"NYLAS_API_KEY": KEY, "NYLAS_API_URI": served.url}
    return CliRunner().invoke(
        main, ["rotate", *args], env=env, input=input, catch_exceptions=False
    )


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line]


@pytest.fixture
def on_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the command believe its stdout is a terminal."""
    monkeypatch.setattr(
        "nylas_async._cli._rotate._stdout_is_terminal", lambda: True
    )


class TestRotateCommand:
    def test_secrets_to_a_pipe(self, served: Served) -> None:
        """Without a journal, each line carries the new secret; exit 0."""
        ids = [served.fake.add_webhook() for _ in range(3)]

        result = _invoke(served, *ids, "--rate", "0")

        assert result.exit_code == 0, result.output
        lines = _lines(result.stdout)
        assert sorted(line["webhook_id"] for line in lines) == sorted(ids)
        for line in lines:
            assert line["outcome"] == "rotated"
            assert line["webhook_secret"] == served.fake.secret_of(
                line["webhook_id"]
            )
            assert line["request_id"]
            assert line["client_request_id"]
        assert "Rotation summary" in result.stderr

    def test_refuses_terminal(self, served: Served, on_terminal: None) -> None:
        """On a terminal with neither --journal nor --out, nothing rotates."""
        wid = served.fake.add_webhook()

        result = _invoke(served, wid)

        assert result.exit_code == 2
        assert "refusing to print new secrets on a terminal" in result.stderr
        assert served.fake.requests == []

    def test_journal_keeps_secrets_off_stdout(
        self, served: Served, on_terminal: None, tmp_path: Path
    ) -> None:
        """With --journal, stdout lines carry no secret; the journal does."""
        ids = [served.fake.add_webhook() for _ in range(3)]
        journal = tmp_path / "j.jsonl"

        result = _invoke(served, *ids, "--journal", str(journal))

        assert result.exit_code == 0, result.output
        assert all("webhook_secret" not in x for x in _lines(result.stdout))
        for webhook_id in ids:
            secret = served.fake.secret_of(webhook_id)
            assert secret not in result.output
            assert read_journal(journal)[webhook_id].webhook_secret == secret

    def test_out_file(
        self, served: Served, on_terminal: None, tmp_path: Path
    ) -> None:
        """--out receives the lines with secrets, in a file only we read."""
        wid = served.fake.add_webhook()
        out = tmp_path / "out.jsonl"

        result = _invoke(served, wid, "--out", str(out))

        assert result.exit_code == 0, result.output
        assert result.stdout == ""
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        [line] = _lines(out.read_text())
        assert line["webhook_secret"] == served.fake.secret_of(wid)

    def test_settings_repr_hides_the_api_key(self) -> None:
        """The checked options never show the API key in their repr."""
        settings = _rotate._Settings(
            ids=("wh_1",),
            ids_file=None,
            all_webhooks=False,
            journal=None,
            resume=False,
            concurrency=1,
            rate=None,
            canary=0,
            grace=0.0,
            api_key="settings-repr-key",
            api_uri=None,
            with_secrets=True,
            fsync=False,
        )

        assert "settings-repr-key" not in repr(settings)

    def test_some_failed(self, served: Served) -> None:
        """An id that does not exist fails, and the exit status is 3."""
        wid = served.fake.add_webhook()

        result = _invoke(served, wid, "nosuchwebhook")

        assert result.exit_code == 3
        outcomes = {
            x["webhook_id"]: x["outcome"] for x in _lines(result.stdout)
        }
        assert outcomes == {wid: "rotated", "nosuchwebhook": "failed"}
        assert "failed: nosuchwebhook" in result.stderr

    def test_some_unknown(self, served: Served, tmp_path: Path) -> None:
        """A rotation whose reply is lost leaves exit status 4."""
        wid = served.fake.add_webhook()
        served.fake.inject(
            Fault.drop(after_commit=True),
            Fault.rate_limited(60),
            webhook_id=wid,
        )
        journal = tmp_path / "j.jsonl"

        result = _invoke(served, wid, "--journal", str(journal))

        assert result.exit_code == 4
        assert read_journal(journal)[wid].outcome == "unknown"
        assert "--resume" in result.stderr
        assert served.fake.rotations_of(wid) == 1

    def test_resume(self, served: Served, tmp_path: Path) -> None:
        """A resumed run skips what is rotated and redoes the unknown."""
        ids = [served.fake.add_webhook() for _ in range(3)]
        served.fake.inject(
            Fault.drop(after_commit=True),
            Fault.rate_limited(60),
            webhook_id=ids[0],
        )
        journal = tmp_path / "j.jsonl"
        assert _invoke(served, *ids, "--journal", str(journal)).exit_code == 4

        result = _invoke(served, *ids, "--journal", str(journal), "--resume")

        assert result.exit_code == 0, result.output
        outcomes = {
            x["webhook_id"]: x["outcome"] for x in _lines(result.stdout)
        }
        assert outcomes == {
            ids[0]: "rotated",
            ids[1]: "skipped",
            ids[2]: "skipped",
        }
        assert [served.fake.rotations_of(w) for w in ids] == [2, 1, 1]

    def test_dry_run(self, served: Served, tmp_path: Path) -> None:
        """--dry-run says what it would do and sends nothing."""
        wid = served.fake.add_webhook()

        result = _invoke(served, wid, "bad/id", wid, "--dry-run")

        assert result.exit_code == 0, result.output
        actions = {x["webhook_id"]: x["action"] for x in _lines(result.stdout)}
        assert actions == {wid: "rotate", "bad/id": "fail"}
        assert "nothing was rotated" in result.stderr
        assert served.fake.requests == []

    def test_dry_run_resume(self, served: Served, tmp_path: Path) -> None:
        """A resumed dry run shows the ids the journal settles as skipped."""
        ids = [served.fake.add_webhook() for _ in range(2)]
        journal = tmp_path / "j.jsonl"
        _invoke(served, ids[0], "--journal", str(journal))
        served.fake.clear_requests()

        result = _invoke(
            served, *ids, "--journal", str(journal), "--resume", "--dry-run"
        )

        actions = {x["webhook_id"]: x["action"] for x in _lines(result.stdout)}
        assert actions == {ids[0]: "skip", ids[1]: "rotate"}
        assert served.fake.requests == []

    def test_canary_stops(self, served: Served) -> None:
        """A failing canary stops the command before the other ids."""
        ids = [served.fake.add_webhook() for _ in range(5)]

        result = _invoke(
            served, "nosuchwebhook", *ids, "--canary", "1", "--rate", "0"
        )

        assert result.exit_code == 3
        assert "canary failed" in result.stderr
        assert all(served.fake.rotations_of(w) == 0 for w in ids)

    def test_canary_passes(self, served: Served) -> None:
        """A good canary lets the rest go on."""
        ids = [served.fake.add_webhook() for _ in range(5)]

        result = _invoke(served, *ids, "--canary", "2")

        assert result.exit_code == 0, result.output
        assert all(served.fake.rotations_of(w) == 1 for w in ids)

    def test_all(self, served: Served) -> None:
        """--all rotates every destination the application has."""
        ids = [served.fake.add_webhook() for _ in range(7)]

        result = _invoke(served, "--all", "--rate", "0")

        assert result.exit_code == 0, result.output
        assert all(served.fake.rotations_of(w) == 1 for w in ids)

    def test_ids_from_stdin(self, served: Served) -> None:
        """--ids-file - reads ids from stdin, skipping blanks and comments."""
        ids = [served.fake.add_webhook() for _ in range(2)]
        text = f"# ids\n{ids[0]}\n\n  {ids[1]}  \n{ids[0]}\n"

        result = _invoke(served, "--ids-file", "-", input=text)

        assert result.exit_code == 0, result.output
        assert sorted(
            x["webhook_id"] for x in _lines(result.stdout)
        ) == sorted(ids)
        assert all(served.fake.rotations_of(w) == 1 for w in ids)

    def test_ids_from_file_and_arguments(
        self, served: Served, tmp_path: Path
    ) -> None:
        """Ids from arguments and a file are rotated together, once each."""
        ids = [served.fake.add_webhook() for _ in range(4)]
        path = tmp_path / "ids.txt"
        path.write_text("\n".join(ids[1:]) + "\n")

        result = _invoke(served, ids[0], ids[1], "--ids-file", str(path))

        assert result.exit_code == 0, result.output
        assert [served.fake.rotations_of(w) for w in ids] == [1, 1, 1, 1]

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            pytest.param([], "give webhook ids", id="no-ids"),
            pytest.param(["--all", "wh1"], "--all takes no", id="all-and-ids"),
            pytest.param(["wh1", "--resume"], "--resume needs", id="resume"),
            pytest.param(
                ["wh1", "--journal", "same", "--out", "same"],
                "different files",
                id="same-file",
            ),
            pytest.param(["wh1", "--concurrency", "0"], "0", id="workers"),
            pytest.param(["wh1", "--rate", "inf"], "finite", id="rate-inf"),
            pytest.param(["wh1", "--rate", "nan"], "finite", id="rate-nan"),
            pytest.param(["wh1", "--grace", "inf"], "finite", id="grace-inf"),
        ],
    )
    def test_usage_errors(
        self, served: Served, args: list[str], message: str
    ) -> None:
        """Bad usage exits 2 with a message, before any request."""
        result = _invoke(served, *args)

        assert result.exit_code == 2
        assert message in result.stderr
        assert "Traceback" not in result.output
        assert served.fake.requests == []

    def test_shared_journal_refused(
        self, served: Served, tmp_path: Path
    ) -> None:
        """A journal other users can read is refused before any request."""
        journal = tmp_path / "j.jsonl"
        journal.write_text("")
        journal.chmod(0o644)

        result = _invoke(served, "wh1", "--journal", str(journal))

        assert result.exit_code == 1
        assert "open to other users" in result.stderr
        assert served.fake.requests == []

    def test_markup_in_ids(self, served: Served) -> None:
        """Ids that look like rich markup are printed as they are."""
        result = _invoke(served, "[/x]", "[bold]a")

        assert result.exit_code == 3
        assert "failed: [/x]: malformed webhook id" in result.stderr
        assert "failed: [bold]a" in result.stderr

    def test_ids_file_not_utf8(self, served: Served, tmp_path: Path) -> None:
        """A file line that is not UTF-8 is named, before any request."""
        path = tmp_path / "ids.txt"
        path.write_bytes(b"abc\n\xff\xfe\n")

        result = _invoke(served, "--ids-file", str(path))

        assert result.exit_code == 2
        assert f"line 2 of {path} is not UTF-8 text" in result.stderr
        assert served.fake.requests == []

    def test_stdin_not_utf8(self, served: Served) -> None:
        """
        On stdin, ids before a line that is not UTF-8 are rotated, then
        the command stops there and names the line.
        """
        wid = served.fake.add_webhook()

        result = _invoke(
            served, "--ids-file", "-", input=wid.encode() + b"\n\xff\n"
        )

        assert result.exit_code == 1
        assert "line 2 of stdin is not UTF-8 text" in result.stderr
        assert served.fake.rotations_of(wid) == 1
        assert [x["webhook_id"] for x in _lines(result.stdout)] == [wid]

    def test_key_with_control_characters(self, served: Served) -> None:
        """An API key with a carriage return is refused as bad usage."""
        env = {"NYLAS_API_KEY": "a\rb", "NYLAS_API_URI": served.url}

        result = CliRunner().invoke(
            main, ["rotate", "wh1"], env=env, catch_exceptions=False
        )

        assert result.exit_code == 2
        assert "API key" in result.stderr
        assert served.fake.requests == []

    def test_missing_key(self, tmp_path: Path) -> None:
        """Without an API key the command says so, without a traceback."""
        env = {"NYLAS_API_KEY": "", "NYLAS_API_URI": "http://127.0.0.1:9"}

        result = CliRunner().invoke(main, ["rotate", "wh1"], env=env)

        assert result.exit_code == 2
        assert "no Nylas API key" in result.stderr

    def test_help_documents_exit_status(self) -> None:
        """The help names every exit status the command uses."""
        result = CliRunner().invoke(main, ["rotate", "--help"])

        listed = re.findall(r"^ +(\d+) ", result.stdout, re.MULTILINE)
        assert listed == ["0", "1", "2", "3", "4", "5", "130"]
        assert "143 by SIGTERM" in result.stdout


def _cli(*args: str) -> list[str]:
    code = "from nylas_async._cli import main; main()"
    return [sys.executable, "-c", code, "-q", "rotate", *args]


def _rotated_records(journal: Path) -> int:
    try:
        return journal.read_bytes().count(b'"outcome":"rotated"')
    except FileNotFoundError:
        return 0


async def _wait_for_records(journal: Path, rotated: int) -> None:
    # Another process writes the file: there is no event to wait on.
    async with asyncio.timeout(30):
        while _rotated_records(journal) < rotated:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


class TestKilled:
    async def test_sigkill_then_resume(self, tmp_path: Path) -> None:
        """
        A CLI killed with SIGKILL mid-batch loses no secret: resuming
        rotates what was left, and nothing already rotated again.
        """
        fake = FakeNylas(KEY, latency=0.03)
        ids = [fake.add_webhook() for _ in range(300)]
        fake.inject(*[Fault.drop(after_commit=True)] * 3, operation="rotate")
        ids_file = tmp_path / "ids.txt"
        ids_file.write_text("\n".join(ids) + "\n")
        journal = tmp_path / "journal.jsonl"

        async with FakeServer(fake) as server:
            env = {**os.environ, "NYLAS_API_KEY": KEY}
            env["NYLAS_API_URI"] = server.url
            args = _cli(
                "--ids-file", str(ids_file), "--journal", str(journal),
                "--concurrency", "4", "--rate", "0",
            )  # fmt: skip
            with (tmp_path / "err1").open("wb") as err:
                first = await asyncio.create_subprocess_exec(
                    *args,
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=err,
                )
                await _wait_for_records(journal, 40)
                first.kill()
                assert await first.wait() == -signal.SIGKILL

            before = read_journal(journal)
            done = {w for w, r in before.items() if r.outcome == "rotated"}
            counts = {w: fake.rotations_of(w) for w in ids}
            assert 40 <= len(done) < 300

            with (tmp_path / "err2").open("wb") as err:
                second = await asyncio.create_subprocess_exec(
                    *args, "--resume",
                    env=env, stdout=asyncio.subprocess.DEVNULL, stderr=err,
                )  # fmt: skip
                code = await second.wait()
            assert code == 0, (tmp_path / "err2").read_text()

        latest = read_journal(journal)
        for webhook_id in ids:
            assert latest[webhook_id].outcome == "rotated"
            assert latest[webhook_id].webhook_secret == fake.secret_of(
                webhook_id
            )
        for webhook_id in done:
            assert fake.rotations_of(webhook_id) == counts[webhook_id]
            assert latest[webhook_id] == before[webhook_id]

    async def test_sigterm_is_graceful(self, tmp_path: Path) -> None:
        """
        SIGTERM stops taking ids, settles those in flight in the journal
        and exits 143; no id is left with only a started record.
        """
        fake = FakeNylas(KEY, latency=0.03)
        ids = [fake.add_webhook() for _ in range(300)]
        journal = tmp_path / "journal.jsonl"
        out = tmp_path / "out.jsonl"

        async with FakeServer(fake) as server:
            env = {**os.environ, "NYLAS_API_KEY": KEY}
            env["NYLAS_API_URI"] = server.url
            with (tmp_path / "err").open("wb") as err:
                process = await asyncio.create_subprocess_exec(
                    *_cli(*ids, "--journal", str(journal), "--out", str(out),
                          "--concurrency", "4", "--rate", "0"),
                    env=env, stdout=asyncio.subprocess.DEVNULL, stderr=err,
                )  # fmt: skip
                await _wait_for_records(journal, 20)
                process.send_signal(signal.SIGTERM)
                code = await process.wait()

        assert code == 143, (tmp_path / "err").read_text()
        latest = read_journal(journal)
        assert len(latest) < 300
        assert {r.outcome for r in latest.values()} <= {"rotated", "unknown"}
        lines = _lines(out.read_text())
        assert {x["webhook_id"] for x in lines} == set(latest)
        for webhook_id, record in latest.items():
            if record.outcome == "rotated":
                assert record.webhook_secret == fake.secret_of(webhook_id)
        assert "SIGTERM" in (tmp_path / "err").read_text()


def _shell(redirect: str, *args: str) -> list[str]:
    """The command run by sh with *redirect*, such as ``>&-``."""
    return ["sh", "-c", f'exec "$@" {redirect}', "sh", *_cli(*args)]


class TestClosedStreams:
    @pytest.mark.parametrize(
        ("redirect", "args", "message"),
        [
            pytest.param(">&-", [], "stdout is closed", id="stdout"),
            pytest.param(
                ">&-", ["--dry-run"], "stdout is closed", id="dry-run"
            ),
            pytest.param(
                "<&-", ["--ids-file", "-"], "stdin is closed", id="stdin"
            ),
        ],
    )
    def test_closed(
        self,
        served: Served,
        tmp_path: Path,
        redirect: str,
        args: list[str],
        message: str,
    ) -> None:
        """A closed stdout or stdin is bad usage, caught before anything."""
        wid = served.fake.add_webhook()
        env = {**os.environ, "NYLAS_API_KEY": KEY, "NYLAS_API_URI": served.url}
        journal = tmp_path / "j.jsonl"

        done = subprocess.run(
            _shell(redirect, wid, "--journal", str(journal), *args),
            env=env,
            stderr=subprocess.PIPE,
            stdout=None if ">" in redirect else subprocess.DEVNULL,
            text=True,
            timeout=60,
            check=False,
        )

        assert done.returncode == 2
        assert message in done.stderr
        assert "Traceback" not in done.stderr
        assert served.fake.requests == []


#: Runs the command with a file size limit, the first argument, as on a
#: full disk; the signal it would send is ignored, as a full disk sends
#: none.
_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv.pop(1)), hard))
from nylas_async._cli import main
main()
"""


def _limited(limit: int, served: Served, *args: str) -> Any:
    env = {**os.environ, "NYLAS_API_KEY": KEY, "NYLAS_API_URI": served.url}
    command = [sys.executable, "-c", _LIMITED, str(limit), "rotate"]

    return subprocess.run(
        [*command, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _failing_after(count: int) -> Any:
    """A journal `_append` whose *count*-th write and later fail."""
    real = _journal._append
    writes = [0]

    def append(fd: int, data: bytes) -> tuple[int, OSError | None]:
        writes[0] += 1
        if writes[0] < count:
            return real(fd, data)
        return 0, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    return append


class TestFullDisk:
    def test_journal_full(self, served: Served, tmp_path: Path) -> None:
        """
        A journal that fills up mid-run: no line claims a secret the
        journal lacks, no traceback, and a resumed run rotates the rest.
        """
        ids = [served.fake.add_webhook() for _ in range(30)]
        journal = tmp_path / "j.jsonl"
        args = [*ids, "--journal", str(journal), "--concurrency", "4"]

        done = _limited(2048, served, *args)

        assert done.returncode in (1, 5), done.stderr
        assert "Traceback" not in done.stderr
        assert "cannot write the journal" in done.stderr
        assert "File too large" in done.stderr
        latest = read_journal(journal)
        for line in _lines(done.stdout):
            if line["outcome"] == "rotated":
                record = latest[line["webhook_id"]]
                assert record.outcome == "rotated"
        assert journal.read_bytes().endswith(b"\n")

        again = _invoke(served, *args, "--resume")

        assert again.exit_code == 0, again.output
        latest = read_journal(journal)
        for webhook_id in ids:
            secret = served.fake.secret_of(webhook_id)
            assert latest[webhook_id].webhook_secret == secret

    def test_secret_lost_to_journal(
        self,
        served: Served,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """
        When the journal cannot take a new secret (no space left on the
        device), the command names the id, says --resume rotates it
        again, and exits 5.
        """
        ids = [served.fake.add_webhook() for _ in range(5)]
        journal = tmp_path / "j.jsonl"
        # One worker: started, rotated, started, then the rotated record
        # of the second id fails.
        monkeypatch.setattr(_journal, "_append", _failing_after(4))

        result = _invoke(
            served, *ids, "--journal", str(journal), "--concurrency", "1"
        )

        assert result.exit_code == 5
        lines = {x["webhook_id"]: x for x in _lines(result.stdout)}
        assert lines[ids[0]]["outcome"] == "rotated"
        assert lines[ids[1]]["outcome"] == "unknown"
        assert served.fake.secret_of(ids[1]) not in result.output
        stderr = " ".join(result.stderr.split())
        lost = f"new secrets could not be saved, so they are lost: {ids[1]}."
        assert lost in stderr
        assert "--resume" in stderr
        assert "No space left on device" in stderr
        assert read_journal(journal)[ids[1]].outcome == "started"
        assert [served.fake.rotations_of(w) for w in ids] == [1, 1, 0, 0, 0]

    def test_out_full(self, served: Served, tmp_path: Path) -> None:
        """
        An --out file that fills up, without a journal: the ids whose
        lines were lost are named, the file keeps only whole lines, and
        the OS error is shown once, without a traceback.
        """
        ids = [served.fake.add_webhook() for _ in range(30)]
        out = tmp_path / "out.jsonl"

        done = _limited(1024, served, *ids, "--out", str(out))

        assert done.returncode == 5, done.stderr
        stderr = " ".join(done.stderr.split())
        assert "Traceback" not in stderr
        assert "None" not in stderr
        assert f"could not write to {out}: File too large" in stderr
        saved = _lines(out.read_text())
        assert 0 < len(saved) < 30
        for line in saved:
            secret = served.fake.secret_of(line["webhook_id"])
            assert line["webhook_secret"] == secret
        named = stderr.split("were not written:")[1]
        rotated = [w for w in ids if served.fake.rotations_of(w)]
        unsaved = set(rotated) - {x["webhook_id"] for x in saved}
        assert unsaved
        assert all(w in named for w in unsaved)
        assert "could not be saved, so they are lost" in stderr

    def test_out_full_with_journal(
        self,
        served: Served,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """
        An --out file that fails beside a journal loses no secret: the
        command stops, says the journal holds every outcome, exits 1.
        """
        ids = [served.fake.add_webhook() for _ in range(20)]
        journal = tmp_path / "j.jsonl"
        out = tmp_path / "out.jsonl"
        real = _rotate._write_whole
        lines = [0]

        def write(fd: int, data: bytes, *, fsync: bool) -> None:
            lines[0] += 1
            if lines[0] > 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real(fd, data, fsync=fsync)

        monkeypatch.setattr(_rotate, "_write_whole", write)

        result = _invoke(
            served, *ids, "--journal", str(journal), "--out", str(out)
        )

        assert result.exit_code == 1
        stderr = " ".join(result.stderr.split())
        assert "No space left on device" in stderr
        assert f"is in the journal {journal}" in stderr
        latest = read_journal(journal)
        for webhook_id in ids:
            if served.fake.rotations_of(webhook_id):
                record = latest[webhook_id]
                assert record.webhook_secret == served.fake.secret_of(
                    webhook_id
                )
