"""Which TFDS builder a name on the command line means.

`python -m data_builders <name>` takes the folder name of a corpus package: one shipped in
`data_builders/` (lrs3, mtedx, ...), one the user made from `data_builders/TEMPLATE` (put in
`data_builders/<name>/` or anywhere on PYTHONPATH as `<name>`). Importing the package registers
its builder with TFDS, and, for a user's package, its language with `lipjax.languages`
(with the phones it declares, which join the shared inventory: `Language.phones`).

The TFDS name of a builder is usually the folder name; where that name is already taken by one
of TFDS's own datasets (`common_voice`), the builder carries the project prefix (`lipjax_`) so that
both can live in one process. `tfds_name(folder)` gives the name to pass to `tfds.data_source`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import types

import tensorflow_datasets as tfds
from tensorflow_datasets.core import registered

# The corpus packages shipped with lipjax (folder names under data_builders/).
SHIPPED = ("lrs3", "mtedx", "mls", "common_voice", "voxpopuli", "lrw", "voxceleb2", "my_corpus",
           "synthetic_lips")
PREFIX = "lipjax_"


def import_package(name: str) -> types.ModuleType:
    """`data_builders.<name>` if it exists, else the top-level package `<name>`; an error that
    says where it was looked for otherwise."""
    errors = []
    for module in (f"data_builders.{name}", name):
        try:
            return importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name is None or not (module == e.name or module.startswith(e.name + ".")):
                raise  # the package exists but something it imports is missing
            errors.append(module)
    raise ValueError(f"No corpus package {name!r}: tried {' and '.join(errors)}. Shipped: "
                     f"{', '.join(SHIPPED)}; your own goes in data_builders/{name}/ (copy "
                     "data_builders/TEMPLATE) or on PYTHONPATH.")


def builder_cls(name: str) -> type[tfds.core.GeneratorBasedBuilder]:
    """The TFDS builder class that the corpus package `name` registers."""
    package = import_package(name)
    short = package.__name__.rsplit(".", 1)[-1]
    for module in (f"{short}_dataset_builder", "builder"):  # TFDS's two builder module names
        if importlib.util.find_spec(f"{package.__name__}.{module}") is not None:
            importlib.import_module(f"{package.__name__}.{module}")
    found: dict[str, type[tfds.core.GeneratorBasedBuilder]] = {}
    for module_name, module in list(sys.modules.items()):
        if module is None or not (module_name == package.__name__
                                  or module_name.startswith(package.__name__ + ".")):
            continue
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, tfds.core.GeneratorBasedBuilder)
                    and obj.__module__ == module_name and not inspect.isabstract(obj)
                    and _registered(obj)):
                found[obj.name] = obj
    if len(found) != 1:
        what = f"{len(found)} builders ({', '.join(sorted(found))})" if found else "none"
        raise ValueError(f"Package {package.__name__} must register one TFDS builder (a class "
                         f"`Builder` in {package.__name__}/builder.py or "
                         f"{short}_dataset_builder.py, see data_builders/TEMPLATE); found {what}.")
    return next(iter(found.values()))


def tfds_name(name: str) -> str:
    """The `tfds.data_source` name of corpus package `name` (e.g. common_voice ->
    lipjax_common_voice)."""
    return builder_cls(name).name


def _registered(cls: type) -> bool:
    """Registered under its name (bases declared with skip_registration are not). Reads TFDS's
    registry directly: `tfds.builder_cls` would import all of TFDS's own builders on a miss."""
    return registered._DATASET_REGISTRY.get(getattr(cls, "name", None)) is cls  # noqa: SLF001
