"""Settings objects: pydantic models (like the study) whose every error is one line, `<what>: <name>=<value> <why>`,
raised as the floor's own error class."""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

_INT = ("int_type", "int_parsing", "int_from_float")
_FLOAT = ("float_type", "float_parsing")


class Settings(BaseModel):
    """Keyword settings validated by field type and by the subclass's `model_validator`s; unknown names refused.
    A validator raises ValueError("<name>=<value> <why>"); the caller gets `ERROR("<WHAT>: <name>=<value> <why>")`."""

    model_config = ConfigDict(extra="forbid")
    WHAT: ClassVar[str] = "settings"
    ERROR: ClassVar[type[Exception]] = ValueError

    def __init__(self, **settings):
        try:
            super().__init__(**settings)
        except ValidationError as err:
            raise self.ERROR(f"{self.WHAT}: {self._one_line(err)}") from None

    @classmethod
    def _one_line(cls, err: ValidationError) -> str:
        e = err.errors()[0]
        name = ".".join(str(p) for p in e["loc"])
        if e["type"] == "value_error":
            return str(e["ctx"]["error"])
        if e["type"] == "extra_forbidden":
            return f"{name!r} is not a setting; choose from {', '.join(cls.model_fields)}"
        why = "must be an integer" if e["type"] in _INT else "must be a number" if e["type"] in _FLOAT else e["msg"]
        return f"{name}={e['input']!r} {why}"
