"""Pipeline stages: one module each, with ``run(ctx: StageContext) -> dict`` and ``main(argv)``.

The runner (engine/runner.py) finds a stage's module by name in its ``IMPLEMENTED`` table and
imports it when the stage runs; nothing here imports the runner, so the stages and the runner
form no import cycle. ``python -m engine.stages.<stage> ARGS`` is ``python -m engine run ARGS
--stages <stage>``.
"""
