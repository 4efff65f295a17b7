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
    DIR/run/                 train output (metrics.jsonl, loss.png, checkpoints)
    DIR/eval/evaluation.json play --episodes ... --out DIR/eval
    DIR/causality.json       causality-score --json
"""

from __future__ import annotations

import shutil
from pathlib import Path

from contra_bc.emulator import get_game, progress_of
from contra_bc.errors import UserError
from contra_bc.formats import atomic
from contra_bc.formats.recording import find_recordings, read_recording
from contra_bc.formats.results import read_causality, read_evaluation, read_stage, repeated


# what the pipeline's stages write into a run folder (see the layout above)
STAGE_OUTPUTS = ("verify.json", "downsample.json", "control.json", "dataset.json", "eval/evaluation.json",
                 "causality.json", "run/metrics.jsonl", "expert20")


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
    }


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
    evaluation = read_evaluation(run_dir / "eval" / "evaluation.json")
    causality = read_causality(run_dir / "causality.json")
    expert = expert_summary(run_dir / "expert20")
    validation = last_validation(run_dir / "run")
    policies = {}
    if expert:
        policies["expert"] = expert
    if evaluation:
        for name, summary in evaluation.get("policies", {}).items():
            policies[name] = summary
    expert_progress = expert["progress_mean"] if expert else None
    for summary in policies.values():
        p = summary.get("progress_mean")
        summary["progress_vs_expert"] = (p / expert_progress) if (p is not None and expert_progress) else None
    agent = policies.get("agent")
    verdict = None
    if agent and agent.get("win_rate") is not None:
        share = agent.get("progress_vs_expert")
        rnd = policies.get("random", {}).get("progress_vs_expert")
        verdict = {
            "agent_win_rate": agent["win_rate"],
            "agent_win_rate_ci95": agent.get("win_rate_ci95"),
            "agent_progress_vs_expert": share,
            "random_progress_vs_expert": rnd,
            "target_win_rate": 0.5,
            "met": agent["win_rate"] >= 0.5,
            "better_than_random": rnd is None or share is None or share > rnd,
        }
    return {
        "run_dir": str(run_dir),
        "evaluated_on": None if evaluation is None else f"{evaluation.get('game')}, {evaluation.get('state')}",
        "replay_verify": None if verify is None else {
            "recordings": len(verify), "verified": sum(r["status"] == "verified" for r in verify)},
        "downsample": None if downsample is None else downsample["summary"],
        "control": None if control is None else control["summary"],
        "dataset": dataset,
        "evaluation_seeds": None if evaluation is None else evaluation.get("seeds"),
        "policies": policies,
        "verdict": verdict,
        "causality": causality,
        "validation": validation,
    }


def last_validation(run: Path) -> dict | None:
    """The last validation record of a training run's metrics.jsonl (None if there is none)."""
    from contra_bc.formats.checkpoint import read_metrics

    rows = read_metrics(run, "val")
    return rows[-1] if rows else None


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
    where = report.get("evaluated_on") or "the evaluation start state"
    lines += ["", f"## Agent vs random vs expert ({where})", "",
              "`expert` is the scripted expert whose recordings in expert20/ are the training data (read from "
              "those recordings); `agent` the trained policy; `random` random buttons held for random "
              "stretches.", "",
              "| policy | episodes | win rate (95% CI) | mean progress | vs expert | progress min / median / max "
              "| score | deaths | latency p50 / p99 ms |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, s in report["policies"].items():
        lat = "-" if s.get("latency_ms_p50") is None else f"{s['latency_ms_p50']:.1f} / {s['latency_ms_p99']:.1f}"
        ci = s.get("win_rate_ci95")
        wins = _fmt(s.get("win_rate"), True) + (f" ({ci[0]:.0%}–{ci[1]:.0%})" if ci else "")
        q = s.get("progress_quartiles")
        spread = f"{q[0]:,} / {q[2]:,} / {q[4]:,}" if q else "-"
        episodes = s.get("episodes")
        if repeated(s) is not None:
            episodes = f"{episodes} ({repeated(s)} different)"
        lines.append(f"| {name} | {episodes} | {wins} | "
                     f"{_fmt(s.get('progress_mean'))} | {_fmt(s.get('progress_vs_expert'), True)} | {spread} | "
                     f"{_fmt(s.get('score_mean'))} | {_fmt(s.get('deaths_mean'))} | {lat} |")
    seeds = report.get("evaluation_seeds")
    lines += ["", "Progress is `(level·256 + screen)·256 + offset` from the game's RAM (level, screen, "
              "scroll), the furthest point reached in the episode. A win is clearing the level within the "
              "lives the game gives."
              + (f" The agent's episodes used sampling seeds {seeds[0]:,}–{seeds[1]:,}, apart from every seed "
                 "that made training data." if seeds else "")
              + (" Episodes with the same actions from the same start state are one episode played again "
                 "(the emulator is deterministic); where a policy played fewer different episodes than it "
                 "ran, its win rate and interval count the repeats as independent."
                 if any(repeated(s) is not None for s in report["policies"].values()) else ""), ""]
    v = report["verdict"]
    if v:
        ci = v.get("agent_win_rate_ci95") or [0, 1]
        line = (f"won {v['agent_win_rate']:.0%} of its episodes (95% CI {ci[0]:.0%}–{ci[1]:.0%}) and reached "
                f"{_fmt(v['agent_progress_vs_expert'], True)} of the expert's mean progress")
        if v["met"]:
            lines.append(f"**The trained agent {line}** (target: 50% wins).")
        else:
            lines.append(f"**The trained agent fell short of the target of 50% wins**: it {line} (random: "
                         f"{_fmt(v['random_progress_vs_expert'], True)} of the expert's progress). "
                         + ("It is still ahead of the random policy." if v["better_than_random"]
                            else "It is not ahead of the random policy."))
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
    for label, src in [("First divergence of a pooled expert run", _first_png(run_dir)),
                       ("Training and validation loss", run_dir / "run" / "loss.png"),
                       ("Where the episodes' deaths happened (progress at each death)", run_dir / "eval" / "deaths.png")]:
        if src and Path(src).is_file():
            dst = images / Path(src).name
            shutil.copyfile(src, dst)
            pictures.append((label, dst.relative_to(run_dir)))
    pictures += _clips(run_dir, images)
    if pictures:
        lines += ["", "## Pictures", ""]
        for label, rel in pictures:
            lines += [f"### {label}", "", f"![{label}]({rel})", ""]
    path = run_dir / "report.md"
    atomic.write_text(path, "\n".join(lines) + "\n")
    return path


CLIP_STEPS = 300   # 15 s at 20 Hz


def _clips(run_dir: Path, images: Path) -> list[tuple[str, Path]]:
    """GIFs of the agent's best and worst evaluation episodes beside the first expert recording:
    the last CLIP_STEPS steps of the best (how far it got, or how it won) and the CLIP_STEPS steps
    up to the worst one's first death."""
    from contra_bc.render import render

    evaluation = read_evaluation(run_dir / "eval" / "evaluation.json") or {}
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
        clips.append((f"The agent's {kind} evaluation episode beside the expert (steps {max(0, end - CLIP_STEPS)}"
                      f"-{end})", out.relative_to(run_dir)))
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
    """The comparison table printed by `contra-bc report`: one row per policy."""
    return [{"policy": name, "episodes": s.get("episodes"),
             "wins": _fmt(s.get("win_rate"), True),
             "progress": _fmt(s.get("progress_mean")),
             "vs expert": _fmt(s.get("progress_vs_expert"), True),
             "score": _fmt(s.get("score_mean")),
             "deaths": _fmt(s.get("deaths_mean")),
             "ms p50/p99": "-" if s.get("latency_ms_p50") is None
             else f"{s['latency_ms_p50']:.0f}/{s['latency_ms_p99']:.0f}"}
            for name, s in report["policies"].items()]
