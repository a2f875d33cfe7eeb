"""One leg of the CPU relay: continue a long training run from the state committed in the repository, at low
priority, until a given time, and write the state back (nestgen/training/relay.py; README "The CPU relay").

  nohup python scripts/relay.py --job gan --until 11:30 > runs/relay-gan.log 2>&1 &     # then go on working
  python scripts/relay.py --status                                                     # images, legs, hours
  python scripts/relay.py --compare gan-r3gan,gan-mixing,gan-today,gan                # equal images, markdown
  git add relay && git commit -m "relay: gan leg"                                      # before the session ends

--until takes a local time (HH:MM, its next occurrence within 12 hours) or minutes (90m). The state
(relay/<job>/state.safetensors) and the record (relay/<job>/record.json) are rewritten after every checkpoint, so
committing them at any moment keeps what the leg has done so far.
Jobs: classifier, gan, gan-skips, gan-inblock, gan-rootpos, gan-coarsepos, gan-r3gan, gan-mixing, gan-today.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from nestgen.cli import entry_point

ROOT = Path(__file__).resolve().parent.parent


@entry_point
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--job", help="which run to continue (see --status and nestgen/training/relay.py JOBS)")
    parser.add_argument("--until", help="stop and save by this local time (HH:MM) or after this many minutes (90m)")
    parser.add_argument("--status", action="store_true", help="print every job's images, legs and hours, and exit")
    parser.add_argument("--compare", metavar="JOB,JOB,...",
                        help="print a markdown table of these GAN jobs' evaluations at equal images, and exit")
    parser.add_argument("--every", type=int, default=32_000, help="with --compare: the images between rows")
    parser.add_argument("--nice", type=int, default=19, help="niceness of the leg (default 19: other work first)")
    parser.add_argument("--state-dir", type=Path, default=None, help="where the states live (default: relay/)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (only data paths may differ from the run's first leg)")
    args = parser.parse_args(argv)

    from nestgen.training import relay

    if args.status:
        print(json.dumps(relay.status(ROOT, args.state_dir), indent=1, ensure_ascii=False))
        return 0
    if args.compare is not None:
        print(relay.compare(ROOT, [j for j in args.compare.split(",") if j], args.every, args.state_dir))
        return 0
    if not args.job or not args.until:
        print("error: give --job and --until (e.g. --job gan --until 11:30), or --status", file=sys.stderr)
        return 2

    seconds = relay.parse_until(args.until)
    if args.job not in relay.JOBS:
        raise relay.RelayError(f"unknown job {args.job!r}; jobs: {', '.join(relay.JOBS)}")
    if args.nice:
        os.nice(args.nice)
    state_dir = args.state_dir.resolve() if args.state_dir else None
    os.chdir(ROOT)  # the configs name their data and feature network relative to the repository root
    leg = relay.run_leg(args.job, seconds, root=ROOT, state_root=state_dir, overrides=tuple(args.set))
    print(json.dumps(leg, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    from nestgen.runtime import keep_freed_memory

    keep_freed_memory()  # before the first JAX computation: reuse XLA:CPU's buffers (nestgen/runtime.py)
    sys.exit(main())
