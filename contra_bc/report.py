"""`contra-bc report`: one page summing up a pipeline run directory (the demo's last step).

It reads what the other subcommands wrote with --json into the run directory and
compares the trained agent with the random baseline and with the expert that made
the training data. Nothing is recomputed here; a missing stage is reported missing.

Expected layout (examples/demo.sh makes it):

    DIR/expert60/            per-frame expert recordings (downsample-check input)
    DIR/expert20/            throttled 20 Hz expert recordings (training data; the expert row)
    DIR/noisy20/             20 Hz expert runs with injected mistakes (training data, optional)
    DIR/verify.json          replay-verify --json of both
    DIR/downsample.json      downsample-check --json of expert60 (max pooling)
    DIR/control.json         downsample-check --json of expert20 (window 1: the control)
    DIR/dataset.json         build-dataset --json
    DIR/run/                 train output of the model played (metrics.jsonl, loss.png, checkpoints; the demo
                             trains DIR/run-first, then DIR/run from it: a second learning-rate cycle)
    DIR/eval/evaluation.json play --episodes ... --out DIR/eval (clean starts)
    DIR/eval-perturbed/evaluation.json
                             play --sticky 0.25 --noop-max 30 ... --out DIR/eval-perturbed (the headline)
    DIR/causality.json       causality-score --json

Each evaluation may hold the agent, the random baseline and the scripted expert (`play --expert`)
on the same seeds; where the clean one has no expert, the expert row is read from expert20/ (the
training runs, on other seeds).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from contra_bc.emulator import get_game, level_start, progress_of
from contra_bc.errors import UserError
from contra_bc.formats import atomic
from contra_bc.formats.recording import find_recordings, read_recording
from contra_bc.formats.results import read_causality, read_evaluation, read_stage, repeated


# the evaluations a run folder may hold: name -> folder (see the layout above)
EVALUATIONS = {"clean": "eval", "perturbed": "eval-perturbed"}
# what the pipeline's stages write into a run folder
STAGE_OUTPUTS = ("verify.json", "downsample.json", "control.json", "dataset.json", "eval/evaluation.json",
                 "eval-perturbed/evaluation.json", "causality.json", "run/metrics.jsonl", "expert20")
# the targets report.md checks (issue 31): clean starts, and the perturbed win rate against the expert's
CLEAN_TARGET = 0.9            # wins on clean starts ...
CLEAN_DISTINCT = 15           # ... over at least this many different episodes
PERTURBED_SHARE_TARGET = 0.9  # perturbed win rate >= this share of the expert's on the same seeds


def expert_summary(folder: Path) -> dict | None:
    """Win rate, progress, score and deaths of the expert recordings (from their meta)."""
    if not folder.is_dir():
        return None
    metas = [read_recording(p).meta for p in find_recordings([folder])]
    if not metas:
        return None
    game = get_game(metas[0]["game"])
    progress = [progress_of(game, m.get("final_variables", {})) for m in metas]
    n = len(metas)
    return {
        "episodes": n,
        "win_rate": sum(m["outcome"] == "win" for m in metas) / n,
        "progress_mean": sum(progress) / n,
        "score_mean": sum(m.get("final_variables", {}).get("score", 0) for m in metas) / n,
        "deaths_mean": sum(m.get("deaths", 0) for m in metas) / n,
        "steps_mean": sum(m["steps"] for m in metas) / n,
        "latency_ms_p50": None,
        "latency_ms_p99": None,
        "source": f"{folder.name}/: the training runs",
    }


def _evaluation(evaluation: dict | None, folder: str, expert_runs: dict | None) -> dict | None:
    """One evaluation of the run: its perturbation, seeds and per-policy summaries, each policy's
    progress as a share of the expert's (the evaluation's own expert, else the training runs'), both
    counted from the start of the level the evaluation began on."""
    if evaluation is None:
        return None
    policies = dict(evaluation.get("policies", {}))
    if "expert" not in policies and expert_runs:
        policies["expert"] = expert_runs
    # progress counts levels too ((level·256 + screen)·256 + offset): share it from the start of the
    # level the episodes began on, or on Level 2 a policy that died at once would get 98% of the expert
    reached = [x for s in policies.values() for x in (s.get("progress") or [s.get("progress_mean")]) if x is not None]
    base = level_start(reached)
    expert_progress = (policies.get("expert") or {}).get("progress_mean")
    for summary in policies.values():
        p = summary.get("progress_mean")
        summary["progress_vs_expert"] = ((p - base) / (expert_progress - base)
                                         if (p is not None and expert_progress and expert_progress > base) else None)
    return {"folder": folder, "perturbation": evaluation.get("perturbation") or {"sticky": 0.0, "noop_max": 0},
            "seeds": evaluation.get("seeds"), "temperature": evaluation.get("temperature"),
            "evaluated_on": f"{evaluation.get('game')}, {evaluation.get('state')}", "policies": policies}


def verdict(evaluations: dict) -> dict | None:
    """The agent against the targets: >= 90% wins on clean starts over >= 15 different episodes; under
    the perturbation, >= 90% of the expert's win rate on the same seeds. Each part None without its data."""
    out = {}
    clean = (evaluations.get("clean") or {}).get("policies", {})
    agent = clean.get("agent")
    if agent and agent.get("win_rate") is not None:
        distinct = agent.get("distinct_episodes", agent.get("episodes"))
        out["clean"] = {"win_rate": agent["win_rate"], "win_rate_ci95": agent.get("win_rate_ci95"),
                        "distinct_episodes": distinct, "target": CLEAN_TARGET, "min_distinct": CLEAN_DISTINCT,
                        "met": agent["win_rate"] >= CLEAN_TARGET and (distinct or 0) >= CLEAN_DISTINCT}
    perturbed = evaluations.get("perturbed") or {}
    agent, expert = (perturbed.get("policies", {}).get(k) for k in ("agent", "expert"))
    if agent and agent.get("win_rate") is not None:
        part = {"win_rate": agent["win_rate"], "win_rate_ci95": agent.get("win_rate_ci95"),
                "episodes": agent.get("episodes"), "perturbation": perturbed.get("perturbation"),
                "expert_win_rate": None, "share_of_expert": None, "target_share": PERTURBED_SHARE_TARGET, "met": None}
        if expert and expert.get("win_rate") is not None and "source" not in expert:
            part["expert_win_rate"] = expert["win_rate"]
            part["expert_win_rate_ci95"] = expert.get("win_rate_ci95")
            part["share_of_expert"] = agent["win_rate"] / expert["win_rate"] if expert["win_rate"] else None
            part["met"] = agent["win_rate"] >= PERTURBED_SHARE_TARGET * expert["win_rate"]
        out["perturbed"] = part
    for name, ev in evaluations.items():  # ahead of random buttons, where random buttons were played
        pol = (ev or {}).get("policies", {})
        if "agent" in pol and "random" in pol and name in out:
            out[name]["ahead_of_random"] = (pol["agent"].get("progress_mean") or 0) > (pol["random"].get("progress_mean") or 0)
    return out or None


