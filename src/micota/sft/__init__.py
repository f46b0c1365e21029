"""Supervised fine-tuning on chat ``messages`` with TRL's SFTTrainer (loss on the assistant turn only)."""

from micota.sft.run import SFTConfig, run

__all__ = ["SFTConfig", "run"]
