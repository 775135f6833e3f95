"""The one process pool: child processes run `parallel` at a time, for every entry point that fans out
(train.py --all, analyze.py over models and seeds, the world search, bench.py --to-quality).

Children are whole commands (`python train.py --variant ... --threads 1`), not pickled functions, so a
child is exactly what a user could run by hand, and each is stopped the way a user would stop it.
"""
from contextlib import closing
from dataclasses import dataclass
import json
import os
import signal
import subprocess
import tempfile
import time


@dataclass
class Finished:
    label: str
    returncode: int
    output: str      # the child's stdout and stderr, interleaved
    seconds: float

    def last_line(self):
        return (self.output.strip().splitlines() or ["(no output)"])[-1]


def run_commands(jobs, parallel, capture=True):
    """Run [(label, argv)] as child processes, `parallel` at a time, and yield a Finished for each as
    it ends. If the caller stops early (Ctrl-C, or it raises on a failure: iterate inside
    `contextlib.closing(...)` so that this happens at once), every child still running gets SIGINT,
    so it can save its work, and is waited for. capture=False lets the children write to this
    terminal (their progress lines) and leaves Finished.output empty."""
    todo, running = list(jobs), []
    try:
        while todo or running:
            while todo and len(running) < parallel:
                label, argv = todo.pop(0)
                log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a chatty child never blocks
                to = dict(stdout=log, stderr=subprocess.STDOUT) if capture else {}
                running.append((label, subprocess.Popen(argv, text=True, **to), log, time.time()))
            time.sleep(0.2)
            for job in [j for j in running if j[1].poll() is not None]:
                running.remove(job)
                label, proc, log, t0 = job
                log.seek(0)
                output = log.read()
                log.close()
                yield Finished(label, proc.returncode, output, time.time() - t0)
    finally:
        for _, proc, _, _ in running:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for _, proc, log, _ in running:
            proc.wait()
            log.close()



class ChildFailed(Exception):
    """A child of results_of failed; the message names it (and its last line when captured)."""


def results_of(jobs, parallel, capture=True, on_done=None):
    """Run [(label, argv)] like run_commands, each child given `--result FILE` to write its JSON result to;
    return the results in the jobs' order. A child interrupted (exit 130) stops the rest as Ctrl-C would;
    a failed one stops the rest with ChildFailed. on_done(Finished) is called as each child ends."""
    with tempfile.TemporaryDirectory() as tmp:
        files = [os.path.join(tmp, f"{i}.json") for i in range(len(jobs))]
        with closing(run_commands([(label, [*argv, "--result", f]) for (label, argv), f in zip(jobs, files)],
                                  parallel, capture)) as finished:
            for done in finished:
                if done.returncode == 130:
                    raise KeyboardInterrupt
                if done.returncode != 0:
                    raise ChildFailed(f"{done.label} failed: {done.last_line()}" if capture else
                                      f"{done.label} failed (its error is above)")
                if on_done is not None:
                    on_done(done)
        results = []
        for f in files:
            with open(f) as fh:
                results.append(json.load(fh))
        return results
