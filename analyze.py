"""Does the model plan line 2's ending, where, and does it use the plan?

`python analyze.py` runs one study (interp/study.py) on every trained model it finds under out/ —
the main model and each variant of worlds.MODELS, every seed — and writes

    out/report/results.json   every number, per model: the full results of seed 0, the headline of
                              each seed, and the headline as mean and [min, max] over seeds
    out/report/index.html     the report, rendered from results.json alone
    out/report/results.md     every headline number as Markdown tables (docs/results.md is a copy)
    out/report/graphs/        every model's featured attribution graph as circuit-tracer's graph JSON,
                              for its viewer (docs/viewer.md)

`python analyze.py --only patching` runs one experiment (interp/study.EXPERIMENTS) on one model
(`--variant`, `--training-seed`; default the main model, seed 0) and prints it as a table; the
result is also written to out/report/only/patching.json.
`python analyze.py --compare OLD/results.json` writes out/report/compare.md: every headline of that run
beside this one's (docs/recipe-change.md is one).
`python analyze.py --render-only` re-renders the page and the graphs from results.json (byte-identical).
`python analyze.py --prompt "she saw a goat and went to find a cake"` runs your own line 1.
`python analyze.py --list-words` prints the vocabulary by meaning and rhyme family.
"""
from dataclasses import asdict, dataclass, replace
import argparse
import json
import os
import sys
import time

from plumbing import numerics  # first: pins the CPU code paths before torch loads
from data import world_from_dict
from couplet_rules import parse_line1, check_couplet
from lexicon import NOUNS, MEANINGS, FAMILIES
from model import load_checkpoint, CheckpointError
from interp.edits import write_line2, ending_logits
from interp.claims import checked
from interp.stats import over_seeds
from interp.headline import headline, HEADLINE, SITE_KEYS
from interp.study import StudyConfig, study, featured_graph, EXPERIMENTS
from interp.transcoder import load_clt, model_fingerprint
from interp.graph_export import circuit_tracer_graph, report_graphs, viewer_url, write_graph_files
from page.render import render, prompt_page
from page.markdown import markdown
from page.terminal import table
from page.compare import comparison
from plumbing import cli
from plumbing.files import write_json, write_text, WriteError, remove_stale_temps
from plumbing.processes import results_of, ChildFailed
from plumbing.progress import stage
import worlds


CLT_EVERY_SEED = ("main", "committed")


@dataclass(frozen=True)
class AnalyzeConfig:
    out: str = "out"            # where train.py wrote the checkpoints
    report: str = ""            # the report folder (default OUT/report)
    only_main: bool = False     # study the main model only, even when variants are trained

    def validate(self):
        return self

    def report_dir(self):
        return self.report or os.path.join(self.out, "report")


def trained_runs(cfg):
    """{model name: [(seed, checkpoint path)]} for every checkpoint present, main first."""
    runs = {}
    for name in worlds.MODELS:
        if cfg.only_main and name != "main":
            continue
        for seed in range(10):
            path = worlds.checkpoint_path(cfg.out, name, seed)
            if not os.path.exists(path):
                continue
            if not load_checkpoint(path)[1].get("metrics"):  # an interrupted run: its weights are half-trained
                if name == "main" and seed == 0:
                    raise CheckpointError(f"{path} is an unfinished run; finish it with `python train.py --resume "
                                          f"--out {cfg.out}` first")
                stage(f"skipping {name} seed {seed}: {path} is an unfinished run (train.py --all finishes it)")
                continue
            runs.setdefault(name, []).append((seed, path))
    if "main" not in runs:
        raise CheckpointError(f"{worlds.checkpoint_path(cfg.out, 'main')}: no such checkpoint; "
                              f"run `python train.py` to create it")
    return runs


def aggregate(per_seed):
    """The headline over seeds: each key's mean and `<key>_range` = [min, max] (every key means one
    thing in every seed, so the mean is of like with like); the sites, which differ between seeds,
    as the list of each seed's; `n` as each key's per-seed n."""
    out = {"n_seeds": len(per_seed)}
    for k in HEADLINE:
        out[k], out[k + "_range"] = over_seeds([h[k] for h in per_seed])
    for k in SITE_KEYS:
        out[k] = [h[k] for h in per_seed]
    out["n"] = {k: [h["n"].get(k) for h in per_seed] for k in HEADLINE}
    out["k"] = {k: [h.get("k", {}).get(k) for h in per_seed] for k in HEADLINE}
    out["ci"] = {k: [h["ci"].get(k) for h in per_seed] for k in HEADLINE}
    out["noop"] = {k: [h.get("noop", {}).get(k) for h in per_seed] for k in HEADLINE}
    return out


