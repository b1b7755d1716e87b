"""The demo and fake-server commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from nylas_async._cli import main
from nylas_async.testing import _server


class TestDemo:
    def test_rotates_300_under_faults(self) -> None:
        """The demo rotates 300 destinations under faults, all matching."""
        result = CliRunner().invoke(
            main, ["demo", "--count", "300", "--seed", "11"]
        )

        assert result.exit_code == 0, result.output
        assert "All 300 secrets rotated and matching" in result.output
        assert re.search(r"retries after \w+", result.output)

    def test_bad_option_is_a_usage_error(self) -> None:
        """An out-of-range option exits 2 with a message, no traceback."""
        result = CliRunner().invoke(main, ["demo", "--count", "0"])

        assert result.exit_code == 2
        assert "Traceback" not in result.output


class TestFakeServer:
    def test_serves_until_sigterm(self) -> None:
        """fake-server prints its URL, serves, and stops on SIGTERM."""
        env = {**os.environ, "NYLAS_API_KEY": "cli-test-key"}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nylas_async",
                "fake-server",
                "--port",
                "0",
                "--seed-webhooks",
                "2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 20
            line = ""
            while "listening on" not in line and time.monotonic() < deadline:
                line = proc.stdout.readline()
            url = line.rsplit(" ", 1)[-1].strip()
            assert url.startswith("http://127.0.0.1:")
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)

        assert proc.returncode == 0, err
        assert "cli-test-key" not in out + err

    @pytest.mark.parametrize(
        ("args", "option"),
        [
            pytest.param(["--latency", "nan"], "--latency", id="nan-latency"),
            pytest.param(["--latency", "inf"], "--latency", id="inf-latency"),
            pytest.param(
                ["--rate-limit", "inf"], "--rate-limit", id="inf-rate"
            ),
            pytest.param(
                ["--rate-limit", "nan"], "--rate-limit", id="nan-rate"
            ),
            pytest.param(
                ["--fault-rate", "nan"], "--fault-rate", id="nan-faults"
            ),
            pytest.param(["--api-key", ""], "--api-key", id="empty-key"),
            pytest.param(["--api-key", "a b"], "--api-key", id="blank-key"),
            pytest.param(
                ["--api-key", "k\udcff"], "--api-key", id="undecodable-key"
            ),
            pytest.param(["--host", ""], "--host", id="empty-host"),
        ],
    )
    def test_bad_option_is_a_usage_error(
        self,
        monkeypatch: pytest.MonkeyPatch,
        args: list[str],
        option: str,
    ) -> None:
        """A value no setting means exits 2 naming the option."""
        env = {"NYLAS_API_KEY": "cli-test-key"}

        def serve_forever(**settings: object) -> None:
            pytest.fail("the fake was started, and would serve forever")

        monkeypatch.setattr(_server, "serve_forever", serve_forever)

        result = CliRunner(env=env).invoke(
            main, ["fake-server", "--port", "0", *args]
        )

        assert result.exit_code == 2
        assert f"Invalid value for '{option}'" in result.stderr
        assert "Traceback" not in result.output

    @pytest.mark.skipif(
        not os.path.exists("/dev/full"), reason="needs /dev/full"
    )
    def test_full_stdout_is_not_a_listen_error(self) -> None:
        """A stdout that cannot be written says so, not "cannot listen"."""
        env = {**os.environ, "NYLAS_API_KEY": "cli-test-key"}
        command = [sys.executable, "-m", "nylas_async", "fake-server"]

        with open("/dev/full", "w") as full:
            result = subprocess.run(
                [*command, "--port", "0"],
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                timeout=30,
                check=False,
            )

        assert result.returncode == 1
        assert result.stderr.startswith(
            "Error: cannot write to standard output"
        )
