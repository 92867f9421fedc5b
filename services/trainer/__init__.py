"""The trainer service: fits CatBoost models on the labeled rows.

Consumes ``trainer.commands``; produces ``trainer.events``.
"""