def build_report(run_dir: Path) -> dict:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a directory; give the folder the demo wrote (e.g. demo-out).")
    stages = [run_dir / p for p in STAGE_OUTPUTS]
    if not any(p.exists() for p in stages):
        raise UserError(f"{run_dir} is not a pipeline run: it holds none of {', '.join(STAGE_OUTPUTS)}. `report` "
                        f"writes report.md and report-images/ into such a folder (examples/demo.sh makes one), so it "
                        f"leaves other folders alone.")
    verify = read_stage(run_dir / "verify.json")
    downsample = read_stage(run_dir / "downsample.json")
    control = read_stage(run_dir / "control.json")
    dataset = read_stage(run_dir / "dataset.json")
    expert_runs = expert_summary(run_dir / "expert20")
    evaluations = {}
    for name, folder in EVALUATIONS.items():
        ev = _evaluation(read_evaluation(run_dir / folder / "evaluation.json"), folder,
                         expert_runs if name == "clean" else None)
        if ev:
            evaluations[name] = ev
    causality = read_causality(run_dir / "causality.json")
    validation = last_validation(run_dir / "run")
    return {
        "run_dir": str(run_dir),
        "replay_verify": None if verify is None else {
            "recordings": len(verify), "verified": sum(r["status"] == "verified" for r in verify)},
        "downsample": None if downsample is None else downsample["summary"],
        "control": None if control is None else control["summary"],
        "dataset": dataset,
        "evaluations": evaluations,
        "verdict": verdict(evaluations),
        "causality": causality,
        "validation": validation,
    }


