"""``${VAR}`` and ``${VAR:-default}`` substitution in config strings.

``$${`` stands for a literal ``${``. Substitution happens per YAML scalar, so an unset variable
is reported at the line and column of the value that uses it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class UnsetVariableError(ValueError):
    """A ``${VAR}`` names a variable that is not set and has no default."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        listed = ", ".join(names)
        super().__init__(
            f"environment variable {listed} is not set "
            "(set it, or write ${NAME:-default} for a default)"
        )


def substitute(value: str, environ: Mapping[str, str]) -> str:
    """Replace every reference in ``value``; raise :class:`UnsetVariableError` for unset ones."""
    if "$" not in value:
        return value
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name is None:
            return "${"
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    result = _REFERENCE.sub(replace, value)
    if missing:
        raise UnsetVariableError(missing)
    return result


def uses_variables(value: str) -> bool:
    """Whether ``value`` contains a ``${VAR}`` reference (its result may be a secret)."""
    return any(m.group(1) for m in _REFERENCE.finditer(value))
