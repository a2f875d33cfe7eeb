"""Read a PyTorch `torch.save` checkpoint (zip format) as numpy arrays, without torch and without running code.

The pickle inside a PyTorch checkpoint may name any importable callable. This reader imports nothing the file
names: it resolves only the handful of names a tensor dictionary needs (OrderedDict, the tensor and parameter
rebuild functions, the storage types). Every other global — `argparse.Namespace` in timm's training checkpoints,
`torch.device`, `os.system` in a malicious file — becomes an inert `Skipped` placeholder: calling it, building
it or setting its state records nothing and runs nothing. Entries nobody uses (an optimizer's settings, the
training arguments) are therefore read past; a loader that finds a `Skipped` where it needs a tensor refuses the
file with `UnsafeCheckpointError` (see `tensor_dict`).
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
    "ComplexFloatStorage": np.complex64, "ComplexDoubleStorage": np.complex128,
}


class UnsafeCheckpointError(pickle.UnpicklingError, ValueError):
    """The file needs something other than plain tensors where the weights are."""


class Skipped:
    """An object of a class this reader does not allow, left unbuilt: the class was never imported, nothing of it
    ran. `origin` names it ('argparse.Namespace'). Subclasses are made per name by `_skipped_class`."""

    origin = "?"

    def __new__(cls, *_args, **_kwargs):
        return object.__new__(cls)

    def __init__(self, *_args, **_kwargs):
        pass

    def __call__(self, *_args, **_kwargs):  # e.g. a pickled bound method: getattr(obj, name)(...)
        return type(self)()

    def __setstate__(self, _state):
        pass

    def __setitem__(self, _key, _value):
        pass

    def append(self, _value):
        pass

    def extend(self, _values):
        pass

    def __repr__(self) -> str:
        return f"<skipped {self.origin}>"


def _skipped_class(origin: str) -> type[Skipped]:
    """A placeholder class for the global named `origin` (a type, so that pickle's NEWOBJ accepts it)."""
    return type("Skipped", (Skipped,), {"origin": origin, "__slots__": ()})


def skipped_origin(value: Any) -> str | None:
    """The global a placeholder stands for ('argparse.Namespace'), or None for anything that was really read."""
    if isinstance(value, Skipped) or (isinstance(value, type) and issubclass(value, Skipped)):
        return value.origin
    return None


class _StorageType:
    """torch.FloatStorage and the like: only the dtype, which the pickle cannot change (BUILD is refused)."""

    __slots__ = ("dtype",)

    def __init__(self, dtype):
        object.__setattr__(self, "dtype", np.dtype(dtype))

    def __setattr__(self, *_):
        raise UnsafeCheckpointError("the pickle tries to modify a storage type")

    def __setstate__(self, _state):
        raise UnsafeCheckpointError("the pickle tries to modify a storage type")


def _rebuild_tensor(storage, offset, size, stride, *_unused):
    if isinstance(storage, Skipped):  # a storage of a type this reader does not know, left unread
        return storage
    if not isinstance(storage, np.ndarray):
        raise UnsafeCheckpointError(f"malformed tensor: its storage is a {type(storage).__name__}")
    if not (isinstance(offset, int) and all(isinstance(n, int) and n >= 0 for n in (*size, *stride))
            and len(size) == len(stride) and 0 <= offset):
        raise UnsafeCheckpointError(f"malformed tensor (offset {offset!r}, size {size!r}, stride {stride!r})")
    if any(n == 0 for n in size):
        return np.zeros(tuple(size), storage.dtype)
    last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if last >= len(storage):  # a view past its storage would read memory that is not the file's
        raise UnsafeCheckpointError(f"tensor of size {tuple(size)} reaches element {last} of a storage of "
                                    f"{len(storage)} elements")
    if not size:
        return storage[offset:offset + 1].reshape(()).copy()
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=tuple(size),
                                           strides=tuple(s * storage.itemsize for s in stride), writeable=False)
    return np.array(view)


def _rebuild_parameter(data, *_unused):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, byteorder: str):
        super().__init__(io.BytesIO(data))
        self._archive, self._prefix, self._byteorder = archive, prefix, byteorder
        self._storages: dict[str, np.ndarray] = {}
        self._skipped: dict[str, type[Skipped]] = {}

    def find_class(self, module: str, name: str):  # never imports: allowed names or an inert placeholder
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        origin = f"{module}.{name}"
        if origin not in self._skipped:
            self._skipped[origin] = _skipped_class(origin)
        return self._skipped[origin]

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) >= 3 and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"unsupported persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if skipped_origin(storage_type) is not None:  # a storage type this reader does not know: left unread
            return storage_type()
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"unsupported storage type {storage_type!r}")
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}/data/{key}")
            dtype = storage_type.dtype.newbyteorder("<" if self._byteorder == "little" else ">")
            self._storages[key] = np.frombuffer(raw, dtype=dtype).astype(storage_type.dtype)
        return self._storages[key]


def read_state_dict(path: str | Path) -> Any:
    """What `torch.save` stored in `path` (usually a nested dict), tensors as numpy arrays and every object of a
    class that is not allowed as a `Skipped` placeholder (never imported, never run)."""
    path = Path(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a PyTorch zip checkpoint (torch >= 1.6 format) nor a .safetensors file; "
                         "re-save it with torch.save or safetensors")
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise ValueError(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
        prefix = pickles[0][: -len("/data.pkl")]
        names = set(archive.namelist())
        byteorder = archive.read(prefix + "/byteorder").decode().strip() if prefix + "/byteorder" in names else "little"
        try:
            return _Unpickler(archive.read(pickles[0]), archive, prefix, byteorder).load()
        except UnsafeCheckpointError as error:
            raise UnsafeCheckpointError(f"{path}: {error}") from None
        except (pickle.UnpicklingError, EOFError, KeyError, TypeError, AttributeError, IndexError) as error:
            raise ValueError(f"{path}: unreadable checkpoint pickle ({type(error).__name__}: {error})") from None


def tensor_dict(value: Any, what: str) -> dict[str, np.ndarray]:
    """`value` as {name: array}. A skipped object where a tensor belongs raises UnsafeCheckpointError naming its class
    ('builtins.print'); any other non-tensor entry, ValueError."""
    origin = skipped_origin(value)
    if origin is not None:
        raise UnsafeCheckpointError(f"{what} is a pickled '{origin}' object, not a dictionary of tensors (refused: "
                                    "loading it would run its code); save model.state_dict() instead")
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} is a {type(value).__name__}, not a dictionary of tensors")
    for key, item in value.items():
        origin = skipped_origin(item)
        if origin is not None:
            raise UnsafeCheckpointError(f"{what}: key {key!r} is a pickled '{origin}' object where a tensor "
                                        "belongs (refused: loading it would run its code)")
        if not isinstance(key, str) or not isinstance(item, np.ndarray):
            raise ValueError(f"{what}: key {key!r} is a {type(item).__name__}, not a tensor")
    return dict(value)
