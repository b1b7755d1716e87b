"""The ``nylas-async webhooks`` commands against the fake over loopback."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from nylas_async._cli import main
from nylas_async.testing import FakeNylas, FakeServer, Fault

KEY = "nyk_cli_webhooks_test"


class Served:
    """
    A fake Nylas and a webhook receiver served from a thread of their
    own, so that the synchronous CLI can run its own event loop.
    """

    def __init__(self, fake: FakeNylas, hook_status: int = 200) -> None:
        self.fake = fake
        self.hook_status = hook_status
        self.url = ""
        self.hook = ""
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Served:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake did not start within 10 s")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        async def challenge(request: web.Request) -> web.Response:
            return web.Response(text=request.query["challenge"])

        async def delivery(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=self.hook_status)

        app = web.Application()
        app.router.add_get("/hook", challenge)
        app.router.add_post("/hook", delivery)
        runner = web.AppRunner(app, shutdown_timeout=1)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            port = runner.addresses[0][1]
            async with FakeServer(self.fake) as server:
                self.url = server.url
                self.hook = f"http://127.0.0.1:{port}/hook"
                self._ready.set()
                await self._stop.wait()
        finally:
            await runner.cleanup()


@pytest.fixture
def fake() -> FakeNylas:
    return FakeNylas(KEY, verify_challenge=True, challenge_timeout=2)


@pytest.fixture
def served(fake: FakeNylas) -> Iterator[Served]:
    with Served(fake) as s:
        yield s


def run(
    served: Served, *args: str, key: str | None = KEY, columns: str = "200"
) -> Result:
    env = {
        "NYLAS_API_KEY": key,
        "NYLAS_API_URI": served.url,
        "COLUMNS": columns,
    }
    result = CliRunner(env=env).invoke(main, ["webhooks", *args])

    assert "Traceback" not in result.output
    if key:
        assert key not in result.output

    return result


def secrets_of(fake: FakeNylas) -> list[str]:
    return [fake.secret_of(i) for i in fake.webhook_ids]


def run_process(
    served: Served,
    *args: str,
    setup: str = "",
    stdout: Any = subprocess.PIPE,
    shell_redirect: str = "",
) -> subprocess.CompletedProcess[str]:
    """
    Run ``nylas-async webhooks ARGS`` in a child Python, after the code
    *setup*, with *stdout* as its standard output, or with the shell
    redirection *shell_redirect* applied to it.
    """
    code = f"{setup}\nfrom nylas_async._cli import main\nmain()"
    command = [sys.executable, "-c", code, "webhooks", *args]
    if shell_redirect:
        command = ["sh", "-c", f'exec "$@" {shell_redirect}', "sh", *command]
    env = os.environ | {"NYLAS_API_KEY": KEY, "NYLAS_API_URI": served.url}

    result = subprocess.run(
        command,
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )

    assert "Traceback" not in result.stderr
    return result


def create_args(served: Served, *flags: str) -> list[str]:
    """The arguments of a create that the served receiver accepts."""
    url = served.hook

    return ["create", "--url", url, "--trigger", "message.created", *flags]


def fail_writes(
    monkeypatch: pytest.MonkeyPatch,
    path: Path,
    code: int,
    *,
    accept: int = 0,
) -> None:
    """
    Make writes to the file at *path* take at most *accept* bytes in
    all, then fail with the errno *code*, as a full disk does.
    """
    real_write = os.write
    target = (path.stat().st_dev, path.stat().st_ino)
    left = accept

    def write(fd: int, data: Any) -> int:
        nonlocal left
        found = os.fstat(fd)
        if (found.st_dev, found.st_ino) != target:
            return real_write(fd, data)
        if left <= 0:
            raise OSError(code, os.strerror(code))
        written = real_write(fd, bytes(data[:left]))
        left -= written
        return written

    monkeypatch.setattr(os, "write", write)


def private_file(path: Path, content: str = "") -> Path:
    path.write_text(content)
    os.chmod(path, 0o600)

    return path


class TestList:
    def test_table(self, served: Served, fake: FakeNylas) -> None:
        """list prints a table with every id and no secret."""
        ids = [fake.add_webhook(description=f"hook {n}") for n in range(3)]

        result = run(served, "list")

        assert result.exit_code == 0
        assert all(i in result.stdout for i in ids)
        assert "hook 2" in result.stdout
        assert not any(s in result.output for s in secrets_of(fake))

    def test_json(self, served: Served, fake: FakeNylas) -> None:
        """list --json prints the destinations as Nylas shows them."""
        ids = [fake.add_webhook(), fake.add_webhook(status="failing")]

        result = run(served, "list", "--json")

        listed = json.loads(result.stdout)
        assert [d["id"] for d in listed] == ids
        assert [d["status"] for d in listed] == ["active", "failing"]
        assert all("webhook_secret" not in d for d in listed)

    def test_wrong_key(self, served: Served) -> None:
        """A refused key is one line on stderr and exit 1."""
        result = run(served, "list", key="nyk_wrong")

        assert result.exit_code == 1
        assert result.stderr.startswith("Error: HTTP 401")

    def test_no_key(self, served: Served) -> None:
        """No key at all is a usage error, exit 2."""
        result = run(served, "list", key=None)

        assert result.exit_code == 2
        assert "NYLAS_API_KEY" in result.stderr


class TestUntrustedText:
    @pytest.mark.parametrize(
        "description",
        [
            pytest.param("[/b]", id="closing-tag"),
            pytest.param(
                "[link=https://evil.example]Orders[/link] [red]v2",
                id="link-and-colour",
            ),
            pytest.param(":smile: [bold]x", id="emoji-code"),
        ],
    )
    @pytest.mark.parametrize("command", ["list", "get"])
    def test_markup_shown_as_written(
        self, served: Served, fake: FakeNylas, command: str, description: str
    ) -> None:
        """Rich markup in a description is shown as written, never read."""
        wid = fake.add_webhook(description=description)
        args = [wid] if command == "get" else []

        result = run(served, command, *args)

        assert result.exit_code == 0, result.output
        assert description in result.stdout

    @pytest.mark.parametrize("command", ["list", "get"])
    def test_control_characters_escaped(
        self, served: Served, fake: FakeNylas, command: str
    ) -> None:
        """Terminal controls in Nylas's text are shown as escapes."""
        wid = fake.add_webhook(
            description="a\x1b[2Jb\u202ec",
            webhook_url="https://example.com/\x07",
        )
        args = [wid] if command == "get" else []

        result = run(served, command, *args)

        assert result.exit_code == 0, result.output
        assert "a\\x1b[2Jb\\u202ec" in result.stdout
        assert "https://example.com/\\x07" in result.stdout
        assert not {"\x1b", "\u202e", "\x07"} & set(result.stdout)

    @pytest.mark.parametrize("columns", ["0", "1", "20"])
    @pytest.mark.parametrize("command", ["list", "get"])
    def test_narrow_terminal_keeps_every_value(
        self, served: Served, fake: FakeNylas, command: str, columns: str
    ) -> None:
        """However narrow the terminal, the id and values are all shown."""
        wid = fake.add_webhook(description="kept")
        args = [wid] if command == "get" else []

        result = run(served, command, *args, columns=columns)

        assert result.exit_code == 0, result.output
        assert wid in result.stdout
        assert "active" in result.stdout

    @pytest.mark.parametrize("as_json", [False, True])
    def test_create_with_markup_keeps_the_secret(
        self, served: Served, fake: FakeNylas, as_json: bool
    ) -> None:
        """A create whose description is markup still shows its secret."""
        flags = ["--json"] if as_json else []

        result = run(
            served,
            *create_args(served, "--description", "[/b]", "--show-secret"),
            *flags,
        )

        assert result.exit_code == 0, result.output
        [wid] = fake.webhook_ids
        assert fake.secret_of(wid) in result.stdout
        assert "[/b]" in result.stdout

    @pytest.mark.parametrize(
        "args",
        [
            pytest.param(["--description", "caf\udce9"], id="description"),
            pytest.param(["--notify", "\udcff@example.com"], id="notify"),
            pytest.param(["--trigger", "a.\udcff"], id="trigger"),
        ],
    )
    def test_undecodable_arguments_refused(
        self, served: Served, fake: FakeNylas, args: list[str]
    ) -> None:
        """Bytes the locale cannot decode are a usage error, no request."""
        result = run(served, *create_args(served, *args))

        assert result.exit_code == 2
        assert "not valid" in result.stderr
        assert fake.requests == []


