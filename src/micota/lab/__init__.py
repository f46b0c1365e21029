"""The micro-lab: a synthetic mod-10 chain task, a local tokenizer, tiny Qwen2 models and a
scripted teacher, so every MiCoTA stage runs for real on a CPU."""
