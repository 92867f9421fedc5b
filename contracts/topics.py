"""Topic names and partition counts.

Every topic the platform uses is declared here once; the local stack's init
step and the compose init job both create exactly this list, and the compose
tests check that they do.
"""

from __future__ import annotations

from dataclasses import dataclass

# Four partitions let a service type run up to four replicas that all receive
# work: a consumer group never gives one partition to two members.
DEFAULT_PARTITIONS = 4


@dataclass(frozen=True)
class TopicSpec:
    """A topic and how many partitions it is created with."""

    name: str
    partitions: int = DEFAULT_PARTITIONS
    description: str = ""


TRAINER_COMMANDS = "trainer.commands"
TRAINER_EVENTS = "trainer.events"
SAMPLER_COMMANDS = "sampler.commands"
SAMPLER_EVENTS = "sampler.events"
EVALUATOR_COMMANDS = "evaluator.commands"
EVALUATOR_EVENTS = "evaluator.events"
DEAD_LETTER_TOPIC = "platform.deadletter"

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(TRAINER_COMMANDS, description="commands to fit a model"),
    TopicSpec(TRAINER_EVENTS, description="models trained, or training failed"),
    TopicSpec(SAMPLER_COMMANDS, description="commands to select a batch"),
    TopicSpec(SAMPLER_EVENTS, description="batches selected, or selection failed"),
    TopicSpec(EVALUATOR_COMMANDS, description="commands to score a model"),
    TopicSpec(EVALUATOR_EVENTS, description="models evaluated, or evaluation failed"),
    TopicSpec(
        DEAD_LETTER_TOPIC,
        partitions=1,
        description="messages no service could handle, with the reason",
    ),
)