def load(path):
    """load_checkpoint, saying when the checkpoint was computed under other CPU settings than this analysis
    runs under (its numbers are then its own: another machine's bits, not docs/results.md's)."""
    model, ckpt = load_checkpoint(path)
    moved = numerics.differences(ckpt.get("numerics"))
    if moved:
        stage(f"note: {path} was trained under other CPU settings ({numerics.describe(moved)}); its numbers "
              f"will not equal a pinned run's (plumbing/numerics.py)")
    return model, ckpt


def study_one(name, seed, path, scfg):
    """One (model, seed): load, study, and keep what the report needs of its checkpoint."""
    model, ckpt = load(path)
    world = world_from_dict(ckpt["world_config"])
    stage(f"study {name} seed {seed}")
    r = study(model, world, scfg, progress=lambda s: stage(f"  {name} seed {seed}: {s}"),
              clt_path=os.path.join(os.path.dirname(path), "clt.pt"))
    r["world_config"], r["model_config"] = ckpt["world_config"], ckpt["model_config"]
    r["train_metrics"] = {k: ckpt["metrics"].get(k) for k in ("steps", "train_seconds", "final_loss")}
    r["numerics"] = {"trained": ckpt.get("numerics") or None, "analyzed": numerics.state()}
    return r


def in_children(work, procs, threads):
    """study_one for every (name, seed, path, study config), `procs` child processes at a time (each
    `python analyze.py --study-one ...` on its share of the cores); their results, in order."""
    return results_of([(f"the study of {name} seed {seed}",
                        [sys.executable, os.path.abspath(__file__), "--study-one", name, str(seed), path,
                         "--threads", str(threads), *cli.flags(**asdict(scfg))])
                       for name, seed, path, scfg in work], procs, capture=False)


def run(cfg, scfg, jobs=1, threads=None):
    """Every (model, seed) through the one study, `jobs` processes at a time (each study is a pure
    function of its checkpoint and settings, so the order of the work changes no number)."""
    t0 = time.time()
    runs = trained_runs(cfg)
    if len(runs) == 1:  # the quick path (the main model alone): the dictionary-size comparison is the full study's
        scfg = replace(scfg, clt_compare="")
    results = {"format": "couplet-planning-results", "study_config": scfg.__dict__, "models": {}}
    # the transcoder on every seed of the models whose shape claims read its features, on the first seed of the
    # others (a transcoder costs about a minute); its dictionary-size comparison on the main model's first seed only
    work = [(name, seed, path, replace(scfg, clt=scfg.clt and (seed == seeds[0][0] or name in CLT_EVERY_SEED),
                                       clt_compare=scfg.clt_compare if name == "main" and seed == seeds[0][0] else ""))
            for name, seeds in runs.items() for seed, path in seeds]
    procs = min(jobs, len(work))
    if procs > 1:
        found = in_children(work, procs, cli.share_of_cores(threads, procs))
    else:
        found = [json.loads(json.dumps(study_one(*job))) for job in work]  # as a child's result reads back
    done = [(name, seed, r) for (name, seed, _, _), r in zip(work, found)]
    for name in runs:
        mine = [(seed, r) for n, seed, r in done if n == name]
        per_seed = [{"seed": seed, **headline(r)} for seed, r in mine]
        # a seed can leave a number unmeasured (no pair with two different endings): say how many seeds it rests on
        measured = {k: sum(h[k] is not None for h in per_seed) for k in HEADLINE}
        results["models"][name] = {"what": worlds.MODELS[name].what,
                                   "shape_prediction": worlds.MODELS[name].prediction,
                                   "predictions": checked(worlds.MODELS[name].expect, per_seed),
                                   "circuit_prediction": worlds.MODELS[name].circuit_prediction,
                                   "headline": aggregate(per_seed),
                                   "headline_seeds_measured": measured, "seeds": per_seed, **mine[0][1]}
    search = os.path.join(cfg.out, "search", "search.json")
    if os.path.exists(search):
        results["search"] = json.load(open(search))
    results["seconds"] = round(time.time() - t0, 1)
    return results


