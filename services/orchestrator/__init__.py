"""The orchestrator service: drives active-learning rounds as Prefect flows.

Produces commands on ``trainer.commands``, ``sampler.commands`` and
``evaluator.commands``; consumes the matching ``*.events`` topics.
"""
