"""The evaluator service: scores trained models on validation and test data.

Consumes ``evaluator.commands``; produces ``evaluator.events``.
"""