def last_validation(run: Path) -> dict | None:
    """The last validation record of a training run's metrics.jsonl (None if there is none)."""
    from contra_bc.formats.checkpoint import read_metrics

    rows = read_metrics(run, "val")
    return rows[-1] if rows else None


def _wins(s: dict) -> str:
    ci = s.get("win_rate_ci95")
    if s.get("win_rate") is None:
        return "-"
    return f"{s.get('wins', round(s['win_rate'] * s['episodes']))} of {s['episodes']}" + \
        (f" ({ci[0]:.0%}–{ci[1]:.0%})" if ci else "")


def _episodes(s: dict) -> str:
    distinct = repeated(s)
    return f"{s.get('episodes')}" + (f" ({distinct} different)" if distinct is not None else "")


def describe_perturbation(p: dict | None) -> str:
    p = p or {}
    if not p.get("sticky") and not p.get("noop_max"):
        return "clean starts"
    return f"sticky {p.get('sticky', 0):g}, no-op start 0–{p.get('noop_max', 0)}"


def _fmt(v, pct=False):
    if v is None:
        return "-"
    if pct:
        return f"{v:.0%}"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def write_markdown(report: dict, run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    images = run_dir / "report-images"
    images.mkdir(exist_ok=True)
    lines = ["# contra-bc pipeline report", "", f"Run directory: `{report['run_dir']}`", ""]
    rv = report["replay_verify"]
    if rv:
        lines += [f"- **replay-verify**: {rv['verified']} of {rv['recordings']} recordings reproduce bit for bit."]
    ds = report["downsample"]
    if ds:
        lines += [f"- **downsample-check** (max pooling, 60 → 20 Hz): **{ds['headline']}**; "
                  f"median first divergence {_fmt(ds.get('median_first_divergence_s'))} s, "
                  f"{_fmt(ds.get('mean_actions_changed'), True)} of actions changed."]
    ct = report["control"]
    if ct:
        lines += [f"- **control** (throttled 20 Hz recordings, window 1): {ct['headline']}."]
    evaluations = report["evaluations"]
    if evaluations:
        first = next(iter(evaluations.values()))
        lines += ["", f"## Agent vs expert vs random ({first['evaluated_on']})", "",
                  "`agent` is the trained policy, `expert` the scripted expert (`play --expert`, on the same seeds "
                  "and perturbations as the agent; where an evaluation has none, the expert20/ training runs), "
                  "`random` random buttons held for random stretches. Under **sticky actions** each step, with "
                  "probability p, the previous executed action runs instead of the chosen one; a **no-op start** "
                  "waits 0–N steps before the policy drives (the standard robustness protocol of game agents: "
                  "from one start state the emulator is deterministic, so only perturbations make episodes differ "
                  "and test whether a policy reacts to what it sees or replays a route).", ""]
        names = [n for n in ("agent", "expert", "random")
                 if any(n in ev["policies"] for ev in evaluations.values())]
        names += sorted({n for ev in evaluations.values() for n in ev["policies"]} - set(names))
        head = "| policy | " + " | ".join(f"{describe_perturbation(ev['perturbation'])}: wins (95% CI) | "
                                         f"episodes | mean progress | vs expert" for ev in evaluations.values()) + " |"
        lines += [head, "|---|" + "---|---|---|---|" * len(evaluations)]
        for name in names:
            cells = []
            for ev in evaluations.values():
                s = ev["policies"].get(name)
                cells += ([_wins(s), _episodes(s), _fmt(s.get("progress_mean")), _fmt(s.get("progress_vs_expert"), True)]
                          if s else ["-"] * 4)
            sources = [ev["policies"][name]["source"] for ev in evaluations.values()
                       if ev["policies"].get(name, {}).get("source")]
            label = f"{name} ({sources[0]})" if sources else name
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += [""]
        for name, ev in evaluations.items():
            seeds = ev.get("seeds")
            lines.append(f"- {name} ({describe_perturbation(ev['perturbation'])}): `{ev['folder']}/`, temperature "
                         f"{ev.get('temperature')}" + (f", seeds {seeds[0]:,}–{seeds[1]:,}" if seeds else "") + ".")
        lines += ["", "Progress is `(level·256 + screen)·256 + offset` from the game's RAM, the furthest point "
                  "reached in the episode. A win is clearing the level within the lives the game gives. Evaluation "
                  "seeds are apart from every seed that made training data. Episodes with the same actions from the "
                  "same start state are one episode played again; where a policy played fewer different episodes "
                  "than it ran, `episodes` says so and its interval counts the repeats as independent.", ""]
    v = report["verdict"] or {}
    if v.get("perturbed"):
        p = v["perturbed"]
        ci = p.get("win_rate_ci95") or [0, 1]
        line = (f"Under {describe_perturbation(p['perturbation'])} the agent won {round(p['win_rate'] * p['episodes'])} "
                f"of {p['episodes']} episodes ({p['win_rate']:.0%}, 95% CI {ci[0]:.0%}–{ci[1]:.0%})")
        if p["expert_win_rate"] is not None:
            eci = p.get("expert_win_rate_ci95") or [0, 1]
            share = "-" if p["share_of_expert"] is None else f"{p['share_of_expert']:.0%}"
            line += (f", the expert {p['expert_win_rate']:.0%} ({eci[0]:.0%}–{eci[1]:.0%}) on the same seeds: "
                     f"{share} of the expert's win rate against the target of {p['target_share']:.0%}, "
                     + ("**met**." if p["met"] else "**not met**."))
        else:
            line += "; no expert ran beside it, so there is no target to check (`play --expert bot:NAME`)."
        if p.get("episodes", 0) < 50:
            line += (f" Only {p['episodes']} episodes: the interval is wide (the demo keeps its evaluation short; "
                     f"`play --episodes 50` or more for a headline number).")
        lines.append(line)
    if v.get("clean"):
        c = v["clean"]
        ci = c.get("win_rate_ci95") or [0, 1]
        lines.append(f"On clean starts the agent won {c['win_rate']:.0%} (95% CI {ci[0]:.0%}–{ci[1]:.0%}) over "
                     f"{c['distinct_episodes']} different episodes, against the target of {c['target']:.0%} over at "
                     f"least {c['min_distinct']}: " + ("**met**." if c["met"] else "**not met**."))
    for name, part in v.items():
        if "ahead_of_random" in part:
            lines.append(f"In the {name} evaluation the agent got " + ("further than" if part["ahead_of_random"]
                                                                       else "no further than")
                         + " the random baseline.")
    val = report.get("validation")
    buttons = sorted({k.split("/", 1)[1] for k in (val or {}) if k.startswith("presses/") and val[k]})
    if buttons:
        lines += ["", f"## Decisive actions on the validation split (step {val.get('step')})", "",
                  "Press edges (a button going down) are rare and decide the game: a jump start, a shot. "
                  "Per-button accuracy hides them; these count them. Recall and precision of the most likely "
                  "action, and the mean probability the policy gives the press where the expert pressed.", "",
                  "| button | presses | recall | precision | mean P(press) at a press |", "|---|---|---|---|---|"]
        for b in buttons:
            lines.append(f"| {b} | {val.get(f'presses/{b}')} | {_fmt(val.get(f'press_recall/{b}'))} | "
                         f"{_fmt(val.get(f'press_precision/{b}'))} | {_fmt(val.get(f'press_prob/{b}'))} |")
    c = report["causality"]
    if c:
        score = c["score"]
        lines += ["", "## Causality score", "",
                  f"Score {_fmt(score)} (mean per chunk {_fmt(c['mean_per_chunk'])}, "
                  f"spread {_fmt(c['spread'])}), p = {c['p']}, C = {c['chunks']}: the KL "
                  f"between the policy's action distributions on original frames and on frames swapped with "
                  f"other scenes. Zero would mean the policy ignores what it sees."]
    pictures = []
    sources = [("First divergence of a pooled expert run", _first_png(run_dir)),
               ("Training and validation loss", run_dir / "run" / "loss.png")]
    sources += [(f"Where the episodes' deaths happened, {describe_perturbation(ev['perturbation'])} (progress at "
                 f"each death)", run_dir / ev["folder"] / "deaths.png") for ev in evaluations.values()]
    for label, src in sources:
        if src and Path(src).is_file():
            dst = images / (Path(src).name if Path(src).parent.name not in EVALUATIONS.values()
                            else f"{Path(src).parent.name}-{Path(src).name}")
            shutil.copyfile(src, dst)
            pictures.append((label, dst.relative_to(run_dir)))
    headline = evaluations.get("perturbed") or evaluations.get("clean")
    pictures += _clips(run_dir, images, headline["folder"] if headline else None)
    if pictures:
        lines += ["", "## Pictures", ""]
        for label, rel in pictures:
            lines += [f"### {label}", "", f"![{label}]({rel})", ""]
    path = run_dir / "report.md"
    atomic.write_text(path, "\n".join(lines) + "\n")
    return path


CLIP_STEPS = 300   # 15 s at 20 Hz


def _clips(run_dir: Path, images: Path, folder: str | None) -> list[tuple[str, Path]]:
    """GIFs of the agent's best and worst episodes of the evaluation in ``folder`` beside the first
    expert recording: the last CLIP_STEPS steps of the best (how far it got, or how it won) and the
    CLIP_STEPS steps up to the worst one's first death."""
    from contra_bc.render import render

    if folder is None:
        return []
    evaluation = read_evaluation(run_dir / folder / "evaluation.json") or {}
    episodes = [e for e in (evaluation.get("episodes_detail") or {}).get("agent", [])
                if e.get("recording") and Path(e["recording"]).is_dir()]
    experts = find_recordings([run_dir / "expert20"]) if (run_dir / "expert20").is_dir() else []
    if not episodes or not experts:
        return []
    best = max(episodes, key=lambda e: (e.get("progress", 0), -e.get("steps", 0)))
    worst = min(episodes, key=lambda e: (e.get("progress", 0), e.get("steps", 0)))
    clips = []
    for kind, e in (("best", best), ("worst", worst)):
        rec = read_recording(Path(e["recording"]))
        deaths = [i for i, ev in enumerate(rec.column("event")) if ev in ("death", "game_over")]
        end = min(rec.n_steps, deaths[0] + 20) if kind == "worst" and deaths else rec.n_steps
        out = images / f"agent-{kind}.gif"
        if out.exists():
            out.unlink()  # report-images/ is the report's own folder: rewritten on every run
        render([Path(e["recording"]), experts[0]], out, scale=1, start=max(0, end - CLIP_STEPS), stop=end,
               labels=[f"agent, {kind} episode ({e.get('outcome')}, progress {e.get('progress')})",
                       f"expert ({experts[0].name})"])
        clips.append((f"The agent's {kind} episode of {folder}/ ({describe_perturbation(evaluation.get('perturbation'))}) "
                      f"beside the expert (steps {max(0, end - CLIP_STEPS)}-{end})", out.relative_to(run_dir)))
    return clips


def _first_png(run_dir: Path):
    data = read_stage(run_dir / "downsample.json")
    if not data:
        return None
    for r in data.get("recordings", []):
        if r.get("png"):
            return r["png"]
    return None


def policy_rows(report: dict) -> list[dict]:
    """The comparison table printed by `contra-bc report`: one row per evaluation and policy."""
    return [{"evaluation": evaluation, "policy": name, "episodes": _episodes(s),
             "wins (95% CI)": _wins(s),
             "progress": _fmt(s.get("progress_mean")),
             "vs expert": _fmt(s.get("progress_vs_expert"), True),
             "deaths": _fmt(s.get("deaths_mean")),
             "ms p50/p99": "-" if s.get("latency_ms_p50") is None
             else f"{s['latency_ms_p50']:.0f}/{s['latency_ms_p99']:.0f}"}
            for evaluation, ev in report["evaluations"].items() for name, s in ev["policies"].items()]
