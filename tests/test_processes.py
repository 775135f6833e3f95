"""The one process pool: children run `parallel` at a time, their output comes back, and a caller that stops
early (a failure, Ctrl-C) has every running child stopped with SIGINT, so it can save, and waited for."""
from contextlib import closing
import sys
import time

import pytest

from plumbing.processes import run_commands


def py(code):
    return [sys.executable, "-c", code]


def test_children_run_and_report_their_output_and_exit_code():
    jobs = [("ok", py("print('hello')")), ("bad", py("import sys; print('why'); sys.exit(3)"))]
    done = {d.label: d for d in run_commands(jobs, 2)}
    assert done["ok"].returncode == 0 and done["ok"].output.strip() == "hello"
    assert done["bad"].returncode == 3 and done["bad"].last_line() == "why"


def test_stopping_early_sends_sigint_to_running_children_and_waits(tmp_path):
    saved = tmp_path / "saved"
    slow = py("import signal, sys, time\n"
              f"signal.signal(signal.SIGINT, lambda *a: (open({str(saved)!r}, 'w').write('yes'), sys.exit(130)))\n"
              "time.sleep(60)")
    fail = py("import time, sys; time.sleep(1); sys.exit(1)")
    t0 = time.time()
    with pytest.raises(RuntimeError):
        with closing(run_commands([("slow", slow), ("fail", fail), ("never", py("pass"))], 2)) as finished:
            for done in finished:
                if done.returncode:
                    raise RuntimeError(done.label)
    assert saved.read_text() == "yes" and time.time() - t0 < 30  # the slow child saved and was not waited out


def test_results_of_reads_each_childs_result_in_order_and_names_a_failure():
    from plumbing.processes import ChildFailed, results_of
    write = "import json, sys; json.dump({}, open(sys.argv[sys.argv.index('--result') + 1], 'w'))"
    jobs = [(f"j{i}", py(write.format(f"{{'i': {i}}}"))) for i in range(3)]
    assert results_of(jobs, 2) == [{"i": 0}, {"i": 1}, {"i": 2}]
    with pytest.raises(ChildFailed, match="bad failed: no luck"):
        results_of([("bad", py("print('no luck'); raise SystemExit(1)"))], 1)
