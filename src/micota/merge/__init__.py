"""Model merging: DARE / TIES / task arithmetic, streamed, seeded, and length-targeted.

Native config (a recipe's ``merge:`` section or a standalone YAML; mergekit YAML works too)::

    method: dare_ties            # linear | task_arithmetic | ties | dare_linear | dare_ties
    base: runs/ta/base           # θ₀, the TA before SFT
    models:
      - {model: runs/ta/sft/model, weight: 1.0, density: 0.5}   # lists = per-layer values
    lambda: 1.0                  # scale of the merged delta (0 = base, 1 = full)
    normalize: null              # null = the method's default (mergekit's)
    rescale: null                # l1 | inverse_density | none; null = the method's default
    seed: 0                      # DARE masks depend only on (seed, tensor, model, entry)
    dtype: float32               # computation dtype
    out_dtype: bfloat16          # null = the base checkpoint's dtype
    embedding_mismatch: error    # or base_rows
    length_search:               # optional: pick the strength that halves CoT length
      {target_ratio: 0.5, probe_set: probes.jsonl, accuracy_tolerance: 0.05, param: lambda}
    out_dir: runs/ta/merge

Python: ``run(MergeConfig(...)) -> Manifest``; ``load_merge_config(path)``; CLI:
``micota merge CONFIG OUT_DIR [--seed N] [--target-length-ratio R --probe-set FILE]``.
"""

from micota.merge.config import LengthSearchConfig, MergeConfig, MergeModel, load_merge_config
from micota.merge.methods import MERGE_METHODS, MergeMethod
from micota.merge.run import run

__all__ = ["LengthSearchConfig", "MERGE_METHODS", "MergeConfig", "MergeMethod", "MergeModel", "load_merge_config", "run"]
