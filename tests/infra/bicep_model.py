"""Read Bicep files into plain Python values, for tests that check the templates' invariants.

tree-sitter-bicep gives the syntax tree (docs/functions-facts.md 4.3). This module turns
declarations into dicts and lists while keeping what a string literal is apart from what an
expression is: ``'on_image_pushed'`` becomes ``str``, ``identity`` becomes ``Ref("identity")``,
``identity.properties.clientId`` becomes ``Member("identity.properties.clientId")``, and so on.
Nothing is evaluated; a test asserts on the shape the author wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

_PARSER = Parser(Language(tree_sitter_bicep.language()))


@dataclass(frozen=True)
class Ref:
    """A bare identifier: a parameter, variable, resource, module or loop variable."""

    name: str


@dataclass(frozen=True)
class Member:
    """A property access such as ``identity.properties.clientId`` (whitespace removed)."""

    path: str


@dataclass(frozen=True)
class Call:
    """A function call such as ``guid(account.id, roleId)``."""

    function: str
    args: tuple[object, ...]


@dataclass(frozen=True)
class Ternary:
    """``condition ? when_true : when_false``."""

    condition: object
    when_true: object
    when_false: object


@dataclass(frozen=True)
class Interpolation:
    """A string with ``${...}`` parts: literal text as ``str``, expressions as values."""

    parts: tuple[object, ...]


@dataclass(frozen=True)
class Expr:
    """Any other expression (operators, indexing), kept as source text."""

    text: str


@dataclass(frozen=True)
class Loop:
    """``[for item in iterable: body]``."""

    variable: str
    iterable: object
    body: object


@dataclass(frozen=True)
class Declaration:
    """A ``resource`` or ``module``: its type (or module path), flags and body."""

    symbol: str
    kind: str
    type: str
    existing: bool
    condition: object | None
    body: object

    @property
    def config(self) -> dict[str, object]:
        """The declaration's object, whether it sits in a loop or not."""
        body = self.body.body if isinstance(self.body, Loop) else self.body
        assert isinstance(body, dict), f"{self.symbol}: body is not an object"
        return body


@dataclass
class BicepFile:
    """The declarations of one file, by symbolic name."""

    path: Path
    target_scope: str | None = None
    params: dict[str, object] = field(default_factory=dict)
    param_types: dict[str, str] = field(default_factory=dict)
    variables: dict[str, object] = field(default_factory=dict)
    resources: dict[str, Declaration] = field(default_factory=dict)
    modules: dict[str, Declaration] = field(default_factory=dict)
    outputs: dict[str, object] = field(default_factory=dict)


