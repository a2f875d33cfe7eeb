"""Read a PyTorch `torch.save` state dict (zip format) as numpy arrays, without torch and without running code.

The pickle inside a PyTorch checkpoint may name any importable callable. This reader resolves only the handful
of names a plain tensor dictionary needs (OrderedDict, the tensor and parameter rebuild functions, the storage
types) and refuses everything else, so an untrusted file cannot execute code.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np

_STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file asks to import something a tensor dictionary does not need."""


class _StorageType:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


def _rebuild_tensor(storage: np.ndarray, offset: int, size, stride, *_unused) -> np.ndarray:
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

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        raise UnsafeCheckpointError(
            f"refusing to load '{module}.{name}': a weights file should hold tensors only")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsafeCheckpointError(f"unsupported persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        if not isinstance(storage_type, _StorageType):
            raise UnsafeCheckpointError(f"unsupported storage type {storage_type!r}")
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}/data/{key}")
            dtype = storage_type.dtype.newbyteorder("<" if self._byteorder == "little" else ">")
            self._storages[key] = np.frombuffer(raw, dtype=dtype).astype(storage_type.dtype)
        return self._storages[key]


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """The (possibly nested) dictionary of numpy arrays stored by `torch.save` in `path`."""
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
        return _Unpickler(archive.read(pickles[0]), archive, prefix, byteorder).load()
