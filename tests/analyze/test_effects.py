from micota.analyze.effects import CLAIMS, ClaimModels, claims_markdown, measure, verdicts

MODELS = ClaimModels(students=(
    {"Instruct": "Instruct", "Strong-Teacher CoT": "Strong-Teacher CoT", "MiCoTA": "MiCoTA"},
    {"Instruct": "Large Instruct", "Strong-Teacher CoT": "Large Strong-Teacher CoT", "MiCoTA": "Large MiCoTA"},
))


def _entry(acc, tokens=40.0):
    return {"lab": {"accuracy_robust": acc, "mean_tokens": tokens}}


RESULTS = {
    "TA pre-SFT": _entry(0.90, 40), "TA post-SFT": _entry(0.92, 100), "TA merged": _entry(0.89, 55),
    "Instruct": _entry(0.30), "Strong-Teacher CoT": _entry(0.20, 120), "MiCoTA": _entry(0.40, 60),
    "Large Instruct": _entry(0.50), "Large Strong-Teacher CoT": _entry(0.55, 100), "Large MiCoTA": _entry(0.60, 60),
}


def test_every_claim_measured_from_results():
    values = measure(RESULTS, MODELS)
    assert round(values["ta_sft_keeps_accuracy"], 4) == 0.02
    assert values["merged_length_ratio"] == 0.55
    assert round(values["merged_accuracy"], 4) == -0.03
    assert round(values["long_cot_below_micota"], 4) == 0.20
    assert round(values["micota_beats_instruct"], 4) == 0.10
    assert round(values["gap_shrinks_with_size"], 4) == 0.15
    assert all(verdicts(values).values())


def test_claims_fail_when_the_numbers_say_so_and_missing_models_are_not_measured():
    results = dict(RESULTS, **{"TA merged": _entry(0.80, 95), "MiCoTA": _entry(0.10, 60)})
    del results["Large MiCoTA"]
    found = verdicts(measure(results, MODELS))
    assert found["merged_length_ratio"] is False and found["merged_accuracy"] is False
    assert found["long_cot_below_micota"] is False and found["micota_beats_instruct"] is False
    assert found["gap_shrinks_with_size"] is None and found["ta_sft_keeps_accuracy"] is True


def test_markdown_states_value_spread_and_verdict():
    values = measure(RESULTS, MODELS)
    lines = claims_markdown(values, {c.key: 0.01 for c in CLAIMS}, seeds=3)
    assert len(lines) == len(CLAIMS)
    assert "0.55x ± 0.01 (mean ± sd over 3 seeds)" in lines[1] and "**yes**" in lines[1]
    assert lines[0].endswith("+2.0 points ± 1.0 (mean ± sd over 3 seeds).")


def test_one_student_size_leaves_the_size_claim_unmeasured():
    one = ClaimModels(students=MODELS.students[:1])
    assert measure(RESULTS, one)["gap_shrinks_with_size"] is None
    assert round(measure(RESULTS, one)["long_cot_below_micota"], 4) == 0.20
