"""The subprocess wrapper: argv only, env explicit, logs kept, typed failures."""

from __future__ import annotations

import sys
import time

import pytest

from pipeline.core import runner
from pipeline.core.errors import CommandError, ToolMissingError

PY = sys.executable


def test_captures_stdout_and_logs_everything(tmp_path):
    log = tmp_path / "run.log"
    result = runner.run([PY, "-c", "import sys; print('out'); print('err', file=sys.stderr)"],
                        capture=True, log_path=log)
    assert result.stdout.strip() == "out"
    assert result.stderr_tail == "err"
    text = log.read_text()
    assert "out" in text and "err" in text and "# exit 0" in text


def test_failure_carries_command_code_and_stderr_tail(tmp_path):
    code = "import sys; [print(f'line {i}', file=sys.stderr) for i in range(100)]; sys.exit(3)"
    with pytest.raises(CommandError) as err:
        runner.run([PY, "-c", code], log_path=tmp_path / "x.log", step="convert", where="hp")
    e = err.value
    assert e.returncode == 3 and e.argv[0] == PY
    assert e.stderr_tail.splitlines()[-1] == "line 99"
    assert len(e.stderr_tail.splitlines()) == runner.TAIL_LINES
    line = str(e)
    assert line.startswith("hp: convert: ") and "exited 3 (line 99)" in line and "x.log" in line


def test_explicit_env_is_used(tmp_path):
    result = runner.run([PY, "-c", "import os; print(os.environ.get('ONLY', '-'), "
                         "os.environ.get('HOME', 'nohome'))"],
                        env={"ONLY": "yes"}, inherit_env=False, capture=True)
    assert result.stdout.split() == ["yes", "nohome"]


def test_timeout_kills_the_process_group(tmp_path):
    started = time.monotonic()
    with pytest.raises(CommandError) as err:
        runner.run(["sh", "-c", "sleep 30 & sleep 30"], timeout=1)
    assert err.value.timed_out and "timed out" in str(err.value)
    assert time.monotonic() - started < 15


def test_progress_lines_split_on_carriage_returns():
    seen = []
    runner.run([PY, "-c", "import sys; sys.stdout.write('(10.00/100%)\\r(55.00/100%)\\r(100.00/100%)\\n')"],
               on_line=seen.append)
    assert seen == ["(10.00/100%)", "(55.00/100%)", "(100.00/100%)"]


def test_missing_binary_is_a_setup_error():
    with pytest.raises(ToolMissingError, match="make setup"):
        runner.run(["/nonexistent/qemu-img", "info"])


def test_check_false_returns_the_code():
    assert runner.run([PY, "-c", "raise SystemExit(63)"], check=False).returncode == 63
