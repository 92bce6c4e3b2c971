"""SynthSmith engine: the pipeline that runs on a cluster (and on "This computer").

Run it with ``python -m engine --help``. It needs only pydantic and PyYAML to validate configs,
report host facts (``doctor``) and run the data stages; torch, transformers, DeepSpeed and vLLM
are imported lazily by the stages that train or generate.

It never imports ``gui``, ``remote``, Qt or paramiko (checked by import-linter in CI): the
desktop app uploads this package to a cluster and runs it there.
"""

__version__ = "0.1.0"
