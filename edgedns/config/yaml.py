"""Reading a YAML config file safely: what is written is what is read, at native speed.

- Mapping keys are text exactly as written: owner names, zone apexes and pool names such as
  ``1.10``, ``010``, ``on`` or ``null`` are never turned into numbers, booleans or None.
- Numbers keep the text they were written as (`Number.text`), so a record value like
  ``TXT: 010`` is served as written, not as ``8``.
- Duplicate keys are errors, not a silent last-one-wins.
- Aliases may not expand the document beyond `MAX_NODES` nodes (a "billion laughs" file of a
  few hundred bytes would otherwise cost gigabytes and minutes to walk).
- libyaml's C parser is used when PyYAML was built with it.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_NODES = 2_000_000
"""Nodes a document may hold once every alias is expanded: far above any real config (a
100,000-record zone written in YAML is about 300,000 nodes)."""

_Base: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE = "tag:yaml.org,2002:merge"


class YamlError(ValueError):
    """A file that is not a YAML document we accept; the message says where and why."""


class Int(int):
    """An integer that remembers how it was written (``010`` reads as 8, text ``"010"``)."""

    text: str


class Float(float):
    """A float that remembers how it was written (``1.10`` reads as 1.1, text ``"1.10"``)."""

    text: str


def source_text(value: Any) -> str:
    """`value` as the YAML file wrote it, for values read as numbers; `str` otherwise."""
    return getattr(value, "text", None) or str(value)


def load(text: str, name: str) -> Any:
    """Parse YAML `text` (the file `name`, for messages). Raises `YamlError`."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        where = str(exc).replace('"<unicode string>"', f'"{name}"')
        raise YamlError(f"not valid YAML: {where}") from None
    finally:
        loader.dispose()


class _Loader(_Base):
    def construct_mapping(self, node: Node, deep: bool = False) -> dict:
        if not isinstance(node, MappingNode):
            raise ConstructorError(None, None, "expected a mapping", node.start_mark)
        written: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode):
                raise ConstructorError(None, None, "a mapping key must be plain text",
                                       key_node.start_mark)
            if key_node.tag == _MERGE:
                continue
            if key_node.value in written:
                raise ConstructorError(None, None, f"duplicate key {key_node.value!r}",
                                       key_node.start_mark)
            written.add(key_node.value)
        # Merged keys (<<) come first, so keys written here override them, as YAML says.
        self.flatten_mapping(node)
        # Keys as written: no number, boolean or null conversion.
        return {key.value: self.construct_object(value, deep=deep) for key, value in node.value}

    def construct_yaml_int(self, node: ScalarNode) -> Int:
        value = Int(super().construct_yaml_int(node))
        value.text = node.value
        return value

    def construct_yaml_float(self, node: ScalarNode) -> Float:
        value = Float(super().construct_yaml_float(node))
        value.text = node.value
        return value


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_yaml_float)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    pass


def _number(dumper: yaml.SafeDumper, value: Int | Float) -> yaml.ScalarNode:
    tag = "tag:yaml.org,2002:int" if isinstance(value, int) else "tag:yaml.org,2002:float"
    return dumper.represent_scalar(tag, source_text(value))


_Dumper.add_representer(Int, _number)
_Dumper.add_representer(Float, _number)


def dump(value: Any) -> str:
    """YAML text that `load` reads back as `value`: numbers as they were written, keys and
    strings quoted where YAML would read them as something else."""
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False)


def _check_expansion(root: Node) -> None:
    """Raise unless `root`, with aliases expanded, holds at most `MAX_NODES` nodes. Each
    distinct node is visited once (sizes are remembered), so this costs what the file does."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    # Post-order without recursion: a deep document must not hit Python's recursion limit.
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children = _children(node)
        if not children_done and children:
            if id(node) in open_nodes:
                raise ConstructorError(None, None, "an alias refers to a node that contains "
                                       "it", node.start_mark)
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        open_nodes.discard(id(node))
        total = 1 + sum(sizes.get(id(child), 0) for child in children)
        if total > MAX_NODES:
            raise ConstructorError(None, None, f"aliases expand this document beyond "
                                   f"{MAX_NODES:,} nodes", node.start_mark)
        sizes[id(node)] = total


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return node.value
    if isinstance(node, MappingNode):
        return [item for pair in node.value for item in pair]
    return []
