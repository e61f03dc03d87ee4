"""The settings reference, rendered from `Settings`, so README.md's table cannot drift.

    python -m app.core.settings_doc                    # print the markdown table
    python -m app.core.settings_doc --write README.md  # replace the section between the markers

Each row is one environment variable (`env_prefix`, and `env_nested_delimiter` for the nested
groups), its default, what it accepts and the field's description or attribute docstring.
"""

import argparse
import ast
import inspect
import itertools
import sys
import textwrap
import typing
from collections.abc import Iterator, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from app.core.config import Settings

BEGIN: Final = "<!-- settings:begin -->"
END: Final = "<!-- settings:end -->"
WRITE_COMMAND: Final = "python -m app.core.settings_doc --write README.md"
_TYPE_WORDS: Final = {bool: "true or false", int: "integer", float: "number", str: "text"}


class SettingDoc(NamedTuple):
    """One row of the reference."""

    env: str
    default: str
    accepts: str
    description: str


def setting_docs(model: type[BaseModel] = Settings) -> list[SettingDoc]:
    """Every setting of `model`, nested groups expanded in place, in declaration order."""
    config = model.model_config
    prefix = str(config.get("env_prefix", ""))
    delimiter = str(config.get("env_nested_delimiter") or "__")
    return list(_docs(model, prefix, delimiter))


def _docs(model: type[BaseModel], prefix: str, delimiter: str) -> Iterator[SettingDoc]:
    docstrings = attribute_docstrings(model)
    for name, field in model.model_fields.items():
        annotation = field.annotation
        alias = field.validation_alias if isinstance(field.validation_alias, str) else None
        env = (alias or prefix + name).upper()
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _docs(annotation, env + delimiter, delimiter)
            continue
        description = field.description or docstrings.get(name, "")
        yield SettingDoc(env, _default(field), _accepts(field), _one_line(description))


def attribute_docstrings(model: type[BaseModel]) -> dict[str, str]:
    """The string literal under each annotated field of `model` and its bases (PEP 257)."""
    found: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not issubclass(cls, BaseModel) or cls.__module__.startswith("pydantic"):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(cls))
        except (OSError, TypeError):  # NOTE: a class built at run time has no source to read
            continue
        classes = [n for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]
        body = classes[0].body if classes else []
        for statement, following in itertools.pairwise(body):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                found[statement.target.id] = inspect.cleandoc(following.value.value)
    return found


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, Path):
        value = value.as_posix()
    return f"`{value}`"


def _accepts(field: FieldInfo) -> str:
    annotation: Any = field.annotation
    options = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) not in (None, Literal) and len(options) == 1:
        annotation = options[0]  # `X | None`: None is only ever the default
    if typing.get_origin(annotation) is Literal:
        return ", ".join(f"`{option}`" for option in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, Path):
        return "path"
    words = _TYPE_WORDS.get(annotation) or str(getattr(annotation, "__name__", annotation))
    bounds = _bounds(field.metadata)
    return f"{words} {bounds}" if bounds else words


def _bounds(metadata: Sequence[Any]) -> str:
    signs = {
        annotated_types.Ge: ">=",
        annotated_types.Gt: ">",
        annotated_types.Le: "<=",
        annotated_types.Lt: "<",
    }
    parts = []
    for item in metadata:
        for kind, sign in signs.items():
            if isinstance(item, kind):
                parts.append(f"{sign} {getattr(item, kind.__name__.lower())}")
    return ", ".join(parts)


def _one_line(text: str) -> str:
    """A table cell: whitespace collapsed, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def render_table(docs: Sequence[SettingDoc] | None = None) -> str:
    """The markdown table of `docs` (default: every setting of `Settings`)."""
    rows = setting_docs() if docs is None else docs
    lines = ["| Variable | Default | Accepts | Meaning |", "|---|---|---|---|"]
    lines += [f"| `{d.env}` | {d.default} | {d.accepts} | {d.description} |" for d in rows]
    return "\n".join(lines) + "\n"


def replace_section(text: str, table: str) -> str:
    """`text` with everything between `BEGIN` and `END` replaced by `table`."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the file needs a {BEGIN} line followed by an {END} line")
    return text[: start + len(BEGIN)] + "\n" + table + text[end:]


def section(text: str) -> str:
    """What lies between `BEGIN` and `END` in `text` ('' when the markers are missing)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return ""
    return text[start + len(BEGIN) : end].removeprefix("\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table, or write it into a file's marked section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="replace the marked section of this file")
    args = parser.parse_args(argv)
    table = render_table()
    if args.write is None:
        sys.stdout.write(table)
        return 0
    try:
        updated = replace_section(args.write.read_text(encoding="utf-8"), table)
    except ValueError as exc:
        print(f"{args.write}: {exc}", file=sys.stderr)
        return 1
    args.write.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