class TestGet:
    @pytest.mark.parametrize("as_json", [False, True])
    def test_shows_one(
        self, served: Served, fake: FakeNylas, as_json: bool
    ) -> None:
        """get shows the destination's fields without its secret."""
        wid = fake.add_webhook(description="the one")
        flags = ["--json"] if as_json else []

        result = run(served, "get", wid, *flags)

        assert result.exit_code == 0
        assert "the one" in result.stdout
        assert fake.secret_of(wid) not in result.output
        if as_json:
            assert json.loads(result.stdout)["id"] == wid

    def test_unknown_id_exits_3(self, served: Served) -> None:
        """An unknown id exits 3 with Nylas's message."""
        result = run(served, "get", "A" * 26)

        assert result.exit_code == 3
        assert "record not found" in result.stderr

    def test_malformed_id_is_usage(
        self, served: Served, fake: FakeNylas
    ) -> None:
        """A malformed id is a usage error without a request."""
        result = run(served, "get", "../etc")

        assert result.exit_code == 2
        assert fake.requests == []


class TestCreate:
    def test_secret_hidden_by_default(
        self, served: Served, fake: FakeNylas
    ) -> None:
        """create prints the destination but not its secret."""
        result = run(
            served,
            "create",
            "--url",
            served.hook,
            "--trigger",
            "grant.expired",
        )

        assert result.exit_code == 0, result.output
        [wid] = fake.webhook_ids
        assert wid in result.stdout
        assert fake.secret_of(wid) not in result.output
        assert "webhook_secret" not in result.output
        assert "--show-secret" in result.stderr

    @pytest.mark.parametrize(
        "as_json",
        [pytest.param(False, id="table"), pytest.param(True, id="json")],
    )
    def test_show_secret(
        self, served: Served, fake: FakeNylas, as_json: bool
    ) -> None:
        """--show-secret prints the new secret."""
        flags = ["--json"] if as_json else []

        result = run(served, *create_args(served, "--show-secret", *flags))

        [wid] = fake.webhook_ids
        assert fake.secret_of(wid) in result.stdout
        if as_json:
            data = json.loads(result.stdout)
            assert data["webhook_secret"] == fake.secret_of(wid)

    def test_secret_printed_first(
        self, served: Served, fake: FakeNylas
    ) -> None:
        """--show-secret prints the secret before the destination."""
        result = run(served, *create_args(served, "--show-secret"))

        [wid] = fake.webhook_ids
        first = result.stdout.splitlines()[0]
        assert first == f"webhook_secret: {fake.secret_of(wid)}"
        assert wid in result.stdout

    def test_json_without_secret(
        self, served: Served, fake: FakeNylas
    ) -> None:
        """--json alone leaves the secret out."""
        result = run(
            served,
            *create_args(
                served,
                "--description",
                "json",
                "--notify",
                "ops@example.com",
                "--compressed",
                "--json",
            ),
        )

        data = json.loads(result.stdout)
        assert "webhook_secret" not in data
        assert data["compressed_delivery"] is True
        assert data["notification_email_addresses"] == ["ops@example.com"]

    def test_secret_out(
        self, served: Served, fake: FakeNylas, tmp_path: Path
    ) -> None:
        """--secret-out appends the id and secret to a 0600 file."""
        path = tmp_path / "secrets.jsonl"

        result = run(served, *create_args(served, "--secret-out", str(path)))

        [wid] = fake.webhook_ids
        assert result.exit_code == 0
        assert fake.secret_of(wid) not in result.output
        assert json.loads(path.read_text()) == {
            "webhook_id": wid,
            "webhook_secret": fake.secret_of(wid),
        }
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_secret_out_open_to_others(
        self, served: Served, fake: FakeNylas, tmp_path: Path
    ) -> None:
        """A secret file readable by others is refused before creating."""
        path = tmp_path / "shared.jsonl"
        path.write_text("")
        os.chmod(path, 0o644)

        result = run(served, *create_args(served, "--secret-out", str(path)))

        assert result.exit_code == 1
        assert "readable by others" in result.stderr
        assert fake.requests == []

    def test_secret_out_unopenable(
        self, served: Served, fake: FakeNylas, tmp_path: Path
    ) -> None:
        """A secret file that cannot be opened is named with the reason,
        before creating."""
        path = str(tmp_path / "missing" / "secrets.jsonl")

        result = run(served, *create_args(served, "--secret-out", path))

        assert result.exit_code == 1
        assert result.stderr == (
            f"Error: cannot open {path}: No such file or directory (ENOENT)\n"
        )
        assert fake.requests == []

    def test_failed_challenge(self, served: Served, fake: FakeNylas) -> None:
        """A URL that fails the challenge is Nylas's 70005, exit 1."""
        result = run(
            served,
            "create",
            "--url",
            served.hook + "-missing",
            "--trigger",
            "message.created",
        )

        assert result.exit_code == 1
        assert "70005" in result.stderr
        assert "got 404" in result.stderr
        assert fake.webhook_ids == []

    def test_lost_reply_exits_4(self, served: Served, fake: FakeNylas) -> None:
        """A create whose reply is lost exits 4 and says to list first."""
        fake.inject(Fault.drop(after_commit=True), operation="create")

        result = run(
            served, "create", "--url", served.hook, "--trigger", "a.b"
        )

        assert result.exit_code == 4
        assert "list the destinations" in result.stderr
        assert len(fake.requests) == 1

    @pytest.mark.parametrize(
        "args",
        [
            pytest.param(["--url", "https://x.example"], id="no-trigger"),
            pytest.param(["--trigger", "message.created"], id="no-url"),
            pytest.param(
                ["--url", "ftp://x", "--trigger", "message.created"],
                id="bad-url",
            ),
        ],
    )
    def test_bad_usage(
        self, served: Served, fake: FakeNylas, args: list[str]
    ) -> None:
        """Missing or invalid options exit 2 without a request."""
        result = run(served, "create", *args)

        assert result.exit_code == 2
        assert fake.requests == []


