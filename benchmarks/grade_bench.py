"""Accuracy and speed of ``micota.grade``: robust vs paper mode vs plain math-verify.

Usage (from the repo root; prints the markdown tables of docs/benchmarks.md, "Grading"):

    PYTHONPATH=src python benchmarks/grade_bench.py [--shared ../shared/data] [--skip-speed]
        [--upstream PATH/TO/Small-Model-Learnability-Gap]

Accuracy: the labelled cases in tests/cases/*.jsonl. Gold self-check: every benchmark gold,
boxed, in both modes. Paper vs robust: reference solutions and gold variants (no model outputs
here) graded both ways, disagreements counted by cause. ``--upstream``: the same pairs graded
by the papers' own task files (``lm_eval/tasks/*/utils.py`` of a local clone), counting any
difference from paper mode. Speed: a realistic mix built from the real benchmark golds (a
~1.5 KB chain of thought ending in a boxed answer; half right, half wrong), one process, warm
caches; and plain-integer grades per second on one core.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests" / "grade"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from micota.grade import gold_text, grade, grade_many  # noqa: E402
from micota.data import load_benchmark  # noqa: E402
from paper_vs_robust import disagreement_rows, upstream_differences  # noqa: E402

FILLER = ("Let me think step by step. We set up the equation and simplify both sides carefully. "
          "Wait, let me double-check the arithmetic before going on. ") * 8


def load_cases() -> list[dict]:
    return [json.loads(line) for path in sorted((REPO / "tests" / "cases").glob("*.jsonl"))
            for line in path.open(encoding="utf-8") if line.strip()]


def math_verify_correct(gold, response: str) -> bool:
    """Plain math-verify as users call it: parse both with the default configs, then verify."""
    from math_verify import parse, verify

    text = gold_text(gold, "paper")
    text = text if "$" in text else f"${text}$"
    try:
        return bool(verify(parse(text), parse(response)))
    except Exception:  # noqa: BLE001 - a crash is a wrong verdict for the baseline
        return False


def accuracy_rows(cases: list[dict]) -> list[tuple[str, float, int, int]]:
    """(grader, accuracy, false positives, negatives) on the labelled cases."""
    graders = {
        "micota robust": lambda c: grade(c["gold"], c["response"], benchmark=c.get("benchmark")).correct,
        "micota paper": lambda c: grade(c["gold"], c["response"], benchmark=c.get("benchmark"), mode="paper").correct,
        "math-verify 0.9 (defaults)": lambda c: math_verify_correct(c["gold"], c["response"]),
    }
    negatives = sum(not c["correct"] for c in cases)
    rows = []
    for name, judge in graders.items():
        verdicts = [judge(c) for c in cases]
        right = sum(v == c["correct"] for v, c in zip(verdicts, cases))
        false_pos = sum(v and not c["correct"] for v, c in zip(verdicts, cases))
        rows.append((name, right / len(cases), false_pos, negatives))
    return rows


def benchmark_golds(shared: Path) -> dict[str, list]:
    from test_benchmark_golds import GOLD_FIELDS, read_golds

    return {name: read_golds(shared, name) for name in GOLD_FIELDS}


def self_check_rows(problems: dict[str, list]) -> list[tuple[str, int, float, float]]:
    """Each clean gold boxed in the prompt's format: robust vs the raw gold, paper vs ``gold_paper``."""
    rows = []
    for name, items in problems.items():
        boxed = [f"Final Answer: \\boxed{{{p.answer}}}" for p in items]
        robust = grade_many([(p.metadata["gold_raw"], r) for p, r in zip(items, boxed)], benchmark=name)
        paper = grade_many([(p.metadata["gold_paper"], r) for p, r in zip(items, boxed)], benchmark=name, mode="paper")
        rows.append((name, len(items), mean_correct(robust), mean_correct(paper)))
    return rows


def mean_correct(verdicts) -> float:
    return sum(v.correct for v in verdicts) / len(verdicts)


def realistic_mix(golds: dict[str, list], seed: int = 0) -> list[tuple[object, str, str]]:
    """(gold, response, benchmark): every real gold once, half answered right, half with another gold."""
    rng = random.Random(seed)
    mix = []
    for name, items in golds.items():
        for gold in items:
            stated = gold_text(gold) if rng.random() < 0.5 else gold_text(rng.choice(items))
            mix.append((gold, f"{FILLER}\nSo the final answer is $\\boxed{{{stated}}}$.", name))
    rng.shuffle(mix)
    return mix


