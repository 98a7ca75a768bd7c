"""YAML parsing that remembers where every key and value came from.

PyYAML composes a node tree with marks; we build plain Python data from it ourselves so that
each path (``("sinks", "soc-teams", "url")``) maps to a line and column, duplicate keys are
caught (YAML silently keeps the last one), and ``${VAR}`` is substituted per scalar.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

from notirouter.config.envsubst import UnsetVariableError, substitute
from notirouter.config.errors import ConfigProblem, Position
from notirouter.config.yaml_bounds import bounds_problem

Path = tuple[str | int, ...]
# libyaml's parser when PyYAML was built with it: about 5x faster than the pure-Python one,
# with the same events, nodes and marks.
LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass
class LocatedDocument:
    """Plain data from a YAML file, with the position of every value and mapping key."""

    file: str
    data: Any
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)
    unset_paths: dict[Path, ConfigProblem] = field(default_factory=dict)

    def position(self, path: Path, *, key: bool = False) -> Position:
        """Where ``path`` is, or its nearest ancestor that exists in the file."""
        if key and path in self.keys:
            return self.keys[path]
        for end in range(len(path), -1, -1):
            found = self.values.get(path[:end])
            if found is not None:
                return found
        return Position(self.file, 1, 1)


def load_located(text: str, file: str, environ: Mapping[str, str]) -> LocatedDocument:
    """Parse ``text``; syntax errors, duplicate keys, unset variables and broken bounds
    (:mod:`~notirouter.config.yaml_bounds`) become problems."""
    document = LocatedDocument(file=file, data=None)
    try:
        # Before any node is built: a YAML bomb, a recursive alias or a huge file stops here.
        bounds = bounds_problem(text, file, LOADER)
        if bounds is not None:
            document.problems.append(bounds)
            return document
        node = yaml.compose(text, Loader=LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = _position(file, mark) if mark is not None else Position(file, 1, 1)
        reason = exc.problem or exc.context or "invalid YAML"
        document.problems.append(ConfigProblem(position, f"YAML syntax error: {reason}"))
        return document
    except yaml.YAMLError as exc:
        document.problems.append(ConfigProblem(Position(file, 1, 1), f"YAML error: {exc}"))
        return document
    if node is None:
        document.data = {}
        return document
    builder = _Builder(document, environ)
    document.data = builder.build(node, ())
    return document


def _position(file: str, mark: yaml.Mark) -> Position:
    return Position(file, mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, document: LocatedDocument, environ: Mapping[str, str]) -> None:
        self.document = document
        self.environ = environ
        self.scalars = SafeConstructor()

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.document.values.setdefault(path, _position(self.document.file, node.start_mark))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: Path) -> Any:
        if node.tag == _STR_TAG:
            try:
                return substitute(str(node.value), self.environ)
            except UnsetVariableError as exc:
                self._problem(node, str(exc))
                self.document.unset_paths[path] = self.document.problems[-1]
                return ""
        try:
            return self.scalars.construct_object(node, deep=True)
        except ConstructorError as exc:
            self._problem(node, f"invalid value: {exc.problem}")
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        result: dict[str, Any] = {}
        merged: dict[str, Any] = {}  # from "<<: *anchor": explicit keys win, in any order
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                built = self.build(value_node, path)
                for source in built if isinstance(built, list) else [built]:
                    if isinstance(source, dict):
                        for k, v in source.items():
                            merged.setdefault(k, v)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem(key_node, "a mapping key must be a plain string")
                continue
            key = str(key_node.value)
            if key in result:
                first = self.document.keys[(*path, key)]
                self._problem(
                    key_node, f"duplicate key {key!r} (first defined at line {first.line})"
                )
                continue
            self.document.keys[(*path, key)] = _position(self.document.file, key_node.start_mark)
            result[key] = self.build(value_node, (*path, key))
        return {**merged, **result}

    def _problem(self, node: yaml.Node, message: str) -> None:
        position = _position(self.document.file, node.start_mark)
        self.document.problems.append(ConfigProblem(position, message))
