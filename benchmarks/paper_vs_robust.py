"""Where ``paper`` and ``robust`` grading disagree, and why (docs/benchmarks.md, "Grading").

No model outputs exist on this machine, so the responses are NOT model outputs. They are
(1) each benchmark's reference solutions as stored: MATH-500 ``solution``, AIME24 ``solution``,
OlympiadBench ``solution[0]``, GSM8K ``answer`` both as stored (ending ``#### N``) and with that
line rewritten to the papers' requested ``Final Answer: \\boxed{N}``; AMC23 stores no solution;
(2) every benchmark's clean gold (``Problem.answer``) written in each format of :data:`VARIANTS`.
Robust mode grades against the gold as stored (``gold_raw``), paper mode against ``gold_paper``.

``upstream_differences`` grades the same pairs with the papers' own task files from a local
clone (``lm_eval/tasks/*/utils.py``; GSM8K from the patterns in ``gsm8k-cot-zeroshot.yaml``).
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path

from micota.grade import grade_many
from micota.grade.paper import paper_task
from micota.grade.paper_extract import cut_at_stop

VARIANTS = {  # name -> (gold, another gold of the benchmark) -> response
    "gold boxed (the prompt's format)": lambda g, w: f"Final Answer: \\boxed{{{g}}}",
    "gold not boxed": lambda g, w: f"Final Answer: ${g}$",
    "gold boxed, then a new 'Problem:' answered": lambda g, w: (f"Final Answer: \\boxed{{{g}}}\n\nProblem: Another "
                                                               f"question.\nAnswer: Final Answer: \\boxed{{{w}}}"),
    "another problem's gold boxed": lambda g, w: f"Final Answer: \\boxed{{{w}}}",
}
_SIMPLE_FRAC = re.compile(r"\\frac\{([^{}]+)\}\{([^{}]+)\}")


def equivalent_form(gold: str) -> str | None:
    """Another way a model writes the same gold, or None: ``\\frac{a}{b}`` -> ``a/b``;
    an integer of 4+ digits with thousands commas (``3159`` -> ``3,159``)."""
    if re.fullmatch(r"\d{4,}", gold):
        return f"{int(gold):,}"
    rewritten = _SIMPLE_FRAC.sub(lambda m: f"{m.group(1)}/{m.group(2)}", gold)
    return rewritten if rewritten != gold else None


_MARKUP = re.compile(r"\\(?:textbf|mathbf|text|mathrm|bf)\b")


def raw_rows(shared: Path, name: str) -> list[dict]:
    path = shared / "benchmarks" / name / "test.jsonl"
    return [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]


def reference_responses(name: str, row: dict) -> list[tuple[str, str]]:
    """(source, response) pairs made from a benchmark row's stored solution."""
    if name == "gsm8k":
        work, _, number = row["answer"].rpartition("####")
        return [("solution as stored (#### N)", row["answer"]),
                ("solution, #### N rewritten to Final Answer: \\boxed{N}",
                 f"{work.rstrip()}\nFinal Answer: \\boxed{{{number.strip()}}}")]
    if name == "olympiadbench":
        return [("reference solution[0]", row["solution"][0])]
    return [("reference solution", row["solution"])] if row.get("solution") else []


def graded_pairs(problems: dict[str, list], shared: Path):
    """Per benchmark: (source, problem, row, response) for every response built here."""
    for name, items in problems.items():
        rows = raw_rows(shared, name)
        out = []
        for i, (problem, row) in enumerate(zip(items, rows)):
            other = next(q.answer for q in items[i + 1:] + items[:i] if q.answer != problem.answer)
            out += [(source, problem, row, text) for source, text in reference_responses(name, row)]
            out += [(variant, problem, row, build(problem.answer, other)) for variant, build in VARIANTS.items()]
            if (form := equivalent_form(problem.answer)) is not None:
                out.append(("gold boxed in an equivalent form (a/b, 1,000)", problem, row, f"Final Answer: \\boxed{{{form}}}"))
        yield name, out


