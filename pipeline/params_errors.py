"""pydantic's validation errors as one line: the key, the bad value, what is allowed."""

from typing import Any

from pydantic import BaseModel

from pipeline.paths import PARAMS_FILE

TYPE_MESSAGES = {"int": "must be an integer", "float": "must be a finite number",
                 "finite": "must be a finite number", "string": "must be a string",
                 "tuple": "must be a list of integers", "list": "must be a list of integers",
                 "model": "must be a mapping"}


def _section_message(section: str, kind: str, raw: dict[str, Any],
                     schema: type[BaseModel]) -> str:
    """Return the message for a whole section that is missing, unknown or not a mapping."""
    if kind == "missing":
        return f"missing section {section!r}"
    if kind == "extra_forbidden":
        return f"unknown section {section!r}; sections are {', '.join(schema.model_fields)}"
    return f"section {section!r} must be a mapping, got {raw[section]!r}"


def _key_message(error: dict[str, Any], raw: dict[str, Any], schema: type[BaseModel]
                 ) -> str:
    """Return the message for one key's value, however deep the key is nested."""
    *parents, name = [part for part in error["loc"] if isinstance(part, str)]
    key, kind = ".".join((*parents, name)), error["type"]
    value = raw
    for parent in parents:
        schema, value = schema.model_fields[parent].annotation, value[parent]
    fields = schema.model_fields
    if kind == "missing":
        return f"missing key {key}"
    if kind == "extra_forbidden":
        allowed = f"unknown key; {'.'.join(parents)} takes {', '.join(fields)}"
    elif kind.endswith(("_type", "_parsing", "_from_float")) or kind == "finite_number":
        allowed = TYPE_MESSAGES.get(kind.split("_")[0], error["msg"])
    else:  # a constraint: the field's description says what it allows
        allowed = fields[name].description or error["msg"]
    return f"{key} = {value[name]!r} is invalid: {allowed}"


def one_line(error: dict[str, Any], raw: Any, schema: type[BaseModel]) -> str:
    """Return pydantic's `error` in validating `raw` against `schema` as one line."""
    if not error["loc"]:
        return f"{PARAMS_FILE}: must be a mapping of sections, got {raw!r}"
    if len(error["loc"]) == 1:
        return f"{PARAMS_FILE}: {_section_message(error['loc'][0], error['type'], raw, schema)}"
    return f"{PARAMS_FILE}: {_key_message(error, raw, schema)}"
