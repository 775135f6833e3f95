"""Progress that suits where it goes: a tqdm bar on a terminal, a plain line now and then when the
output is redirected to a file (a bar there is one endless line of carriage returns)."""
import sys
import time

from tqdm import tqdm


class Progress:
    def __init__(self, total, desc, initial=0, quiet=False, every_s=30.0):
        self.total, self.desc, self.n, self.quiet = total, desc, initial, quiet
        self.tty = sys.stderr.isatty()
        self.bar = tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True) if self.tty and not quiet else None
        self.every_s, self.last, self.postfix = every_s, time.time(), ""

    def update(self, n=1, **postfix):
        self.n += n
        self.postfix = " ".join(f"{k} {v}" for k, v in postfix.items())
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
        elif not self.quiet and (time.time() - self.last >= self.every_s or self.n == self.total):
            self.last = time.time()
            print(f"{self.desc}: {self.n}/{self.total} {self.postfix}", file=sys.stderr, flush=True)

    def write(self, msg):
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(msg)
        else:
            print(msg, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


START = time.time()


def stage(msg, quiet=False):
    """One line saying what starts now (analysis stages, training jobs), after the seconds since the start."""
    if not quiet:
        print(f"[{time.time() - START:5.0f} s] {msg}", flush=True)