def cases_per_second(judge, mix) -> float:
    start = time.perf_counter()
    for gold, response, name in mix:
        judge(gold, response, name)
    return len(mix) / (time.perf_counter() - start)


def speed_rows(golds: dict[str, list]) -> list[tuple[str, float]]:
    from micota.grade.symbolic import warm_up

    warm_up()
    mix = realistic_mix(golds)
    ours = cases_per_second(lambda g, r, b: grade(g, r, benchmark=b), mix)
    paper = cases_per_second(lambda g, r, b: grade(g, r, benchmark=b, mode="paper"), mix)
    theirs = cases_per_second(lambda g, r, b: math_verify_correct(g, r), mix)
    ints = [("42", f"{FILLER}\nSo the final answer is $\\boxed{{{n}}}$.", None) for n in range(20000)]
    per_core = cases_per_second(lambda g, r, b: grade(g, r), ints)
    return [(f"micota robust, realistic mix ({len(mix)} cases)", ours),
            ("micota paper, same mix", paper),
            ("math-verify 0.9, same mix", theirs),
            ("micota robust, plain integers (1 core)", per_core)]


def hostile_rows() -> list[tuple[str, float, str, bool]]:
    """Seconds per hostile input of tests/grade/test_hostile.py (warm child, 2 s limit)."""
    from test_hostile import HOSTILE

    rows = []
    for name, response in HOSTILE.items():
        for gold in ("5", "x^2+1"):
            start = time.perf_counter()
            verdict = grade(gold, response)
            rows.append((f"{name} (gold {gold})", time.perf_counter() - start, verdict.reason, verdict.correct))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--upstream", type=Path, help="a local clone of Small-Model-Gap/Small-Model-Learnability-Gap")
    args = parser.parse_args()
    cases = load_cases()
    print(f"| grader | accuracy ({len(cases)} cases) | false positives |\n|---|---|---|")
    for name, acc, fp, neg in accuracy_rows(cases):
        print(f"| {name} | {acc:.3f} | {fp} / {neg} negatives ({fp / neg:.1%}) |")
    problems = {name: load_benchmark(name, args.shared) for name in ("aime24", "amc23", "olympiadbench", "math500", "gsm8k")}
    print("\n| benchmark | golds | robust self-match | paper self-match |\n|---|---|---|---|")
    for name, count, robust, paper in self_check_rows(problems):
        print(f"| {name} | {count} | {robust:.3f} | {paper:.3f} |")
    print("\n| benchmark | responses | both correct | robust only | paper only | neither |\n|---|---|---|---|---|---|")
    causes = disagreement_rows(problems, args.shared)
    for name, (counts, _) in causes.items():
        print(f"| {name} | {sum(counts.values())} | {counts['both']} | {counts['robust only']} | "
              f"{counts['paper only']} | {counts['neither']} |")
    print("\n| benchmark | responses | correct in | cause | count | example (response tail -> extracted) |\n"
          "|---|---|---|---|---|---|")
    for name, (_, examples) in causes.items():
        for (source, side, cause), (count, example) in sorted(examples.items()):
            print(f"| {name} | {source} | {side} | {cause} | {count} | {example} |")
    if args.upstream:
        checked, differ = upstream_differences(problems, args.shared, args.upstream)
        print(f"\nupstream check: {checked} pairs graded by the papers' task files, {len(differ)} differ from paper mode")
        for row in differ[:10]:
            print("  ", row)
    golds = benchmark_golds(args.shared)
    if not args.skip_speed:
        print("\n| run | cases/s |\n|---|---|")
        for name, rate in speed_rows(golds):
            print(f"| {name} | {rate:,.0f} |")
        timings = hostile_rows()
        slowest = max(timings, key=lambda row: row[1])
        accepted = sum(row[3] for row in timings)
        print(f"\nhostile inputs: {len(timings)} graded, {accepted} marked correct; slowest {slowest[1]:.2f}s "
              f"({slowest[0]}: {slowest[2]})")


if __name__ == "__main__":
    main()
