"""The one way this project writes a file: to a temp file beside the target, then a rename.

A reader (or a crash, a full disk, a kill) never sees half a file: the target is either the old
version or the new one. Every file the project writes goes through `atomic_write`.
"""
import json
import os

import torch


class WriteError(Exception):
    """A file could not be written; the message is one line naming the file and why."""


def _temp(path):
    folder, base = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{base}.tmp{os.getpid()}")


def atomic_write(path, write, mode="wb"):
    """Call write(f) on a temp file beside `path`, then rename it over `path`."""
    tmp = _temp(path)
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(tmp, mode) as f:
            write(f)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # torch.save reports a full disk as RuntimeError
        reason = getattr(e, "strerror", None) or str(e).splitlines()[0][:120]
        raise WriteError(f"could not write {path} ({reason})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_torch(path, obj):
    atomic_write(path, lambda f: torch.save(obj, f))


def write_json(path, obj):
    atomic_write(path, lambda f: json.dump(obj, f, indent=1, sort_keys=False), mode="w")


def write_text(path, text):
    atomic_write(path, lambda f: f.write(text), mode="w")


def remove_stale_temps(folder):
    """Delete temp files that a killed process left in `folder` (their pid no longer runs)."""
    if not os.path.isdir(folder):
        return
    for name in os.listdir(folder):
        head, _, pid = name.rpartition(".tmp")
        if name.startswith(".") and head and pid.isdigit() and not _alive(int(pid)):
            try:
                os.remove(os.path.join(folder, name))
            except OSError:
                pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_writable(folder, flag="--out"):
    """Fail in the first second, not after minutes of work, when `folder` cannot hold files."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, f".write-test{os.getpid()}")
        open(probe, "w").close()
        os.remove(probe)
    except OSError as e:
        raise WriteError(f"cannot write to {flag} {folder!r} ({e.strerror or e}); "
                         f"point {flag} at a folder you can write to") from None
