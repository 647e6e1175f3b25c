"""Reads a PyTorch checkpoint (`torch.save` zip archive) into numpy arrays, without PyTorch and
without running code stored in the file.

A pickle names the functions it wants called (its GLOBAL opcodes); an ordinary unpickler imports
and calls them, which is how a checkpoint can run arbitrary code. `SafeUnpickler.find_class`
imports nothing: it answers every name with either a function written here (rebuild a tensor
from its storage bytes, make an OrderedDict) or `Opaque`, an inert record of the name and the
arguments it was given. So the only code that runs is this module's and the `pickle` machine's
own container building; fairseq's config objects (omegaconf `DictConfig`, `argparse.Namespace`)
come back as `Opaque` records whose contents `plain` turns into dicts. Tensor bytes are read from
the archive's `data/` entries by key, as PyTorch stores them (little-endian).
"""

from __future__ import annotations

import collections
import os
import pickle
import zipfile
from typing import Any

import ml_dtypes
import numpy as np

# PyTorch storage classes, by the name a pickle gives them, and their element types.
STORAGE_DTYPES: dict[str, Any] = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class Opaque:
    """Stands for any object whose class the allow-list does not know: records the class name,
    the constructor arguments and the pickled state, and does nothing else."""

    origin = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:  # pickle's NEWOBJ calls only this
        obj = super().__new__(cls)
        obj.args, obj.kwargs, obj.state = args, dict(kwargs), None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # pickle's SETITEMS on a dict subclass
        self.kwargs[key] = value

    def append(self, value: Any) -> None:  # pickle's APPENDS on a list subclass
        self.args = (*self.args, value)

    def extend(self, values: Any) -> None:
        self.args = (*self.args, *values)

    def __repr__(self) -> str:
        return f"<{self.origin} (not loaded)>"


class _StorageType:
    def __init__(self, name: str) -> None:
        self.name, self.dtype = name, STORAGE_DTYPES[name]


def _rebuild_tensor(storage: np.ndarray, offset: int, size: tuple, stride: tuple,
                    *_: Any) -> np.ndarray:
    """torch._utils._rebuild_tensor_v2: a strided view of the storage, copied."""
    if not size:
        return storage[offset].copy()
    item = storage.itemsize
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * item for s in stride))
    return np.array(view)


def _rebuild_parameter(data: np.ndarray, *_: Any) -> np.ndarray:
    return data


def _rebuild_from_type(func: Any, _new_type: Any, args: tuple, _state: Any) -> Any:
    return func(*args)


ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "Size"): tuple,
}


class SafeUnpickler(pickle.Unpickler):
    """The allow-list unpickler (see the module docstring): `find_class` never imports."""

    def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(file)
        self.archive, self.prefix = archive, prefix
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in ALLOWED:
            return ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        return type(name, (Opaque,), {"origin": f"{module}.{name}"})

    def persistent_load(self, pid: Any) -> np.ndarray:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        kind, key = pid[1], str(pid[2])
        if not isinstance(kind, _StorageType):
            raise pickle.UnpicklingError(f"storage of unknown type {kind!r}")
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}data/{key}")
            self.storages[key] = np.frombuffer(raw, dtype=kind.dtype)
        return self.storages[key]


def read_checkpoint(path: str) -> Any:
    """The object a `torch.save` zip archive holds, tensors as numpy arrays (read-only parsing:
    see the module docstring). Errors name the file and what to do."""
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a PyTorch zip archive (torch.save since PyTorch 1.6). A "
                         "file in the legacy format must be re-saved with a current PyTorch "
                         "first, by someone who trusts it (loading it runs its pickle).")
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the archive, found {pickles}")
        prefix = pickles[0][: -len("data.pkl")]
        order = f"{prefix}byteorder"
        if order in archive.namelist() and archive.read(order).strip() != b"little":
            raise ValueError(f"{path}: big-endian tensors are not supported")
        with archive.open(pickles[0]) as f:
            return SafeUnpickler(f, archive, prefix).load()


def plain(obj: Any) -> Any:
    """Config objects as plain Python: omegaconf nodes (`_content` / `_val`), a Namespace's
    attributes, dicts and lists; other `Opaque` records as None."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if isinstance(obj, Opaque):
        state = obj.state
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = state[0] if isinstance(state[0], dict) else state[1]
        if isinstance(state, dict):
            if "_content" in state:
                return plain(state["_content"])
            if "_val" in state:
                return plain(state["_val"])
            return plain(state)
        if obj.kwargs:
            return plain(obj.kwargs)
        return None
    return obj


def state_dict(obj: Any, path: str, prefix: str = "") -> dict[str, np.ndarray]:
    """The flat {key: array} under `prefix` of a checkpoint object: a state dict itself, or
    one under "model" / "state_dict" (fairseq, Lightning)."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict (a mapping of names to tensors), "
                         f"found {type(obj).__name__}")
    out = {k[len(prefix):]: v for k, v in obj.items()
           if isinstance(v, np.ndarray) and str(k).startswith(prefix)}
    if not out:
        raise ValueError(f"{path}: no tensors{f' under {prefix!r}' if prefix else ''}")
    return out
