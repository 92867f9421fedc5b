"""The sampler service: selects the most informative unlabeled rows.

Consumes ``sampler.commands``; produces ``sampler.events``.
"""
