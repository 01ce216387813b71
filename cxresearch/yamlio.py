"""Safe YAML loading that keeps codes as strings.

PyYAML follows YAML 1.1, where ``NO`` is False and ``007`` is 7 (octal!). Market and segment codes
(``NO`` for Norway, ``007`` for a branch) must stay what the user typed, so this loader resolves only
YAML 1.2 core booleans (``true``/``false``) and plain decimal numbers without leading zeros.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml


class CodeSafeLoader(yaml.SafeLoader):
    """yaml.SafeLoader with YAML-1.2-like scalars: yes/no/on/off and 007 stay strings."""


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
    """Parse YAML text with :class:`CodeSafeLoader`; errors name ``source``."""
    try:
        return yaml.load(text, Loader=CodeSafeLoader)  # noqa: S506 - CodeSafeLoader derives from SafeLoader
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: invalid YAML: {exc}") from exc


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file safely, keeping codes such as ``NO`` and ``007`` as strings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    return load_yaml_text(path.read_text(encoding="utf-8"), source=str(path))


def dump_yaml(data: Any) -> str:
    """Dump plain data as block YAML; strings that a YAML 1.1 reader would misread get quoted."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)
