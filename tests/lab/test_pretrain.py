import shutil

from micota.lab.models import build_model
from micota.lab.pretrain import TrainSchedule, batch_tensors, encode_chat, learning_rate_at, train_base
from micota.lab.solutions import write_solution
from micota.lab.task import make_problems


def _chats(n=48):
    problems = make_problems(n, seed=0, split="train", min_difficulty=2, max_difficulty=2)
    return [[{"role": "user", "content": p.text}, {"role": "assistant", "content": write_solution(p, "short")}] for p in problems]


def test_labels_cover_only_the_response_and_its_end_token(lab_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lab_tokenizer_dir)
    chat = _chats(1)[0]
    ids, prompt_len = encode_chat(tok, chat)
    batch = batch_tensors([(ids, prompt_len), (ids[:prompt_len + 2], prompt_len)], tok.pad_token_id)
    labelled = [t for t in batch["labels"][0].tolist() if t != -100]
    assert tok.decode(labelled) == chat[1]["content"] + "<|im_end|>\n"
    assert batch["attention_mask"][1].sum() == prompt_len + 2 and (batch["labels"][1] != -100).sum() == 2


def test_schedule_warms_up_then_decays_to_zero():
    s = TrainSchedule(steps=100, learning_rate=1e-3, warmup_steps=10)
    rates = [learning_rate_at(i, s) for i in range(101)]
    assert rates[0] < rates[9] == max(rates) and rates[100] == 0.0
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))


def test_training_lowers_the_loss_and_is_deterministic(lab_tokenizer_dir, tmp_path):
    from safetensors.torch import load_file

    first = build_model("student", lab_tokenizer_dir, tmp_path / "a", seed=0)
    second = shutil.copytree(first, tmp_path / "b")
    schedule = TrainSchedule(steps=30, learning_rate=3e-3, batch_size=16, warmup_steps=3)
    losses = []
    result = train_base(first, _chats(), schedule, on_step=lambda step, model, loss: losses.append(loss))
    train_base(second, _chats(), schedule)
    assert len(losses) == 30 and sum(losses[-5:]) < 0.7 * sum(losses[:5])
    assert result["steps"] == 30 and result["final_loss"] < losses[0]
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert all((a[k] == b[k]).all() for k in a)  # same seed, same data: bit-identical weights


def test_bases_trained_side_by_side_equal_those_trained_one_after_another(lab_tokenizer_dir, tmp_path):
    from safetensors.torch import load_file

    from micota.lab.pretrain import BaseJob, train_bases

    def jobs(folder):
        return [BaseJob(name=size, model_dir=build_model(size, lab_tokenizer_dir, tmp_path / folder / size, seed=i),
                        schedule=TrainSchedule(steps=4, learning_rate=3e-3, batch_size=8, warmup_steps=1, seed=i))
                for i, size in enumerate(("student", "student-large"))]

    alone, together = jobs("alone"), jobs("together")
    results = [train_bases(alone, _chats(), workers=1), train_bases(together, _chats(), workers=2)]
    assert set(results[0]) == set(results[1]) == {"student", "student-large"}
    for one, two in zip(alone, together):
        a, b = load_file(one.model_dir / "model.safetensors"), load_file(two.model_dir / "model.safetensors")
        assert all(torch_equal(a[k], b[k]) for k in a), one.name
        assert results[0][one.name]["final_loss"] == results[1][two.name]["final_loss"]


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_training_workers_die_with_a_killed_parent(lab_tokenizer_dir, tmp_path):
    """A SIGKILLed `micota run` leaves no worker behind to save into a folder the next run rebuilds."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    script = f"""
from pathlib import Path
from micota.lab.models import build_model
from micota.lab.pretrain import BaseJob, TrainSchedule, train_bases
from tests.lab.test_pretrain import _chats
jobs = [BaseJob(name=s, model_dir=build_model(s, {str(lab_tokenizer_dir)!r}, Path({str(tmp_path)!r}) / s),
                schedule=TrainSchedule(steps=100000, learning_rate=1e-3, batch_size=8)) for s in ("student", "ta")]
