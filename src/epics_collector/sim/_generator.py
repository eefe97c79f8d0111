"""Fills the sim IOC's array records from a thread, through the EPICS database API."""

from __future__ import annotations

import ctypes
import threading

import numpy as np

DBR_USHORT = 4
DBR_DOUBLE = 10
_DBADDR_SIZE = 512  # larger than struct dbAddr on every supported platform


class _Record:
    """A record field we put arrays into with ``dbPutField`` (processes the record)."""

    def __init__(self, db_core: ctypes.CDLL, name: str) -> None:
        self._put = db_core.dbPutField
        self._put.argtypes = [ctypes.c_void_p, ctypes.c_short, ctypes.c_void_p, ctypes.c_long]
        self._addr = ctypes.create_string_buffer(_DBADDR_SIZE)
        if db_core.dbNameToAddr(name.encode(), self._addr):
            raise LookupError(f"no record {name}")

    def put(self, dbr_type: int, data: np.ndarray) -> None:
        data = np.ascontiguousarray(data)
        self._put(self._addr, dbr_type, data.ctypes.data, data.size)


class ArrayGenerator:
    """10 Hz: a 1000-point noisy sine and an image with a spot moving on a circle."""

    def __init__(self, db_core: ctypes.CDLL, prefix: str, width: int, height: int) -> None:
        self.width, self.height = width, height
        self._waveform = _Record(db_core, f"{prefix}Waveform")
        self._image = _Record(db_core, f"{prefix}Image:ArrayData")
        self._spot = (
            _Record(db_core, f"{prefix}Image:SpotX"),
            _Record(db_core, f"{prefix}Image:SpotY"),
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sim-arrays", daemon=True)
        self._rng = np.random.default_rng()
        rows, cols = np.mgrid[0:height, 0:width]
        self._rows, self._cols = rows.astype(np.float64), cols.astype(np.float64)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        self._thread.join()

    def step(self, tick: int) -> None:
        """Compute and put one update of every array record."""
        phase = tick * 0.1
        x = np.linspace(0.0, 4.0 * np.pi, 1000)
        wave = np.sin(x + phase) + self._rng.normal(0.0, 0.05, x.size)
        self._waveform.put(DBR_DOUBLE, wave)
        cx = self.width / 2 + self.width / 4 * np.cos(phase / 5)
        cy = self.height / 2 + self.height / 4 * np.sin(phase / 5)
        spot = 1000 * np.exp(-((self._cols - cx) ** 2 + (self._rows - cy) ** 2) / (2 * 4.0**2))
        image = spot + self._rng.poisson(20, spot.shape)
        self._image.put(DBR_USHORT, image.astype(np.uint16))
        self._spot[0].put(DBR_DOUBLE, np.array([cx]))
        self._spot[1].put(DBR_DOUBLE, np.array([cy]))

    def _run(self) -> None:
        tick = 0
        while not self._stop.wait(0.1):
            self.step(tick)
            tick += 1