def write_report(results, folder):
    write_json(os.path.join(folder, "results.json"), results)
    # the page is rendered from the file just written, never from memory: what the page shows is in the file
    render_only(folder)


def read_results(path):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no results to read; run `python analyze.py` first")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError:
        raise ValueError(f"{path} is not valid JSON; run `python analyze.py` to rewrite it") from None


def render_only(folder):
    results = read_results(os.path.join(folder, "results.json"))
    write_text(os.path.join(folder, "index.html"), render(results))
    write_text(os.path.join(folder, "results.md"), markdown(results))
    write_graph_files(os.path.join(folder, "graphs"), report_graphs(results))


def only_one(cfg, scfg, experiment, variant, seed):
    """One experiment on one model: its sections of the study, printed and written to OUT/report/only/."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"--only must be one of {', '.join(EXPERIMENTS)}, got {experiment!r}")
    if variant not in worlds.MODELS:
        raise ValueError(f"--variant must be one of {', '.join(worlds.MODELS)}, got {variant!r}")
    path = worlds.checkpoint_path(cfg.out, variant, seed)
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such checkpoint; train it with `python train.py --variant {variant} "
                              f"--seed {seed} --out {os.path.dirname(path)}`")
    model, ckpt = load(path)
    world = world_from_dict(ckpt["world_config"])
    r = study(model, world, replace(scfg, clt=True), progress=lambda s: stage(f"{variant} seed {seed}: {s}"),
              clt_path=os.path.join(os.path.dirname(path), "clt.pt"), only=experiment)
    print(table(r))
    target = os.path.join(cfg.report_dir(), "only", f"{experiment}.json")
    write_json(target, {"model": variant, "training_seed": seed, **r})
    print(f"written: {target}")


# ---- --prompt and --list-words ------------------------------------------------------------------------
def list_words():
    lines = [f"{'':10}" + "".join(f"{f:>14}" for f in FAMILIES)]
    for m in MEANINGS:
        cells = [" ".join(sorted(w for w, n in NOUNS.items() if n.meaning == m and n.family == f)) or "-"
                 for f in FAMILIES]
        lines.append(f"{m:10}" + "".join(f"{c[:13]:>14}" for c in cells))
    return "\n".join(lines)


def your_prompt(cfg, text):
    """Print the model's line 2, its candidates and summary graph; write the prompt's page."""
    model, ckpt = load(worlds.checkpoint_path(cfg.out, "main"))
    world = world_from_dict(ckpt["world_config"])
    line1 = text.lower().replace(",", " ").split()
    unknown = [w for w in line1 if w not in world.stoi]
    if unknown:
        raise ValueError(f"not in the vocabulary: {' '.join(unknown)} (see --list-words)")
    parsed = parse_line1(line1, world.config)  # ValueError says what is wrong with the grammar
    line2 = write_line2(model, world, [line1])[0]
    p = {"line1": line1, "line2": line2, "broken": check_couplet(line1, line2, world.config), "candidates": [],
         "reading": f"meaning noun {parsed.cue} ({NOUNS[parsed.cue].meaning}), rhyme noun {parsed.rhyme} "
                    f"(-{NOUNS[parsed.rhyme].family})", "graph": None,
         "no_graph": "summary graph: needs a noun ending and the transcoder `python analyze.py` caches"}
    print(f"line 1: {' '.join(line1)}\nline 2: {' '.join(line2)}")
    if line2:  # the model's candidates for the ending, with the rest of its line 2 teacher-forced
        top = ending_logits(model, world, [line1], [line2[:-1]])[0].softmax(-1).topk(5)
        p["candidates"] = [(world.itos[i], q) for q, i in zip(top.values.tolist(), top.indices.tolist())]
        print("ending candidates: " + ", ".join(f"{w} {q:.2f}" for w, q in p["candidates"]))
    print(p["reading"] + ": " + ("a valid couplet" if not p["broken"] else f"breaks {', '.join(p['broken'])}"))
    cached = load_clt(os.path.join(os.path.dirname(worlds.checkpoint_path(cfg.out, "main")), "clt.pt"))
    if cached is not None and cached[1].get("model_fingerprint") != model_fingerprint(model):
        cached, p["no_graph"] = None, "summary graph: the cached transcoder imitates other weights; run `python analyze.py`"
    if cached is not None and len(line2) >= 2 and line2[-1] in NOUNS:
        g = p["graph"] = featured_graph(model, cached[0], world, line1, line2)
        print(f"summary graph ({g['kept_features']} features kept, replacement {g['replacement']:.2f}):")
        for b in g["boxes"]:
            print(f"  [{b['name']}] {b['words']}: {b['features']} features" + "".join(f"; {x}" for x in b["labels"]))
        for a in g["arrows"]:
            print(f"  {a['source']} -> {a['target']}: {a['weight']:.1f}")
        ct = circuit_tracer_graph(g, "prompt", cached[0].n_features, "couplets-main")  # main's transcoder
        graph_file = write_graph_files(os.path.join(cfg.report_dir(), "graphs"), [ct])[0]
        print(f"circuit-tracer graph: {graph_file}; in its viewer (docs/viewer.md): {viewer_url(ct)}")
    else:
        print(p["no_graph"])
    path = os.path.join(cfg.report_dir(), "prompt.html")
    write_text(path, prompt_page(p))
    print(f"page: {path}")


def main(argv=None):
    p = cli.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_dataclass_flags(p, AnalyzeConfig, "where")
    cli.add_dataclass_flags(p, StudyConfig, "the study (prompts per set, transcoder)")
    cli.add_threads_flag(p)
    p.add_argument("--jobs", type=int, default=cli.cores(),
                   help="studies run in parallel processes, each on its share of the cores (default: one per core)")
    p.add_argument("--render-only", action="store_true", help="re-render index.html and graphs/ from results.json")
    p.add_argument("--compare", metavar="OLD_RESULTS_JSON",
                   help="write compare.md: that run's headlines beside this report's results.json")
    p.add_argument("--prompt", help="your own line 1 (words from --list-words)")
    p.add_argument("--list-words", action="store_true", help="the vocabulary by meaning and rhyme family")
    p.add_argument("--study-one", nargs=3, metavar=("NAME", "SEED", "PATH"), help=argparse.SUPPRESS)  # run()'s child
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--only", help=f"one experiment on one model, as a table: {', '.join(EXPERIMENTS)}")
    p.add_argument("--variant", default="main", help="with --only: the model of worlds.py (default main)")
    p.add_argument("--training-seed", type=int, default=0, help="with --only: its training seed (default 0)")
    args = p.parse_args(argv)

    def body():
        cfg, scfg = cli.pick(AnalyzeConfig, args), cli.pick(StudyConfig, args)
        cli.set_threads(args.threads)
        if args.list_words:
            print(list_words())
        elif args.prompt is not None:
            your_prompt(cfg, args.prompt)
        elif args.study_one:
            name, seed, path = args.study_one
            write_json(args.result, study_one(name, int(seed), path, scfg))
        elif args.only is not None:
            only_one(cfg, scfg, args.only, args.variant, args.training_seed)
        elif args.compare:
            old, new = (read_results(path) for path in (args.compare, os.path.join(cfg.report_dir(), "results.json")))
            label = lambda path: os.path.basename(os.path.dirname(os.path.abspath(path)))  # the report folder
            write_text(os.path.join(cfg.report_dir(), "compare.md"),
                       comparison(old, new, label(args.compare), label(os.path.join(cfg.report_dir(), "x"))))
            print(f"written: {os.path.join(cfg.report_dir(), 'compare.md')}")
        elif args.render_only:
            render_only(cfg.report_dir())
            print(f"report: {os.path.join(cfg.report_dir(), 'index.html')}")
        else:
            remove_stale_temps(cfg.report_dir())
            if args.jobs < 1:
                raise ValueError(f"--jobs must be at least 1, got {args.jobs}")
            results = run(cfg, scfg, args.jobs, args.threads)
            write_report(results, cfg.report_dir())
            for name, m in results["models"].items():
                h = m["headline"]
                print(f"{name}: " + ", ".join(f"{k} {h[k]:.3f}" for k in HEADLINE if isinstance(h.get(k), float)))
            print(f"report: {os.path.join(cfg.report_dir(), 'index.html')} ({results['seconds']:.0f} s)")
    return cli.run_main("analyze.py", body, known_errors=(CheckpointError, WriteError, ChildFailed))


if __name__ == "__main__":
    sys.exit(main())
