"""The CPU relay: one long training run carried from machine to machine, one leg per working session.

Every leg resumes the run from the state committed in the repository (`relay/<job>/state.safetensors`, see
relay_state.py), trains at low priority until a deadline, and writes the state back with its record
(`relay/<job>/record.json`): one line per leg (machine, start, wall seconds, images before and after) and the
curve of the job's metrics. The run keeps its own schedule across legs (the learning-rate cosine and the data
order are functions of the step, Adam's moments travel with the weights), so the legs add up to one run; the
count of images and hours is exact, bit-exact resume across machines is not promised (the state is rounded to
float16 once per leg).

Inside a leg the trainer writes its usual orbax checkpoints to `runs/relay/<job>/from-<step>-<state folder id>`
(ignored by git; `leg_workdir`),
and after every checkpoint the relay state and record are rewritten (atomically), so a session that ends
without warning loses at most one checkpoint interval of the leg once the files are committed.

Jobs (`JOBS`): `classifier` and `gan` are the long runs behind the shipped stand-ins; `gan-skips` is `gan` with
the skip generator (a to-RGB picture from every level), started because `gan`'s coarse levels stopped showing;
`gan-inblock` is `gan-skips` with in-block position embeddings below the root, started because `gan-skips`' coarse
seed faded with training (both had let the finest level paint from its absolute positions); `gan-rootpos` keeps a
position embedding at the root only, started because `gan-inblock` drew a 4-pixel grid by 64,000 images;
`gan-coarsepos` drops the finest level's embedding only; `gan-r3gan`,
`gan-mixing` and `gan-today` are the equal-images arms that compare the GAN recipes (README "Choosing the GPU
recipe"). Each names one config file with its argument, and whether Adam's moments travel: the GAN jobs restart
Adam at each leg (measured by scripts/benchmark.py relay_state: over the 200 steps after a restart, losses and
weights differ from the exact continuation no more than after the float16 rounding alone; the state halves, 10.2
→ 4.8 MB).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from nestgen.training import relay_state
from nestgen.training.budget import TimeBudget

STATE_FILE, RECORD_FILE = "state.safetensors", "record.json"


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    trainer: str  # "classifier" or "gan"
    config: str  # a config file with its argument, relative to the repository root
    goal: str  # what the run is for, in one line (printed by --status and kept in the record)
    moments: bool = True  # carry Adam's moments between legs (measured: scripts/benchmark.py relay_state)


JOBS = {job.name: job for job in (
    Job("classifier", "classifier", "configs/classifier_cifar10.py:relay",
        "a 3-level NesT (16 → 4 → 1 blocks) to ≥ 85% CIFAR-10 test top-1, the full recipe"),
    Job("gan", "gan", "configs/gan_cifar10.py:relay",
        "the micro NesT GAN, R3GAN loss + level mixing, to 1.5 M images", moments=False),
    Job("gan-skips", "gan", "configs/gan_cifar10.py:relay,skips",
        "the gan job's recipe with a to-RGB picture from every level, so that the coarse levels' seed shows "
        "(level mixing ≥ 10/255); compared with gan at equal images, then to 1.5 M images if it wins", moments=False),
    Job("gan-inblock", "gan", "configs/gan_cifar10.py:relay,skips,in_block",
        "gan-skips with the position embeddings of the levels below the root shared by their blocks, so that the "
        "finest level cannot paint the layout from its own positions and the coarse seed keeps showing (≥ 10/255); "
        "to 1.5 M images if it holds", moments=False),
    Job("gan-rootpos", "gan", "configs/gan_cifar10.py:relay,skips,root_positions",
        "gan-skips with a position embedding at the root only (below it a token's place comes from its parent, as in "
        "StyleGAN's fine layers), started because gan-inblock's shared in-block embeddings drew a grid into its "
        "pictures; to 1.5 M images if its coarse seed holds (≥ 10/255) and FD_NesT keeps up", moments=False),
    Job("gan-coarsepos", "gan", "configs/gan_cifar10.py:relay,skips,coarse_positions",
        "gan-skips without a position embedding at the finest level only (the level that painted the layout from "
        "its own positions), keeping the coarser levels' absolute ones, since gan-inblock and gan-rootpos lagged "
        "far behind gan in FD_NesT; to 1.5 M images if its coarse seed holds (≥ 10/255) and FD_NesT keeps up",
        moments=False),
    Job("gan-r3gan", "gan", "configs/gan_cifar10.py:relay,arm=r3gan",
        "recipe comparison arm: R3GAN loss without level mixing, 256 k images", moments=False),
    Job("gan-mixing", "gan", "configs/gan_cifar10.py:relay,arm=mixing",
        "recipe comparison arm: level mixing with the non-saturating loss, 256 k images", moments=False),
    Job("gan-today", "gan", "configs/gan_cifar10.py:relay,arm=today",
        "recipe comparison arm: the shipped stand-in's recipe, 256 k images", moments=False),
)}


class RelayError(ValueError):
    """A relay cannot start: unknown job, a deadline in the past, or a committed state that does not fit."""


def machine() -> str:
    """'AMD EPYC 9R14, 2 cores, 24 GiB, Linux x86_64, jax 0.10.2 cpu': the hardware a leg ran on."""
    import jax

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = f", {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB"
    except (ValueError, OSError, AttributeError):
        memory = ""
    return (f"{model}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.machine()}, "
            f"jax {jax.__version__} {jax.default_backend()}")


def parse_until(text: str, now: dt.datetime | None = None) -> float:
    """Seconds from now to `text`: 'HH:MM' (local time, its next occurrence within 12 hours, so 02:10 typed at
    23:40 is tomorrow's) or a number of minutes ('90m'). RelayError for anything else, a time that passed less
    than 12 hours ago, or less than 2 minutes."""
    now = now or dt.datetime.now()
    if text.endswith("m") and text[:-1].replace(".", "", 1).isdigit():
        seconds = float(text[:-1]) * 60
    else:
        try:
            clock = dt.datetime.strptime(text, "%H:%M").time()
        except ValueError as error:
            raise RelayError(f"--until {text!r}: give a local time HH:MM (e.g. 08:40) or minutes (e.g. 90m)") from error
        seconds = (dt.datetime.combine(now.date(), clock) - now).total_seconds()
        if seconds <= -12 * 3600:  # past midnight: the clock time of the next day
            seconds += 24 * 3600
        if seconds < 0:
            raise RelayError(f"--until {text}: that was {-seconds / 60:.0f} minutes ago (it is now "
                             f"{now:%H:%M}); give a later time or minutes (e.g. 90m)")
    if seconds < 120:
        raise RelayError(f"--until {text}: that leaves {seconds / 60:.1f} minutes; a leg needs at least 2 "
                         "(compilation and the final save)")
    return seconds


def _read_record(path: Path, job: Job, config) -> dict[str, Any]:
    if not path.exists():
        return {"job": job.name, "goal": job.goal, "config": job.config, "settings": config.to_dict(),
                "legs": [], "curve": []}
    record = json.loads(path.read_text())
    from nestgen.training.run_record import _normal, changes, describe

    diff = {k: v for k, v in changes(record["settings"], _normal(config.to_dict())).items()
            if not k.startswith(("data.", "fid.reference", "fid.features", "eval_batch", "fid.batch_size",
                                 "fid.level_mixing"))}  # where the data are and what is measured, not how trained
    if diff:
        raise RelayError(f"{path.parent} continues a run with other settings: {describe(diff)}; put them back "
                         f"(they are in {path}) or start a new job name")
    return record


def _write_json(path: Path, value: dict[str, Any]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(value, indent=1, ensure_ascii=False) + "\n")
    os.replace(temporary, path)


def images_of(job: Job, state, config) -> int:
    if job.trainer == "gan":
        return int(state.images_seen)
    return int(state.step) * int(config.global_batch)


def leg_workdir(work_root: Path, job_name: str, state_directory: Path, step: int) -> Path:
    """Where a leg from `state_directory`'s state at `step` keeps its orbax checkpoints: named after both, so a
    leg resumes only its own earlier attempt, never another state folder's run at the same step."""
    identity = hashlib.sha256(str(Path(state_directory).resolve()).encode()).hexdigest()[:8]
    return Path(work_root) / job_name / f"from-{step:08d}-{identity}"


def run_leg(job_name: str, seconds: float, *, root: Path, state_root: Path | None = None,
            work_root: Path | None = None, overrides: tuple[str, ...] = (),
            reserve_seconds: float = 120.0) -> dict[str, Any]:
    """Train `job_name` for `seconds` (compilation included) from its committed state; returns the leg's record.

    The state and record live in `state_root` (default root/relay), the leg's orbax checkpoints, logs and samples
    in `work_root` (default root/runs/relay); a leg that finds its own checkpoints there (an earlier attempt from
    the same state) resumes from them.

    Raises RelayError (unknown job, settings changed), RelayStateError (a state that does not fit)."""
    from nestgen.training.configs import load_config

    began, started_at = time.monotonic(), dt.datetime.now(dt.UTC)
    if job_name not in JOBS:
        raise RelayError(f"unknown relay job {job_name!r}; jobs: {', '.join(JOBS)}")
    job = JOBS[job_name]
    directory = (state_root or root / "relay") / job.name
    directory.mkdir(parents=True, exist_ok=True)
    state_path, record_path = directory / STATE_FILE, directory / RECORD_FILE
    config = load_config(str(root / job.config), list(overrides))
    record = _read_record(record_path, job, config)
    previous = relay_state.read_metadata(state_path) if state_path.exists() else {"step": 0, "images": 0}
    if record["legs"] and record["legs"][-1].get("to_step") != previous["step"]:
        raise RelayError(f"{state_path} is at step {previous['step']} but {record_path} ends at step "
                         f"{record['legs'][-1].get('to_step')}: commit or restore both files together")
    workdir = leg_workdir(work_root or root / "runs" / "relay", job.name, directory, previous["step"])
    leg = {"leg": len(record["legs"]) + 1, "machine": machine(), "started": started_at.isoformat(timespec="seconds"),
           "from_step": previous["step"], "from_images": previous["images"], "to_step": previous["step"],
           "to_images": previous["images"], "wall_seconds": 0.0}

    def start_from(template):
        state, _ = relay_state.load_state(state_path, template)
        return state

    def on_checkpoint(state, step: int, metrics: dict[str, float]) -> None:
        images = images_of(job, state, config)
        if not any(x is leg for x in record["legs"]):  # a leg enters the record with its first checkpoint
            record["legs"].append(leg)
        leg.update(to_step=int(step), to_images=images, wall_seconds=round(time.monotonic() - began, 1),
                   ended=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
        if metrics:
            record["curve"].append({"images": images, "step": int(step), **{k: round(float(v), 5)
                                                                            for k, v in metrics.items()}})
        record["images_seen"] = images
        record["hours"] = round(sum(x["wall_seconds"] for x in record["legs"]) / 3600, 3)
        relay_state.save_state(state_path, state, {"job": job.name, "step": int(step), "images": images},
                               moments=job.moments)
        _write_json(record_path, record)

    budget = TimeBudget(deadline=began + seconds, reserve_seconds=reserve_seconds, fit=False)
    resume = start_from if state_path.exists() else None
    if job.trainer == "classifier":
        from nestgen.training.classifier_trainer import train_and_evaluate

        _, result = train_and_evaluate(config, workdir, budget=budget, start_from=resume, on_checkpoint=on_checkpoint)
    else:
        from nestgen.training.gan_trainer import train_and_evaluate

        _, result = train_and_evaluate(config, workdir, budget=budget, start_from=resume, on_checkpoint=on_checkpoint)
    return {"job": job.name, **leg, "total_images": record.get("images_seen"), "hours": record.get("hours"),
            "result": {k: v for k, v in result.items() if isinstance(v, (int, float, str))}}


def status(root: Path, state_root: Path | None = None) -> list[dict[str, Any]]:
    """One summary per job that has a record: images, legs, hours, the last point of its curve."""
    out = []
    for name, job in JOBS.items():
        path = (state_root or root / "relay") / name / RECORD_FILE
        if path.exists():
            record = json.loads(path.read_text())
            out.append({"job": name, "goal": job.goal, "images_seen": record.get("images_seen", 0),
                        "legs": len(record["legs"]), "hours": record.get("hours", 0.0),
                        "last": record["curve"][-1] if record["curve"] else None})
    return out


def compare(root: Path, jobs: list[str], every: int = 32_000, state_root: Path | None = None) -> str:
    """A markdown table of GAN jobs at equal images seen (README "Choosing the GPU recipe"): for every multiple of
    `every` that at least one job has evaluated, one row per job with FD_NesT, KD_NesT, precision, recall and the
    level-mixing effect (coarse / fine seed, pixel levels of 255), "–" where a job has no such evaluation.
    Evaluations at the end of a leg (off the multiples) are left out, so every row compares equal images.
    RelayError for an unknown job or one without a record."""
    if not jobs:
        raise RelayError("name the GAN jobs to compare, e.g. --compare gan-r3gan,gan-mixing,gan-today,gan")
    if every < 1:
        raise RelayError(f"--every {every}: give the images between rows, e.g. 32000")
    curves = {}
    for name in jobs:
        if name not in JOBS:
            raise RelayError(f"unknown relay job {name!r}; jobs: {', '.join(JOBS)}")
        if JOBS[name].trainer != "gan":
            raise RelayError(f"{name} is not a GAN job; compare the GAN jobs "
                             f"({', '.join(n for n, j in JOBS.items() if j.trainer == 'gan')})")
        path = (state_root or root / "relay") / name / RECORD_FILE
        if not path.exists():
            raise RelayError(f"{name} has no record yet ({path}): run a leg first (scripts/relay.py --job {name})")
        curves[name] = {p["images"]: p for p in json.loads(path.read_text())["curve"] if p["images"] % every == 0}
    points = sorted(set().union(*curves.values()))

    def value(point: dict | None, key: str, digits: int) -> str:
        return f"{point[key]:.{digits}f}" if point and key in point else "–"

    lines = ["| images | job | FD_NesT | KD_NesT | precision | recall | level mixing: coarse / fine |",
             "|---|---|---|---|---|---|---|"]
    for images in points:
        for name in jobs:
            p = curves[name].get(images)
            lines.append(f"| {images:,} | {name} | {value(p, 'fid/fd_nest', 2)} | {value(p, 'fid/kd_nest', 4)} | "
                         f"{value(p, 'fid/precision', 3)} | {value(p, 'fid/recall', 3)} | "
                         f"{value(p, 'fid/mixing_coarse', 1)} / {value(p, 'fid/mixing_fine', 1)} |")
    return "\n".join(lines)
