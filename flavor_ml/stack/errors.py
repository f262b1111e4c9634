"""The stack's own error: a service would not start, a port is taken, a process will not stop."""

from __future__ import annotations

from flavor_ml.errors import FlavorError


class StackError(FlavorError):
    """The local stack could not be brought to the state asked for; the message says which service and why."""
