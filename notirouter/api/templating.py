"""Sandboxed Jinja2 for ``when`` conditions and templates, compiled once at load.

Only configuration text is ever compiled; event data is only ever passed as variables, so a
hostile event cannot inject template syntax. Missing values render as empty strings and chain
(``alert.urgency.current_value`` with no alert is undefined, not an exception).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import AfterValidator


class TemplateCompileError(ValueError):
    """A template or expression from the config does not compile."""


class TemplateRenderError(ValueError):
    """A template failed while rendering (e.g. comparing an undefined value)."""


def _format_time(value: Any) -> str:
    """Unix seconds or an ISO string, as one UTC ISO form (``2024-12-15T12:29:08Z``)."""
    if value is None or value == "":
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            moment = datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return str(value)  # 1e18, NaN: not a time any platform can show; keep the number
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return str(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_environment() -> ImmutableSandboxedEnvironment:
    """The one Jinja2 environment notirouter compiles config text with."""
    env = ImmutableSandboxedEnvironment(
        undefined=ChainableUndefined,
        autoescape=False,  # messages are plain text; each sink escapes for its markup
        keep_trailing_newline=False,
    )
    env.filters["isotime"] = _format_time
    return env


class Templates:
    """Compiles config templates and conditions once; renders them per event."""

    def __init__(self) -> None:
        self._env = make_environment()

    def compile_template(self, source: str) -> Callable[[Mapping[str, Any]], str]:
        """Compile a text template; raise :class:`TemplateCompileError` with Jinja's reason."""
        try:
            template = self._env.from_string(source)
        except TemplateError as exc:
            raise TemplateCompileError(_reason(exc)) from None

        def render(variables: Mapping[str, Any]) -> str:
            try:
                return template.render(variables)
            except TemplateError as exc:
                raise TemplateRenderError(_reason(exc)) from None
            except Exception as exc:  # any failure of one template is that template's only
                raise TemplateRenderError(_failure(exc)) from None

        return render

    def compile_condition(self, source: str) -> Callable[[Mapping[str, Any]], bool]:
        """Compile a ``when`` expression to a predicate.

        Evaluation errors of any kind (an undefined value compared with a number, a filter
        that raised) raise :class:`TemplateRenderError`; the caller decides that the route
        does not match.
        """
        try:
            expression = self._env.compile_expression(source, undefined_to_none=False)
        except TemplateError as exc:
            raise TemplateCompileError(_reason(exc)) from None

        def evaluate(variables: Mapping[str, Any]) -> bool:
            try:
                return bool(expression(**variables))
            except TemplateError as exc:
                raise TemplateRenderError(_reason(exc)) from None
            except Exception as exc:  # e.g. OSError, RecursionError: still only this route's
                raise TemplateRenderError(_failure(exc)) from None

        return evaluate

    def compile_value(self, source: str) -> Callable[[Mapping[str, Any]], Any]:
        """Compile an expression to a function of the variables returning its value.

        An undefined value is ``None``; any other evaluation error raises
        :class:`TemplateRenderError`.
        """
        try:
            expression = self._env.compile_expression(source, undefined_to_none=True)
        except TemplateError as exc:
            raise TemplateCompileError(_reason(exc)) from None

        def evaluate(variables: Mapping[str, Any]) -> Any:
            try:
                return expression(**variables)
            except TemplateError as exc:
                raise TemplateRenderError(_reason(exc)) from None
            except Exception as exc:  # any failure of one expression is that expression's only
                raise TemplateRenderError(_failure(exc)) from None

        return evaluate


def _reason(exc: TemplateError) -> str:
    message = exc.message or type(exc).__name__
    return message.splitlines()[0]


def _failure(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_SYNTAX_CHECKER = make_environment()


def check_template_syntax(value: str) -> str:
    """Validator for option fields holding a template: fail at load, with the config's line."""
    try:
        _SYNTAX_CHECKER.parse(value)
    except TemplateError as exc:
        raise ValueError(f"template does not compile: {_reason(exc)}") from None
    return value


TemplateText = Annotated[str, AfterValidator(check_template_syntax)]
"""A plugin option holding a Jinja2 template: its syntax is checked when the config loads."""