def syntax_errors(source: bytes) -> list[tuple[int, int]]:
    """(line, column) of every ERROR or missing node; empty when the file parses."""
    found: list[tuple[int, int]] = []
    stack = [_PARSER.parse(source).root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            found.append((node.start_point[0] + 1, node.start_point[1] + 1))
        stack.extend(node.children)
    return sorted(found)


def load(path: Path) -> BicepFile:
    """Parse one Bicep file; raises ValueError naming the file and line of a syntax error."""
    source = path.read_bytes()
    errors = syntax_errors(source)
    if errors:
        raise ValueError(
            f"{path}: Bicep syntax error at line {errors[0][0]}, column {errors[0][1]}"
        )
    result = BicepFile(path=path)
    for node in _PARSER.parse(source).root_node.named_children:
        _declare(result, node)
    return result


def _declare(result: BicepFile, node: Node) -> None:
    named = [c for c in node.named_children if c.type != "comment"]
    if node.type == "target_scope_assignment":
        scope = value(named[-1])
        result.target_scope = scope if isinstance(scope, str) else None
    elif node.type == "parameter_declaration":
        name = _text(named[0])
        result.param_types[name] = _text(named[1])
        result.params[name] = value(named[2]) if len(named) > 2 else None
    elif node.type == "variable_declaration":
        result.variables[_text(named[0])] = value(named[-1])
    elif node.type == "output_declaration":
        result.outputs[_text(named[0])] = value(named[-1])
    elif node.type in ("resource_declaration", "module_declaration"):
        declaration = _declaration(node, named)
        target = result.resources if node.type == "resource_declaration" else result.modules
        target[declaration.symbol] = declaration


def _declaration(node: Node, named: list[Node]) -> Declaration:
    kind = "resource" if node.type == "resource_declaration" else "module"
    type_text = value(named[1])
    assert isinstance(type_text, str), f"line {node.start_point[0] + 1}: type is not a literal"
    existing = any(c.type == "existing" for c in node.children)
    body_node = named[-1]
    condition: object | None = None
    if body_node.type == "if_statement":
        parts = [c for c in body_node.named_children if c.type != "comment"]
        condition = value(parts[0])
        body_node = parts[-1]
    return Declaration(
        symbol=_text(named[0]),
        kind=kind,
        type=type_text,
        existing=existing,
        condition=condition,
        body=value(body_node),
    )


def value(node: Node) -> object:
    """Convert an expression node into str/int/bool/None, dict, list or one of the node classes."""
    kind = node.type
    named = [c for c in node.named_children if c.type != "comment"]
    if kind == "string":
        return _string(node)
    if kind == "number":
        return int(_text(node))
    if kind == "boolean":
        return _text(node) == "true"
    if kind == "null":
        return None
    if kind == "identifier":
        return Ref(_text(node))
    if kind == "object":
        return {_key(p): value(p.named_children[-1]) for p in named if p.type == "object_property"}
    if kind == "array":
        return _array(named)
    if kind == "member_expression":
        return Member("".join(_text(node).split()))
    if kind == "call_expression":
        function = node.child_by_field_name("function")
        arguments = node.child_by_field_name("arguments")
        assert function is not None
        args = [] if arguments is None else arguments.named_children
        return Call(_text(function), tuple(value(a) for a in args if a.type != "comment"))
    if kind == "ternary_expression":
        parts = [node.child_by_field_name(f) for f in ("condition", "consequence", "alternative")]
        assert all(p is not None for p in parts)
        return Ternary(*(value(p) for p in parts if p is not None))
    if kind == "parenthesized_expression" and len(named) == 1:
        return value(named[0])
    if kind == "for_statement":
        initializer = node.child_by_field_name("initializer")
        body = node.child_by_field_name("body")
        assert initializer is not None
        assert body is not None
        iterable = next(c for c in named if c.id not in (initializer.id, body.id))
        return Loop(_text(initializer), value(iterable), value(body))
    return Expr(_text(node))


def _array(items: list[Node]) -> list[object]:
    """Array items. tree-sitter-bicep 1.1.0 splits a call inside an array into an identifier and
    a parenthesized expression that starts where the identifier ends (`resourceGroup().id` reads
    as `resourceGroup`, `().id`); such pairs are joined back here."""
    result: list[object] = []
    index = 0
    while index < len(items):
        item = items[index]
        following = items[index + 1] if index + 1 < len(items) else None
        if item.type == "identifier" and following and following.start_byte == item.end_byte:
            if following.type == "parenthesized_expression":
                args = [c for c in following.named_children if c.type != "comment"]
                result.append(Call(_text(item), tuple(value(a) for a in args)))
            else:
                result.append(Member("".join((_text(item) + _text(following)).split())))
            index += 2
            continue
        result.append(value(item))
        index += 1
    return result


def _string(node: Node) -> object:
    parts: list[object] = []
    for child in node.named_children:
        if child.type == "string_content":
            parts.append(_text(child))
        elif child.type == "escape_sequence":
            parts.append(_unescape(_text(child)))
        elif child.type == "interpolation":
            parts.append(value(child.named_children[0]))
    if all(isinstance(p, str) for p in parts):
        return "".join(p for p in parts if isinstance(p, str))
    return Interpolation(tuple(parts))


def _unescape(sequence: str) -> str:
    escapes = {"\\'": "'", "\\\\": "\\", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\$": "$"}
    return escapes.get(sequence, sequence)


def _key(prop: Node) -> str:
    key = prop.named_children[0]
    return _string(key) if key.type == "string" else _text(key)  # type: ignore[return-value]


def _text(node: Node) -> str:
    return (node.text or b"").decode()
