"""Building blocks shared by every Rollwise resource: the base model, and the small value types
(int-or-percent, durations, bounded integers) whose errors must read well in `rollwise lint`."""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

API_GROUP = "rollwise.dev"
ApiVersion = Literal["rollwise.dev/v1alpha1"]
API_VERSION: Final[ApiVersion] = "rollwise.dev/v1alpha1"


class Spec(BaseModel):
    """Base of every model: camelCase keys as written in YAML, unknown keys rejected, no coercion of
    "5" into 5 (Kubernetes would reject it too), and validation on assignment so a model built in
    code obeys the same rules as one loaded from a file."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        populate_by_name=True,
        validate_assignment=True,
        frozen=False,
    )

    # Names of fields of which exactly one must be set; checked after field validation so that the
    # error names the object that holds them.
    exactly_one_of: ClassVar[tuple[str, ...]] = ()
    at_most_one_of: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _check_one_of(self) -> Spec:
        for names, exact in ((self.exactly_one_of, True), (self.at_most_one_of, False)):
            if not names:
                continue
            aliases = [_alias(type(self), n) for n in names]
            chosen = [a for n, a in zip(names, aliases, strict=True) if getattr(self, n) is not None]
            if len(chosen) > 1:
                raise ValueError(f"set only one of {', '.join(aliases)} (got {', '.join(chosen)})")
            if exact and not chosen:
                raise ValueError(f"set exactly one of {', '.join(aliases)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The YAML/JSON form: camelCase keys, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def _alias(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    return field.alias or name


# --- int or percent -------------------------------------------------------------------------------

_PERCENT = re.compile(r"^(0|[1-9][0-9]*)%$")


def _int_or_percent(value: Any) -> int | str:
    if isinstance(value, bool):
        raise ValueError(f"must be an integer or a percentage like '25%' (got {value!r})")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative (got {value})")
        return value
    if isinstance(value, str):
        if not _PERCENT.match(value):
            raise ValueError(f"must be an integer or a percentage like '25%' (got {value!r})")
        if int(value[:-1]) > 100:
            raise ValueError(f"must be a percentage between 0% and 100% (got {value!r})")
        return value
    raise ValueError(f"must be an integer or a percentage like '25%' (got {value!r})")


IntOrPercent = Annotated[
    int | str,
    PlainValidator(_int_or_percent),
    WithJsonSchema(
        {
            # pattern binds strings only and minimum numbers only, so both sit beside the anyOf
            # that Kubernetes allows for int-or-string.
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "minimum": 0,
            "pattern": r"^[0-9]+%$",
        }
    ),
]


def resolve_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """Kubernetes' rule: a percentage of `total`, rounded up for surge and down for unavailability."""
    if isinstance(value, int):
        return value
    pct = int(value[:-1])
    whole, rest = divmod(pct * total, 100)
    return whole + (1 if round_up and rest else 0)


# --- durations ------------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(value: int | str) -> float:
    """Seconds in a duration written as an integer of seconds or as '90s', '5m', '1h30m', '250ms'."""
    if isinstance(value, int):
        return float(value)
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


def _duration(value: Any) -> int | str:
    if isinstance(value, bool):
        raise ValueError(f"must be a duration like '30s', '5m' or '1h' (got {value!r})")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative (got {value})")
        return value
    if isinstance(value, str) and _DURATION.match(value):
        return value
    raise ValueError(f"must be a duration like '30s', '5m' or '1h' (got {value!r})")


Duration = Annotated[
    int | str,
    PlainValidator(_duration),
    WithJsonSchema(
        {
            "x-kubernetes-int-or-string": True,
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "minimum": 0,
            "pattern": r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$",
        }
    ),
]


# --- bounded integers -----------------------------------------------------------------------------


def _bounded(lo: int, hi: int | None) -> Any:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer (got {value!r})")
        if value < lo or (hi is not None and value > hi):
            if hi is None:
                raise ValueError(f"must be {lo} or more (got {value})")
            raise ValueError(f"must be between {lo} and {hi} (got {value})")
        return value

    schema: dict[str, Any] = {"type": "integer", "minimum": lo}
    if hi is not None:
        schema["maximum"] = hi
    return Annotated[int, PlainValidator(check), WithJsonSchema(schema)]


NonNegativeInt = _bounded(0, None)
PositiveInt = _bounded(1, None)
Weight = _bounded(0, 100)  # traffic weight: integer percent
Percent = _bounded(0, 100)
MirrorPercent = _bounded(1, 100)


# --- names ----------------------------------------------------------------------------------------

_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

DnsLabel = Annotated[str, Field(pattern=_DNS_LABEL, max_length=63)]
DnsSubdomain = Annotated[str, Field(pattern=_DNS_SUBDOMAIN, max_length=253)]


class ObjectMeta(Spec):
    """The part of Kubernetes' ObjectMeta a user writes; the rest belongs to the API server."""

    model_config = ConfigDict(extra="allow")

    name: DnsSubdomain
    namespace: DnsLabel | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class LabelSelectorRequirement(Spec):
    key: str
    operator: str = Field(pattern=r"^(In|NotIn|Exists|DoesNotExist)$")
    values: list[str] | None = None


class LabelSelector(Spec):
    match_labels: dict[str, str] | None = Field(default=None, alias="matchLabels")
    match_expressions: list[LabelSelectorRequirement] | None = Field(default=None, alias="matchExpressions")
