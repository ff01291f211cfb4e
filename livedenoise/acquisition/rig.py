"""What the simulated devices share: a rig to find each other in, and typed, bounded settings.

A real detector does not ask Micro-Manager where the stage is: both are wired to the same microscope.
Python device adapters get no handle on each other from the core either, so devices that belong to
one simulated microscope meet in a named rig (the pre-initialisation property `Rig`, like the serial
port that real adapters share). Devices loaded from one configuration file share the rig it names;
`make_core()` gives every core a rig of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

RIG = "Rig"
_RIGS: dict[str, dict[str, Any]] = {}


class Choice(str):
    """An allowed property value that also equals its number.

    Micro-Manager passes property values as text ("12") while Python callers pass numbers (12);
    the allowed-values check of UniMMCore compares with ==, so each choice accepts both spellings.
    """

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self, str(other))

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = str.__hash__


def choices(*values: object) -> tuple[Choice, ...]:
    """Allowed values for a property, each accepted as text or as the value itself."""
    return tuple(Choice(str(v)) for v in values)


def whole(value: Any) -> int:
    """An integer setting: accept 4, 4.0 and "4"; refuse 4.5 rather than round it silently."""
    number = float(value)
    if not number.is_integer():
        raise ValueError(f"expected a whole number, got {value!r}")
    return int(number)


class RigMember:
    """Mixin for a unicore Device that belongs to a simulated rig, in one `ROLE`."""

    ROLE: ClassVar[str]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._values: dict[str, Any] = {}
        self._attached = False
        self.setting(RIG, "default", kind=str, pre_init=True, effect=self._check_detached)

    def setting(
        self,
        name: str,
        default: Any,
        *,
        kind: Callable[[Any], Any] = float,
        limits: tuple[float, float] | None = None,
        allowed: Sequence[Choice] | None = None,
        pre_init: bool = False,
        effect: Callable[[Any], None] | None = None,
    ) -> None:
        """Register a property stored on the device, converted by `kind`, checked by the core;
        `effect` runs with each converted value before it is stored (and may refuse it by raising)."""
        self._values[name] = default

        def store(dev: RigMember, value: Any) -> None:
            try:
                value = kind(value)
            except ValueError as err:
                raise ValueError(f"property {name!r}: {err}") from None
            if effect is not None:
                effect(value)
            dev._values[name] = value

        self.register_property(  # type: ignore[attr-defined]
            name,
            default_value=default,
            getter=lambda dev: dev._values[name],
            setter=store,
            limits=limits,
            allowed_values=allowed,
            is_pre_init=pre_init,
            property_type={float: float, whole: int}.get(kind, str),
        )

    def value(self, name: str) -> Any:
        """The current value of a setting registered with `setting`."""
        return self._values[name]

    def initialize(self) -> None:
        """Join the rig named by the `Rig` property."""
        _RIGS.setdefault(self._values[RIG], {})[self.ROLE] = self
        self._attached = True

    def shutdown(self) -> None:
        """Leave the rig (if this device still holds its role there)."""
        members = _RIGS.get(self._values[RIG], {})
        if members.get(self.ROLE) is self:
            del members[self.ROLE]
        self._attached = False

    def peer(self, role: str) -> Any:
        """The device holding `role` in this device's rig, or None."""
        return _RIGS.get(self._values[RIG], {}).get(role)

    def _check_detached(self, _: object) -> None:
        if self._attached:
            raise ValueError(
                f"{RIG} is a pre-initialisation property: set it before the devices are "
                "initialised (before Property,Core,Initialize,1 in a configuration file)"
            )
