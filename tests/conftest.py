"""Tiny configs shared by the tests: seconds, not minutes.

PLANNING_TEST_CACHE=DIR keeps the trained fixtures' checkpoints in DIR, keyed by their configs and the code that
trains them, so repeated test runs (mutation testing runs the tests once per mutant: docs/mutation.md) load them
instead of training again. Unset (CI, the README's command), every pytest run trains its own.
"""
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from plumbing import numerics  # noqa: E402,F401  (first: pins the CPU code paths before torch loads)
import pytest  # noqa: E402
import torch  # noqa: E402

from data import WorldConfig  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402
from plumbing.files import write_json  # noqa: E402
from train import TrainConfig, train  # noqa: E402

TINY_WORLD = WorldConfig(n_train=3000, n_test=40)
TINY_MODEL = GPTConfig(n_layer=2, n_head=2, d_model=32, d_mlp=64)


def random_model(world, seed=0, n_layer=2, n_head=2, **kw):
    """An untrained model sized for the world: where a test needs exact answers, not a trained one."""
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=len(world.itos), block_size=world.max_len(), n_layer=n_layer, n_head=n_head,
                         d_model=32, d_mlp=64, **kw)).eval()


def tiny_train_config(out, **kw):
    base = dict(max_steps=40, batch_size=16, eval_every=1000, eval_n=20, ckpt_every=20, out=str(out))
    base.update(kw)
    return TrainConfig(**base)


# what decides a fixture's weights: the code that trains it, and this file (its configs)
FIXTURE_CODE = ("model.py", "train.py", "data.py", "lexicon.py", "couplet_rules.py", "plumbing/numerics.py",
                "tests/conftest.py")


def trained(tmp_path_factory, name, make):
    """(the directory holding `name`'s model.pt, its metrics): `make(out)` trains into out and returns the metrics;
    with PLANNING_TEST_CACHE set, a checkpoint trained before by the same code and configs is reused."""
    cache = os.environ.get("PLANNING_TEST_CACHE")
    if not cache:
        out = tmp_path_factory.mktemp(name)
        return str(out), make(out)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    key = hashlib.sha256(repr(torch.__version__).encode())
    for f in FIXTURE_CODE:
        key.update(open(os.path.join(root, f), "rb").read())
    out = os.path.join(cache, f"{name}-{key.hexdigest()[:16]}")
    if not os.path.exists(os.path.join(out, "metrics.json")):
        write_json(os.path.join(out, "metrics.json"), make(out))  # last, atomically: it marks a finished entry
    return out, json.load(open(os.path.join(out, "metrics.json")))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One tiny trained model shared by the read-only tests: (checkpoint path, metrics)."""
    out, metrics = trained(tmp_path_factory, "tiny",
                           lambda out: train(TINY_WORLD, TINY_MODEL, tiny_train_config(out, max_steps=60), quiet=True))
    return os.path.join(out, "model.pt"), metrics


def pytest_configure(config):
    config.addinivalue_line("markers", "trains: uses a trained fixture model (tiny_run or poet); "
                                       "`-m 'not trains'` selects the fast unit tests")


def pytest_collection_modifyitems(items):
    """Mark every test that needs a trained fixture, however indirectly (its fixture closure names it)."""
    for item in items:
        if {"tiny_run", "poet"} & set(getattr(item, "fixturenames", ())):
            item.add_marker("trains")


def pytest_report_header(config):
    """Which machine and CPU code paths computed this run (the fingerprint test's bits depend on them)."""
    import platform
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    return f"cpu: {cpu}; numerics: {numerics.state()}"


POET_WORLD = WorldConfig(n_train=20000, n_test=200)
POET_MODEL = GPTConfig(n_layer=2, n_head=2, d_model=64, d_mlp=256)


@pytest.fixture(scope="session")
def poet(tmp_path_factory):
    """A small model that writes valid couplets (0.96 of 200 test line 1s; 1,000 steps, about 25 s on one
    thread), so the measures' loops run on real couplets: every shape, green, habit, effect and feature
    test on it asserts that it counted something. Returns its checkpoint path."""
    def make(out):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return train(POET_WORLD, POET_MODEL, TrainConfig(max_steps=1000, batch_size=64, lr=5e-3, eval_every=10 ** 6,
                                                             eval_n=200, ckpt_every=10 ** 6, out=str(out)), quiet=True)
        finally:
            torch.set_num_threads(threads)
    out, metrics = trained(tmp_path_factory, "poet", make)
    assert metrics["test"]["valid"] >= 0.9, metrics["test"]["valid"]  # a fixture that cannot write tests nothing
    return os.path.join(out, "model.pt")


@pytest.fixture
def one_thread():
    """Tiny models train several times faster on one thread when the cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
