"""One experiment's result as plain text for the terminal (`python analyze.py --only NAME`).

Every number of the result is printed with the path of keys that leads to it: a rate with its n and
95% interval on one line, a list of numbers (a layer's row of a map) on one line, nested maps indented.
"""


def _num(v):
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _is_rate(v):
    return isinstance(v, dict) and "rate" in v and "n" in v


def _flat_numbers(v):
    return isinstance(v, list) and v and all(isinstance(x, (int, float)) or x is None for x in v)


def lines(value, name="", depth=0, max_items=40):
    """The text lines of one value (a result section), indented by depth."""
    pad = "  " * depth
    if _is_rate(value):
        ci = value.get("ci")
        ci = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        return [f"{pad}{name:32} {_num(value['rate']) if value['rate'] is not None else '-':>7}  n={value['n']}{ci}"]
    if isinstance(value, (int, float, str, bool)) or value is None:
        return [f"{pad}{name:32} {_num(value)}"]
    if _flat_numbers(value):
        return [f"{pad}{name:32} " + " ".join(f"{_num(x) if x is not None else '-':>6}" for x in value[:max_items])]
    out = [f"{pad}{name}"] if name else []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for i, (k, v) in enumerate(items):
        if i == max_items:
            out.append(f"{pad}  ... {len(value) - max_items} more")
            break
        out.extend(lines(v, str(k), depth + (1 if name else 0), max_items))
    return out


def table(result, skip=("config", "n_layer")):
    """The experiment's sections (everything in `result` but the study's own settings) as text."""
    return "\n".join(x for k, v in result.items() if k not in skip for x in lines(v, k))
