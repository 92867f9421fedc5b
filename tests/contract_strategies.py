"""Hypothesis strategies that build any contract model within its field bounds.

Strategies are derived from each field's annotation and constraints (bounds,
lengths, patterns), so a new message or field is covered without a new
strategy.
"""

from __future__ import annotations

import types
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel, ValidationError
from pydantic.fields import FieldInfo


def models(cls: type[BaseModel]) -> st.SearchStrategy[BaseModel]:
    """Return a strategy for valid instances of ``cls``."""
    fields = {
        name: _for_field(info.annotation, info)
        for name, info in cls.model_fields.items()
    }

    # Patterns cannot express every rule (a validator may refuse more), so
    # drafts that the model refuses are discarded rather than reported.
    def validate_or_none(draft: dict[str, Any]) -> BaseModel | None:
        try:
            return cls.model_validate(draft)
        except ValidationError:
            return None

    return (
        st.fixed_dictionaries(fields)
        .map(validate_or_none)
        .filter(lambda model: model is not None)
    )


def _for_field(annotation: Any, info: FieldInfo) -> st.SearchStrategy[Any]:
    bounds = _bounds(info)
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *metadata = get_args(annotation)
        return _for_field(inner, FieldInfo.merge_field_infos(*metadata))
    if origin is dict:
        keys, values = get_args(annotation)
        return st.dictionaries(
            _for_field(keys, FieldInfo()),
            _for_field(values, FieldInfo()),
            max_size=min(bounds.get("max_length", 5), 5),
        )
    if origin is Literal:
        return st.sampled_from(get_args(annotation))
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        inner = st.one_of(*(_for_field(a, info) for a in options))
        return st.none() | inner if type(None) in get_args(annotation) else inner
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return models(annotation)
    if annotation is uuid.UUID:
        return st.uuids()
    if annotation in (datetime, AwareDatetime):
        return st.datetimes(
            min_value=datetime(2000, 1, 1),
            max_value=datetime(2100, 1, 1),
            timezones=st.just(UTC),
        )
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        low = bounds.get("ge", -(2**63))
        low = bounds["gt"] + 1 if "gt" in bounds else low
        return st.integers(min_value=low, max_value=bounds.get("le", 2**63))
    if annotation is float:
        return st.floats(
            min_value=bounds.get("ge", bounds.get("gt", -1e12)),
            max_value=bounds.get("le", 1e12),
            exclude_min="gt" in bounds,
            allow_nan=False,
            allow_infinity=False,
        )
    if annotation is str:
        return _strings(bounds)
    raise NotImplementedError(f"no strategy for {annotation!r}")


def _strings(bounds: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = bounds.get("min_length", 0), bounds.get("max_length", 200)
    if "pattern" in bounds:
        return st.from_regex(bounds["pattern"], fullmatch=True).filter(
            lambda s: low <= len(s) <= high
        )
    return st.text(min_size=low, max_size=min(high, 200))


def _bounds(info: FieldInfo) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    for item in info.metadata:
        for kind, key in (
            (annotated_types.Ge, "ge"),
            (annotated_types.Gt, "gt"),
            (annotated_types.Le, "le"),
            (annotated_types.MinLen, "min_length"),
            (annotated_types.MaxLen, "max_length"),
        ):
            if isinstance(item, kind):
                bounds[key] = getattr(item, key)
        pattern = getattr(item, "pattern", None)
        if pattern:
            bounds["pattern"] = pattern
    return bounds