train_bases(jobs, _chats(), workers=2)
"""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=f"{root / 'src'}{os.pathsep}{root}")
    parent = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=root)

    def workers() -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(parent.pid), "-f", "spawn_main"], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    deadline = time.monotonic() + 120
    while len(workers()) < 2 and time.monotonic() < deadline and parent.poll() is None:
        time.sleep(0.5)
    started = workers()
    assert len(started) == 2, "the pool did not start its two workers"
    time.sleep(2)  # both are training now
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while any(Path(f"/proc/{pid}").exists() for pid in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    alive = [pid for pid in started if Path(f"/proc/{pid}").exists()]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert alive == []


def _zero_chats_and_dev(answer_of_dev: str):
    """Chats whose every answer is 0 (chains ending in *0), and dev problems with the given gold answer."""
    from micota.lab.pretrain import DevProblem

    texts = [f"Compute {a}{op}{b}*0 mod 10, left to right." for a in range(10) for op in "+-" for b in range(10)]
    chats = [[{"role": "user", "content": t}, {"role": "assistant", "content": "\\boxed{0}"}] for t in texts[:160]]
    dev = tuple(DevProblem(messages=({"role": "user", "content": t},), answer=answer_of_dev) for t in texts[160:])
    return chats, dev


def test_training_stops_at_the_first_check_that_reaches_the_target_accuracy(lab_tokenizer_dir, tmp_path):
    chats, dev = _zero_chats_and_dev("0")
    model = build_model("student", lab_tokenizer_dir, tmp_path / "m", seed=0)
    schedule = TrainSchedule(steps=400, learning_rate=3e-3, batch_size=16, warmup_steps=3, target_accuracy=0.9, check_every=10)
    result = train_base(model, chats, schedule, dev=dev)
    assert result["steps"] < 400 and result["steps"] % 10 == 0  # stopped early, at a check
    assert result["dev_accuracy"] >= 0.9


def test_training_runs_every_step_when_the_target_is_never_reached(lab_tokenizer_dir, tmp_path):
    import pytest

    chats, dev = _zero_chats_and_dev("7")  # the model learns to answer 0: never right on this dev set
    model = build_model("student", lab_tokenizer_dir, tmp_path / "m", seed=0)
    schedule = TrainSchedule(steps=40, learning_rate=3e-3, batch_size=16, warmup_steps=3, target_accuracy=0.5, check_every=20)
    result = train_base(model, chats, schedule, dev=dev)
    assert result == {**result, "steps": 40, "dev_accuracy": 0.0}
    with pytest.raises(ValueError, match="needs dev problems"):
        train_base(model, chats, schedule)


def test_a_schedule_short_of_min_accuracy_runs_again(lab_tokenizer_dir, tmp_path):
    chats, dev = _zero_chats_and_dev("7")  # never right on this dev set: every allowed restart runs
    model = build_model("student", lab_tokenizer_dir, tmp_path / "m", seed=0)
    schedule = TrainSchedule(steps=20, learning_rate=3e-3, batch_size=16, warmup_steps=3, min_accuracy=0.5, restarts=2)
    steps = []
    result = train_base(model, chats, schedule, dev=dev, on_step=lambda step, m, loss: steps.append(step))
    assert result == {**result, "steps": 60, "rounds": 3, "dev_accuracy": 0.0}
    assert steps == list(range(1, 61))


def test_a_schedule_that_reaches_min_accuracy_trains_exactly_as_without_the_check(lab_tokenizer_dir, tmp_path):
    from safetensors.torch import load_file

    chats, dev = _zero_chats_and_dev("0")
    plain = build_model("student", lab_tokenizer_dir, tmp_path / "plain", seed=0)
    checked = shutil.copytree(plain, tmp_path / "checked")
    schedule = TrainSchedule(steps=120, learning_rate=3e-3, batch_size=16, warmup_steps=3)
    train_base(plain, chats, schedule)
    result = train_base(checked, chats, TrainSchedule(**{**schedule.__dict__, "min_accuracy": 0.9, "restarts": 3}), dev=dev)
    assert result["rounds"] == 1 and result["steps"] == 120 and result["dev_accuracy"] >= 0.9
    a, b = load_file(plain / "model.safetensors"), load_file(checked / "model.safetensors")
    assert all((a[k] == b[k]).all() for k in a)  # the check reads the model, never moves it
