"""YAML read as a tree of nodes, so every value keeps its line and its raw spelling.

Loading YAML into Python objects loses both: `version: 3.10` would become the float 3.1 and
nothing would remember where an entry was written. Composing to nodes keeps scalars as the
exact text of the file and each node's start mark, which the loaders turn into `file:line`.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from producer.locks.interface import LockError

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NULL_TAG = "tag:yaml.org,2002:null"


def compose(path: Path, text: str) -> Node | None:
    """The document's root node, or None for an empty document."""
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise LockError(path, line, f"YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise LockError(path, line, f"YAML syntax error: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise LockError(path, None, f"YAML syntax error: {exc}") from None


def line_of(node: Node) -> int:
    return int(node.start_mark.line) + 1


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == _NULL_TAG


def mapping(path: Path, node: Node, what: str) -> dict[str, Node]:
    """Keys of a mapping node as text; a later duplicate key wins, as in PyYAML."""
    if not isinstance(node, MappingNode):
        raise LockError(path, line_of(node), f"{what} must be a mapping")
    result: dict[str, Node] = {}
    for key, value in node.value:
        if not isinstance(key, ScalarNode):
            raise LockError(path, line_of(key), f"{what} has a key that is not text")
        result[str(key.value)] = value
    return result


def key_lines(node: Node) -> dict[str, int]:
    """Line of each key of a mapping node: where a reader looks for a value on the next lines."""
    if not isinstance(node, MappingNode):
        return {}
    return {str(k.value): line_of(k) for k, _ in node.value if isinstance(k, ScalarNode)}


def sequence(path: Path, node: Node, what: str) -> list[Node]:
    if not isinstance(node, SequenceNode):
        raise LockError(path, line_of(node), f"{what} must be a list")
    return list(node.value)


def scalar(path: Path, node: Node, what: str) -> str | None:
    """The raw text of a scalar (never converted to a number); None for a YAML null."""
    if not isinstance(node, ScalarNode):
        raise LockError(path, line_of(node), f"{what} must be a single value")
    if node.tag == _NULL_TAG:
        return None
    return str(node.value)


def text_value(path: Path, node: Node, what: str) -> str:
    """A scalar that must be present and non-empty."""
    value = scalar(path, node, what)
    if value is None or not value.strip():
        raise LockError(path, line_of(node), f"{what} is empty")
    return value.strip()
