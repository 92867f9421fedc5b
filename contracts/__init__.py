"""Message contracts shared by every service: topic names and the messages on them.

This package imports nothing from ``services`` or ``deploy``; everything else may
import it.
"""

from contracts.topics import DEAD_LETTER_TOPIC, TOPICS, TopicSpec

__all__ = ["DEAD_LETTER_TOPIC", "TOPICS", "TopicSpec"]
