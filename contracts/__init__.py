"""Message contracts shared by every service: topics, messages, decoding.

This package imports nothing from ``services`` or ``deploy``; everything else
may import it. ``python -m contracts.schema`` exports the JSON Schema of every
message and an AsyncAPI document of the topics.
"""

from contracts.envelope import SCHEMA_VERSION, Command, Event, FailureEvent, Message
from contracts.errors import ContractError
from contracts.messages import (
    BatchSelected,
    CatBoostParams,
    EvaluateModel,
    EvaluationFailed,
    ModelEvaluated,
    ModelTrained,
    SelectBatch,
    SelectionFailed,
    SplitMetrics,
    TrainingFailed,
    TrainModel,
)
from contracts.references import DatasetRef, ObjectRef
from contracts.registry import MESSAGE_TYPES, REPLIES, TOPIC_MESSAGES, decode, topic_for
from contracts.topics import DEAD_LETTER_TOPIC, TOPICS, TopicSpec

__all__ = [
    "DEAD_LETTER_TOPIC",
    "MESSAGE_TYPES",
    "REPLIES",
    "SCHEMA_VERSION",
    "TOPICS",
    "TOPIC_MESSAGES",
    "BatchSelected",
    "CatBoostParams",
    "Command",
    "ContractError",
    "DatasetRef",
    "EvaluateModel",
    "EvaluationFailed",
    "Event",
    "FailureEvent",
    "Message",
    "ModelEvaluated",
    "ModelTrained",
    "ObjectRef",
    "SelectBatch",
    "SelectionFailed",
    "SplitMetrics",
    "TopicSpec",
    "TrainModel",
    "TrainingFailed",
    "decode",
    "topic_for",
]
