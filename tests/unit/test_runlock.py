"""Two runs on one work directory: the second fails at once, naming the holder."""

import multiprocessing

import pytest

from pipeline.core.errors import PipelineError
from pipeline.run.runlock import run_lock


def _try(path, queue):
    try:
        with run_lock(path):
            queue.put("got it")
    except PipelineError as e:
        queue.put(str(e))


def test_second_run_is_refused_while_the_first_holds_the_lock(tmp_path):
    queue = multiprocessing.Queue()
    with run_lock(tmp_path):
        proc = multiprocessing.Process(target=_try, args=(tmp_path, queue))
        proc.start()
        proc.join(30)
        message = queue.get(timeout=5)
    assert message.startswith("lock: another run holds") and "pid" in message
    proc = multiprocessing.Process(target=_try, args=(tmp_path, queue))
    proc.start()
    proc.join(30)
    assert queue.get(timeout=5) == "got it"


def test_lock_is_released_on_error(tmp_path):
    with pytest.raises(RuntimeError), run_lock(tmp_path):
        raise RuntimeError("boom")
    with run_lock(tmp_path):
        pass
