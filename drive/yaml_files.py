"""YAML as configs need it: ``yaml.safe_load``'s loader that also refuses a key given twice,
and one-line descriptions of YAML errors with the line and column.

PyYAML keeps the last of two equal keys silently (``sparsity: 0.5`` then ``sparsity: 0.9`` runs
0.9); in a config that is almost always an edit gone wrong, so it is an error here.
"""

from __future__ import annotations

from typing import Any

import yaml

MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (the loader of ``yaml.safe_load``) that refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:  # `<<: *anchor` may be overridden by the keys after it
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line)
            except TypeError:  # an unhashable key: SafeLoader says so itself
                continue
            if first != key_node.start_mark.line:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice (first on line {first + 1}); give each "
                    "field once", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    """``yaml.safe_load(text)``, refusing duplicate keys."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def describe_yaml_error(error: yaml.YAMLError) -> str:
    """``line L, column C: problem`` (or the error's first line when it has no position)."""
    problem = getattr(error, "problem", None)
    mark = getattr(error, "problem_mark", None)
    if problem and mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return str(error).splitlines()[0] if str(error) else "invalid YAML"
