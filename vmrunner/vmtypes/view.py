"""Read-only views of the configuration model for templates.

A template reads ``vm.maximumRam`` or ``vm.drives[0].file`` (camelCase, as in the config file;
snake_case works too). An unknown key raises :class:`TemplateKeyError` naming its key path; an
unset key yields :class:`Unset`, which is false in ``% if`` and an error when inserted.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from vmrunner.vmtypes.errors import TemplateKeyError
from vmrunner.vmtypes.escape import Unset


def wrap(value: object, path: str) -> Any:
    """A template-friendly view of ``value`` found at config key ``path``."""
    if value is None:
        return Unset(path)
    if isinstance(value, BaseModel):
        return ConfigView(value, path)
    if isinstance(value, list):
        return [wrap(item, f"{path}/{index}") for index, item in enumerate(value)]
    return value


class ConfigView:
    """Attribute access to a config model by its camelCase keys, with key paths in errors."""

    __slots__ = ("_model", "_path")

    def __init__(self, model: BaseModel, path: str) -> None:
        self._model = model
        self._path = path

    def __getattr__(self, key: str) -> Any:
        fields = type(self._model).model_fields
        name = key if key in fields else None
        if name is None:
            name = next((n for n, info in fields.items() if info.alias == key), None)
        if name is None:
            path = f"{self._path}/{key}"
            raise TemplateKeyError(f"{path}: no such configuration key", key=path)
        alias = fields[name].alias or name
        return wrap(getattr(self._model, name), f"{self._path}/{alias}")

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"ConfigView({self._path})"

    @property
    def model(self) -> BaseModel:
        """The wrapped (frozen) model."""
        return self._model