def disagreement_rows(problems: dict[str, list], shared: Path) -> dict[str, tuple[Counter, dict]]:
    """Per benchmark: counts (both / robust only / paper only / neither) and, per (responses,
    side, cause), the count and one example."""
    result = {}
    for name, pairs in graded_pairs(problems, shared):
        robust = grade_many([(p.metadata["gold_raw"], text) for _, p, _, text in pairs], benchmark=name)
        paper = grade_many([(p.metadata["gold_paper"], text) for _, p, _, text in pairs], benchmark=name, mode="paper")
        counts, examples = Counter(), {}
        for (source, problem, _, text), r, q in zip(pairs, robust, paper):
            side = {(True, True): "both", (True, False): "robust only", (False, True): "paper only"}.get(
                (r.correct, q.correct), "neither")
            counts[side] += 1
            if side in ("robust only", "paper only"):
                key = (source, side, cause(name, text, problem.metadata["gold_paper"], r, q))
                count, example = examples.get(key, (0, _example(text, r, q)))
                examples[key] = (count + 1, example)
        result[name] = (counts, examples)
    return result


def cause(name: str, response: str, gold_paper, robust, paper) -> str:
    """Why the two modes disagree on one response, from the verdicts and the texts."""
    if robust.correct:
        if paper.extracted is None:
            if "\\boxed" in response or "\\fbox" in response:
                return "the box stands after the stop string or cannot be read by the harness"
            return "no \\boxed{}: paper reads only boxes, robust also reads the final statement"
        if isinstance(gold_paper, str) and "$" in gold_paper and "$" not in paper.extracted:
            return "gold stored as $…$ (final_answer[0]); strip_string keeps plain $"
        if _MARKUP.search(paper.extracted):
            return "markup inside the box (\\textbf{(113)}, \\text{…}) that strip_string keeps"
        return "an equivalent form strip_string does not equate"
    if cut_at_stop(response, paper_task(name).stop) != response:
        return "robust reads the box after the stop string 'Problem:' (generation would have ended there)"
    return f"robust rejects: {robust.reason}"


def _example(response: str, robust, paper) -> str:
    tail = response[-70:].replace("\n", "⏎").replace("|", "\\|")
    return f"`…{tail}` -> robust `{robust.extracted}`, paper `{paper.extracted}`".replace("|", "\\|")


def _load_task_module(clone: Path, task: str):
    path = clone / "lm-evaluation-harness" / "lm_eval" / "tasks" / task / "utils.py"
    spec = importlib.util.spec_from_file_location(f"upstream_{task}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _upstream_gsm8k(clone: Path):
    """A scorer built from gsm8k-cot-zeroshot.yaml's own patterns, with lm-eval 0.4.5 semantics."""
    import yaml

    task = yaml.safe_load((clone / "lm-evaluation-harness/lm_eval/tasks/gsm8k/gsm8k-cot-zeroshot.yaml").read_text())
    flexible = next(f for f in task["filter_list"] if f["name"] == "flexible-extract")["filter"][0]
    pattern, ignore = re.compile(flexible["regex_pattern"]), task["metric_list"][0]["regexes_to_ignore"]

    def score(doc: dict, response: str) -> bool:
        for stop in task["generation_kwargs"]["until"]:
            response = response.split(stop)[0]
        found = pattern.findall(response)
        picked = [g for g in found[flexible["group_select"]] if g] if found else []
        prediction, reference = (picked[0].strip() if picked else "[invalid]"), doc["answer"]
        for regex in ignore:
            prediction, reference = re.sub(regex, "", prediction), re.sub(regex, "", reference)
        return prediction.lower() == reference.lower()

    return score


def upstream_differences(problems: dict[str, list], shared: Path, clone: Path) -> tuple[int, list]:
    """Grade every pair with the papers' task files too; return (pairs checked, differences)."""
    import contextlib
    import io

    tasks = {"aime24": "AIME", "amc23": "AMC", "olympiadbench": "Olympiad", "math500": "hendrycks_math_500"}
    modules = {name: _load_task_module(clone, task) for name, task in tasks.items()}
    gsm8k = _upstream_gsm8k(clone)
    checked, differ = 0, []
    for name, pairs in graded_pairs(problems, shared):
        ours = grade_many([(p.metadata["gold_paper"], text) for _, p, _, text in pairs], benchmark=name, mode="paper")
        for (source, problem, row, text), verdict in zip(pairs, ours):
            if name == "gsm8k":
                theirs = gsm8k(row, text)
            else:
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        theirs = bool(modules[name].process_results(row, [text.split("Problem:")[0]])["exact_match"])
                except Exception:  # noqa: BLE001 - the harness raising is its own outcome
                    theirs = "raises"
            mine = "raises" if "raises here" in verdict.reason else verdict.correct
            checked += 1
            if mine != theirs:
                differ.append((name, problem.id, source, mine, theirs))
    return checked, differ
