"""The exercises: `stubs.py` to fill in, `solutions.py` to compare with, and `load`, which imports the file a
student names so that the checker (tests/test_exercises.py) and the walkthrough run *their* functions."""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SOLUTIONS = os.path.join(HERE, "solutions.py")


def load(path=None):
    """The module of exercise functions at `path`, else at $EXERCISES, else exercises/solutions.py.

    A relative path is looked up from the current folder, then from the repository root. A path that names
    no Python file raises FileNotFoundError with a one-line message; an error inside the file (a syntax
    error, a failing import) is raised as it is, with its traceback."""
    given = path or os.environ.get("EXERCISES") or SOLUTIONS
    places = list(dict.fromkeys([os.getcwd(), ROOT]))
    found = next((p for p in (os.path.join(place, given) for place in places)
                  if os.path.isfile(p) and p.endswith(".py")), None)
    if found is None:
        raise FileNotFoundError(f"EXERCISES={given}: no such Python file (looked in {' and '.join(places)}); "
                                f"name your copy of exercises/stubs.py, e.g. EXERCISES=exercises/stubs.py")
    name = "exercises_under_test"
    spec = importlib.util.spec_from_file_location(name, found)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before it runs, so a dataclass (or pickling) in the file works
    spec.loader.exec_module(module)
    return module
