"""micota: distil long chain-of-thought into small language models (MiCoTA).

Stages live in subpackages (``generate``, ``curate``, ``sft``, ``merge``, ``evaluate``,
``analyze``); each exposes ``run(config) -> Manifest``. Heavy libraries (torch,
transformers, TRL) are imported inside functions so ``micota --help`` stays instant.
"""

__version__ = "0.1.0"
