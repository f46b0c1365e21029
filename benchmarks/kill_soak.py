"""Soak: SIGKILL `micota run` at many seeded random points of a whole recipe and compare the result.

The long version of tests/e2e/test_fault_injection.py (same machinery, tests/e2e/kill_chain.py):
    python benchmarks/kill_soak.py                                   # 50 kills, full lab recipe
    python benchmarks/kill_soak.py --recipe recipes/lab/tiny.yaml --kills 12 --seed 1
Prints one line per kill (target stage, delay, where it landed, seconds from restart to kill),
the table row for docs/reliability.md, and exits 1 if anything was lost or left behind.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from micota.pipeline.recipe import load_recipe  # noqa: E402
from tests.e2e.kill_chain import choose_kills, folder_differences, kill_chain, run_clean, stage_durations, stray_files  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "lab" / "micota.yaml")
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, default=None, help="Folder for the two runs (default: a temp folder).")
    parser.add_argument("--json", type=Path, default=None, help="Write the kill list and findings here.")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="micota-soak-"))
    clean_dir, run_dir = work / "clean", work / "run"

    clean_s = run_clean(args.recipe, run_dir)
    run_dir.rename(clean_dir)
    print(f"uninterrupted run: {clean_s:.0f}s", flush=True)
    _, stages = load_recipe(args.recipe, run_dir=run_dir)
    kills = choose_kills(stage_durations(clean_dir), [s.name for s in stages], args.kills, args.seed)
    started = time.monotonic()
    def show(kill, problems) -> None:
        print(f"  {kill.target:<18} +{kill.delay_s:6.2f}s  killed in {kill.landed:<18} ({kill.kind or '-'}) "
              f"{kill.restart_s:6.1f}s after restart{'  PROBLEMS: ' + '; '.join(problems) if problems else ''}", flush=True)

    result = kill_chain(args.recipe, run_dir, clean_dir, kills, on_kill=show)
    lost = folder_differences(run_dir, clean_dir) + [f"stray {p}" for p in stray_files(run_dir)] + result.problems
    landed = [k for k in result.kills if k.kind]
    kinds = collections.Counter(k.kind for k in landed)
    overhead = time.monotonic() - started - clean_s
    print(f"kills inside a stage: {len(landed)}/{len(kills)}  by kind: {dict(sorted(kinds.items()))}")
    print(f"uninterrupted {clean_s:.0f}s; killed-and-resumed {time.monotonic() - started:.0f}s "
          f"(+{overhead:.0f}s, {overhead / max(len(landed), 1):.1f}s per kill: restarts and redone work)")
    print("lost or left behind: " + ("nothing" if not lost else "\n  " + "\n  ".join(lost)))
    if args.json:
        args.json.write_text(json.dumps({"kills": [vars(k) for k in result.kills], "lost": lost, "clean_s": clean_s,
                                         "chain_s": time.monotonic() - started}, indent=2))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