class TestInterrupted:
    def test_create_interrupted_exits_4(
        self, served: Served, fake: FakeNylas
    ) -> None:
        """Ctrl-C during a create says a destination may exist: exit 4."""
        fake.inject(Fault.slow(30), operation="create")
        code = "from nylas_async._cli import main\nmain()"
        env = os.environ | {"NYLAS_API_KEY": KEY, "NYLAS_API_URI": served.url}
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "webhooks", *create_args(served)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            for _ in range(200):
                if fake.webhook_ids:
                    break
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
        finally:
            _, err = proc.communicate(timeout=30)

        assert fake.webhook_ids
        assert proc.returncode == 4
        assert "list the destinations" in err
        assert "Traceback" not in err


class TestSecretOut:
    """A --secret-out file that cannot be written after the create."""

    @pytest.mark.parametrize(
        "code",
        [
            pytest.param(errno.ENOSPC, id="disk-full"),
            pytest.param(errno.EDQUOT, id="quota"),
            pytest.param(errno.EIO, id="io-error"),
        ],
    )
    def test_write_fails(
        self,
        served: Served,
        fake: FakeNylas,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        code: int,
    ) -> None:
        """The secret is lost: exit 5 naming the id, the error, rotate."""
        path = private_file(tmp_path / "secrets.jsonl")
        fail_writes(monkeypatch, path, code)

        result = run(served, *create_args(served, "--secret-out", str(path)))

        [wid] = fake.webhook_ids
        assert result.exit_code == 5
        assert wid in result.stderr
        assert errno.errorcode[code] in result.stderr
        assert "secret is lost" in result.stderr
        assert f"nylas-async rotate {wid} --journal" in result.stderr
        assert fake.secret_of(wid) not in result.output
        assert path.read_text() == ""

    def test_torn_line_cut_back(
        self,
        served: Served,
        fake: FakeNylas,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A line cut short is removed, so that earlier lines stay whole."""
        before = '{"webhook_id": "old", "webhook_secret": "s"}\n'
        path = private_file(tmp_path / "secrets.jsonl", before)
        fail_writes(monkeypatch, path, errno.ENOSPC, accept=10)

        result = run(served, *create_args(served, "--secret-out", str(path)))

        assert result.exit_code == 5
        assert path.read_text() == before

    def test_fsync_fails(
        self,
        served: Served,
        fake: FakeNylas,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A failed fsync counts as a failed write: the line may be lost."""
        path = private_file(tmp_path / "secrets.jsonl")

        def fsync(fd: int) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        monkeypatch.setattr(os, "fsync", fsync)

        result = run(served, *create_args(served, "--secret-out", str(path)))

        assert result.exit_code == 5
        assert "EIO" in result.stderr
        assert path.read_text() == ""

    def test_still_printed(
        self,
        served: Served,
        fake: FakeNylas,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """With --show-secret too, the secret is printed and exit is 1."""
        path = private_file(tmp_path / "secrets.jsonl")
        fail_writes(monkeypatch, path, errno.ENOSPC)

        result = run(
            served,
            *create_args(served, "--secret-out", str(path), "--show-secret"),
        )

        [wid] = fake.webhook_ids
        assert result.exit_code == 1
        assert f"webhook_secret: {fake.secret_of(wid)}" in result.stdout
        assert "on standard output" in result.stderr

    def test_file_size_limit(
        self, served: Served, fake: FakeNylas, tmp_path: Path
    ) -> None:
        """A real write refused by RLIMIT_FSIZE loses no earlier line."""
        before = "x" * 100 + "\n"
        path = private_file(tmp_path / "secrets.jsonl", before)
        setup = (
            "import resource, signal\n"
            "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (120, 120))"
        )

        result = run_process(
            served,
            *create_args(served, "--secret-out", str(path)),
            setup=setup,
        )

        [wid] = fake.webhook_ids
        assert result.returncode == 5, result.stderr
        assert "EFBIG" in result.stderr
        assert f"nylas-async rotate {wid}" in result.stderr
        assert path.read_text() == before


class TestStandardOutput:
    """Standard output closed or failing, run in a child process."""

    @pytest.mark.parametrize("command", ["list", "create"])
    def test_closed(
        self, served: Served, fake: FakeNylas, command: str
    ) -> None:
        """A closed stdout is a usage error before any request."""
        args = ["list"]
        if command == "create":
            args = create_args(served, "--show-secret")

        result = run_process(served, *args, shell_redirect=">&-")

        assert result.returncode == 2
        assert "standard output is closed" in result.stderr
        assert fake.requests == []

    @pytest.mark.skipif(
        not os.path.exists("/dev/full"), reason="needs /dev/full"
    )
    @pytest.mark.parametrize("as_json", [False, True])
    def test_full_while_listing(
        self, served: Served, fake: FakeNylas, as_json: bool
    ) -> None:
        """A full stdout is one line on stderr and exit 1."""
        fake.add_webhook()
        flags = ["--json"] if as_json else []

        with open("/dev/full", "w") as full:
            result = run_process(served, "list", *flags, stdout=full)

        assert result.returncode == 1
        assert result.stderr == (
            "Error: cannot write to standard output: "
            "No space left on device (ENOSPC)\n"
        )

    @pytest.mark.skipif(
        not os.path.exists("/dev/full"), reason="needs /dev/full"
    )
    def test_full_loses_the_secret(
        self, served: Served, fake: FakeNylas
    ) -> None:
        """A secret that cannot be printed is lost: exit 5, rotate it."""
        with open("/dev/full", "w") as full:
            result = run_process(
                served, *create_args(served, "--show-secret"), stdout=full
            )

        [wid] = fake.webhook_ids
        assert result.returncode == 5
        assert "printing its secret failed" in result.stderr
        assert f"nylas-async rotate {wid}" in result.stderr

    @pytest.mark.skipif(
        not os.path.exists("/dev/full"), reason="needs /dev/full"
    )
    def test_full_keeps_the_saved_secret(
        self, served: Served, fake: FakeNylas, tmp_path: Path
    ) -> None:
        """A secret saved to its file but not printed exits 1, not 4."""
        path = tmp_path / "secrets.jsonl"
        args = create_args(served, "--show-secret", "--secret-out", str(path))

        with open("/dev/full", "w") as full:
            result = run_process(served, *args, stdout=full)

        [wid] = fake.webhook_ids
        assert result.returncode == 1
        assert f"in {path}" in result.stderr
        assert json.loads(path.read_text())["webhook_id"] == wid


class TestUpdate:
    def test_changes_given_options(
        self, served: Served, fake: FakeNylas
    ) -> None:
        """update changes what is given and keeps the rest."""
        wid = fake.add_webhook(description="kept")

        result = run(
            served, "update", wid, "--status", "pause", "--no-compressed"
        )

        assert result.exit_code == 0
        shown = run(served, "get", wid, "--json")
        data = json.loads(shown.stdout)
        assert data["status"] == "pause"
        assert data["description"] == "kept"
        assert data["compressed_delivery"] is False

    @pytest.mark.parametrize(
        "args",
        [
            pytest.param([], id="nothing"),
            pytest.param(["--status", "failed"], id="status-failed"),
        ],
    )
    def test_bad_usage(
        self, served: Served, fake: FakeNylas, args: list[str]
    ) -> None:
        """An empty update or a status Nylas sets itself exits 2."""
        wid = fake.add_webhook()

        result = run(served, "update", wid, *args)

        assert result.exit_code == 2
        assert fake.requests == []

    def test_unknown_id_exits_3(self, served: Served) -> None:
        """Updating an unknown id exits 3."""
        result = run(served, "update", "A" * 26, "--description", "x")

        assert result.exit_code == 3


class TestDelete:
    def test_deletes(self, served: Served, fake: FakeNylas) -> None:
        """delete removes the destination and says so."""
        wid = fake.add_webhook()

        result = run(served, "delete", wid)

        assert (result.exit_code, result.stdout) == (0, f"Deleted {wid}.\n")
        assert fake.webhook_ids == []

    def test_json(self, served: Served, fake: FakeNylas) -> None:
        """delete --json prints Nylas's status and the id."""
        wid = fake.add_webhook()

        result = run(served, "delete", wid, "--json")

        assert json.loads(result.stdout) == {
            "status": "success",
            "already_gone": False,
            "webhook_id": wid,
        }

    def test_unknown_id_exits_3(self, served: Served) -> None:
        """Deleting an unknown id exits 3."""
        result = run(served, "delete", "A" * 26)

        assert result.exit_code == 3


class TestMockPayload:
    @pytest.mark.parametrize(
        ("flags", "lines"),
        [
            pytest.param([], "many", id="indented"),
            pytest.param(["--json"], 1, id="one-line"),
        ],
    )
    def test_prints_the_notification(
        self, served: Served, flags: list[str], lines: int | str
    ) -> None:
        """mock-payload prints the example notification as JSON."""
        result = run(served, "mock-payload", "message.created", *flags)

        assert result.exit_code == 0
        assert json.loads(result.stdout)["type"] == "message.created"
        count = len(result.stdout.splitlines())
        assert count == 1 if lines == 1 else count > 1

    def test_unknown_trigger_exits_1(self, served: Served) -> None:
        """A trigger type Nylas does not mock is its 400, exit 1."""
        result = run(served, "mock-payload", "no.such.trigger")

        assert result.exit_code == 1
        assert "trigger_type" in result.stderr


class TestSendTestEvent:
    def test_success(self, served: Served) -> None:
        """A test event the receiver accepts exits 0."""
        result = run(served, "send-test-event", "message.created", served.hook)

        assert (result.exit_code, result.stdout) == (
            0,
            "Nylas answered: success\n",
        )

    def test_refused_delivery_exits_1(self, fake: FakeNylas) -> None:
        """A test event the receiver refuses exits 1."""
        with Served(fake, hook_status=500) as served:
            result = run(
                served, "send-test-event", "message.created", served.hook
            )

        assert result.exit_code == 1
        assert "failed" in result.stdout

    def test_json(self, served: Served) -> None:
        """--json prints the answer and Nylas's request id."""
        result = run(
            served, "send-test-event", "grant.expired", served.hook, "--json"
        )

        data = json.loads(result.stdout)
        assert data["result"] == "success"
        assert data["request_id"]


class TestIpAddresses:
    def test_lists_addresses(self, served: Served) -> None:
        """ip-addresses prints one address per line."""
        result = run(served, "ip-addresses")

        assert result.exit_code == 0
        assert result.stdout.splitlines()
        assert "updated" in result.stderr

    def test_missing_endpoint_exits_3(self) -> None:
        """An API without the endpoint answers 404: exit 3."""
        with Served(FakeNylas(KEY, serve_ip_addresses=False)) as served:
            result = run(served, "ip-addresses")

        assert result.exit_code == 3
