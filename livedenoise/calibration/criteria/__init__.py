"""The calibration criteria, registered by name: what "good enough" means at n averages.

Each criterion is one module holding a ``Criterion`` subclass (``base.py``: its test of a rung, its
reason, its plot guide); ``register`` adds it, and everything (the calibration, its report and plot,
the command line's ``--criterion`` choice, the viewer) finds it here by its ``kind``. Adding one is one
new module plus one line below; a script can ``register`` its own before calibrating.

    profile = calibrate_from_stack(stack, CalibrationRequest(model=..., criterion="plateau"), out)
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Union

from pydantic import BeforeValidator, Field, PlainSerializer, TypeAdapter

from livedenoise.calibration.criteria.base import Criterion, Guide, Metric, Tolerance
from livedenoise.calibration.criteria.plateau import Plateau
from livedenoise.calibration.criteria.reference import Reference

CRITERIA: dict[str, type[Criterion]] = {}


def register(criterion: type[Criterion]) -> type[Criterion]:
    """Make ``criterion`` known by its ``kind`` (usable as a decorator); a kind is registered once."""
    kind = criterion.model_fields["kind"].default
    if not isinstance(kind, str) or kind in CRITERIA:
        raise ValueError(f"criterion {kind!r}: needs a kind of its own (registered: {names()})")
    CRITERIA[kind] = criterion
    _union.cache_clear()
    return criterion


def names() -> list[str]:
    """The registered criteria's kinds, in registration order (the default first)."""
    return list(CRITERIA)


@cache
def _union() -> TypeAdapter[Any]:
    """The registered criteria as one discriminated union on ``kind``."""
    members = Union.__getitem__(tuple(CRITERIA.values()))  # a union built at run time
    return TypeAdapter(Annotated[members, Field(discriminator="kind")])


def parse(value: object) -> Criterion:
    """A criterion from itself, its kind (``"plateau"``) or its fields (``{"kind": ..., ...}``);
    raises pydantic's ``ValidationError`` naming the registered kinds for an unknown one."""
    if isinstance(value, Criterion):
        return value
    criterion: Criterion = _union().validate_python(
        {"kind": value} if isinstance(value, str) else value
    )
    return criterion


def _dump(criterion: Criterion) -> str | dict[str, Any]:
    """A criterion without parameters is saved as its kind (as profiles always held it)."""
    return (
        criterion.kind if set(type(criterion).model_fields) == {"kind"} else criterion.model_dump()
    )


# a field holding any registered criterion, validated against the registry as it is when validating
AnyCriterion = Annotated[Criterion, BeforeValidator(parse), PlainSerializer(_dump)]

# the registry: one line per criterion, the default first
register(Reference)
register(Plateau)

__all__ = [
    "CRITERIA",
    "AnyCriterion",
    "Criterion",
    "Guide",
    "Metric",
    "Plateau",
    "Reference",
    "Tolerance",
    "names",
    "parse",
    "register",
]
