"""Safe YAML loading that keeps codes as strings.

PyYAML follows YAML 1.1, where ``NO`` is False and ``007`` is 7 (octal!). Market and segment codes
(``NO`` for Norway, ``007`` for a branch) must stay what the user typed, so this loader resolves only
YAML 1.2 core booleans (``true``/``false``) and plain decimal numbers without leading zeros.

Params files and dataset specs are hand-written configuration, so the loader also refuses what no such
file needs and what would hang or exhaust the process: a file over :data:`MAX_YAML_BYTES`, a document
whose aliases expand to more than :data:`MAX_YAML_NODES` values (a "billion laughs" alias bomb loads in
a blink, as aliases share one object, then hangs whatever walks the result), a recursive alias, and
nesting deeper than :data:`MAX_YAML_DEPTH`. Each is a ``ValueError`` naming the file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

#: Largest YAML file read (bytes): configuration, not data.
MAX_YAML_BYTES = 4 * 1024 * 1024
#: Most values (scalars, lists, mappings) a document may hold once every alias is expanded.
MAX_YAML_NODES = 200_000
#: Deepest nesting of lists / mappings.
MAX_YAML_DEPTH = 100


class YAMLLimitError(yaml.YAMLError):
    """A YAML document over the loader's limits (size, alias expansion, recursion, depth)."""


def expanded_size(root: yaml.Node, limit: int = MAX_YAML_NODES, max_depth: int = MAX_YAML_DEPTH) -> int:
    """Values in the document once aliases are expanded (each alias counts its whole target again).

    Linear in the distinct nodes (sizes are memoised per node), so an alias bomb is measured, not
    expanded. Raises :class:`YAMLLimitError` above ``limit`` values, for an alias that contains itself,
    or for nesting deeper than ``max_depth``.
    """
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    # iterative post-order walk: (node, depth, children visited?)
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            on_path.discard(key)
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > limit:
                raise YAMLLimitError(
                    f"the document expands to more than {limit:,} values once its aliases (*name) are expanded "
                    f"(line {node.start_mark.line + 1}); an alias bomb? Write the values out, or use fewer aliases"
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YAMLLimitError(f"a recursive alias (line {node.start_mark.line + 1}): an anchor that contains itself")
        if depth > max_depth:
            raise YAMLLimitError(f"nested more than {max_depth} levels deep (line {node.start_mark.line + 1})")
        on_path.add(key)
        stack.append((node, depth, True))
        for child in children:
            if id(child) in on_path:
                raise YAMLLimitError(
                    f"a recursive alias (line {child.start_mark.line + 1}): an anchor that contains itself"
                )
            if id(child) not in sizes:
                stack.append((child, depth + 1, False))
    return sizes[id(root)]


class CodeSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader with YAML-1.2-like scalars (yes/no/on/off and 007 stay strings), and bounded:
    a document whose aliases expand past :data:`MAX_YAML_NODES` values is refused before it is built."""

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            expanded_size(node)
        return node


# Drop the YAML 1.1 resolvers for bool and int/float, then add narrow ones.
CodeSafeLoader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
CodeSafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
CodeSafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)
CodeSafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^[-+]?(?:(?:0|[1-9][0-9]*)\.[0-9]*(?:[eE][-+]?[0-9]+)?|(?:0|[1-9][0-9]*)[eE][-+]?[0-9]+"
        r"|\.[0-9]+(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF)|[-+]\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _construct_float(loader: yaml.SafeLoader, node: yaml.Node) -> float:
    text = loader.construct_scalar(node).lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


CodeSafeLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


def _no_duplicate_keys(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


CodeSafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def load_yaml_text(text: str, source: str = "<string>") -> Any:
    """Parse YAML text with :class:`CodeSafeLoader`; errors (also the limits) name ``source``."""
    if len(text) > MAX_YAML_BYTES:
        raise ValueError(
            f"{source}: {len(text):,} characters is too large for a configuration file "
            f"(limit {MAX_YAML_BYTES:,}); data belongs in the tables it declares"
        )
    try:
        return yaml.load(text, Loader=CodeSafeLoader)  # noqa: S506 - CodeSafeLoader derives from SafeLoader
    except YAMLLimitError as exc:
        raise ValueError(f"{source}: refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: invalid YAML: {exc}") from exc
    except RecursionError:
        raise ValueError(f"{source}: refused: nested too deeply to read") from None


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file safely, keeping codes such as ``NO`` and ``007`` as strings; refuses a file over
    :data:`MAX_YAML_BYTES` before reading it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise ValueError(
            f"{path}: {size:,} bytes is too large for a configuration file (limit {MAX_YAML_BYTES:,} bytes); "
            "data belongs in the tables it declares"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    return load_yaml_text(text, source=str(path))


def dump_yaml(data: Any) -> str:
    """Dump plain data as block YAML; strings that a YAML 1.1 reader would misread get quoted."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
