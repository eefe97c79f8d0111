"""The few HDF5 objects an export makes, through h5py's low-level API.

h5py's high-level ``create_group``/``create_dataset``/``attrs[...]`` cost about 0.9 ms per
exported channel (7 attributes, 4 datasets, 1 group), most of it Python bookkeeping: 90 s
for a collector of 100,000 channels. These helpers make the same objects (variable-length
UTF-8 string attributes, as h5py writes them) in about half the time.
"""

from __future__ import annotations

from typing import Any

import h5py
import numpy as np
from h5py import h5s, h5t

# the low-level modules h5py's type stubs leave out
h5a: Any = h5py.h5a
h5d: Any = h5py.h5d
h5g: Any = h5py.h5g
h5p: Any = h5py.h5p

_STRING = h5t.py_create(h5py.string_dtype(), logical=True)
_SCALAR = h5s.create(h5s.SCALAR)


def set_text(obj: Any, name: str, text: str) -> None:
    """A scalar UTF-8 string attribute on a low-level object id (``GroupID``/``DatasetID``)."""
    attr = h5a.create(obj, name.encode(), _STRING, _SCALAR)
    attr.write(np.array(text, dtype=h5py.string_dtype()))


def new_group(parent: Any, name: str) -> Any:
    """A new group under a low-level group id."""
    return h5g.create(parent, name.encode())


def new_dataset(
    parent: Any, name: str, shape: tuple[int, ...], dtype: np.dtype[Any], chunks: int | None = None
) -> Any:
    """A new numeric dataset (chunked along the first axis when ``chunks``)."""
    space = h5s.create_simple(shape, (h5s.UNLIMITED, *shape[1:]) if chunks else None)
    plist = None
    if chunks:
        plist = h5p.create(h5p.DATASET_CREATE)
        plist.set_chunk((chunks, *shape[1:]))
    return h5d.create(parent, name.encode(), h5t.py_create(dtype), space, dcpl=plist)


def write_rows(dataset: Any, first: int, rows: np.ndarray) -> None:
    """Write ``rows`` into ``dataset`` from row ``first`` on."""
    if not len(rows):
        return
    rows = np.ascontiguousarray(rows)
    file_space = dataset.get_space()
    start = (first, *(0 for _ in rows.shape[1:]))
    file_space.select_hyperslab(start, rows.shape)
    dataset.write(h5s.create_simple(rows.shape), file_space, rows)
