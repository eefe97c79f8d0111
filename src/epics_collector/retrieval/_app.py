"""The HTTP endpoints of the Archiver Appliance retrieval API, under ``/retrieval``.

``data/getData.raw`` (PB/HTTP) and ``data/getData.json`` stream one PV's samples in
[from, to], beginning with the newest one at or before ``from``; ``pv`` may be
``op_N(pv)`` (see :mod:`._operators`). ``data/getDataAtTime`` gives several PVs' values
at one instant; ``bpl/*`` list and search the PVs. Every request is checked against
the ``access.read`` policy for its peer; errors are 4xx with a one-line reason.
"""

from __future__ import annotations

import fnmatch
import json
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

from epics_collector.client import ClientError
from epics_collector.core import AccessPolicy, Operation
from epics_collector.retrieval._archive import (
    Archive,
    Recording,
    UnknownPvError,
    UnservedError,
    payload_type,
)
from epics_collector.retrieval._errors import RequestError
from epics_collector.retrieval._matching import MAX_REGEX, compile_regex, limit, names_from_body
from epics_collector.retrieval._operators import (
    FROM_SUMMARY,
    Operator,
    OperatorError,
    apply,
    bins,
    fill_bins,
    parse,
)
from epics_collector.retrieval._pb import PayloadType, PbWriter
from epics_collector.retrieval._samples import Samples, concat
from epics_collector.retrieval._times import TimeError, parse_time

MAX_BODY = 1 << 20  # bytes of a POST body (a list of PV names)
MAX_PVS_PER_REQUEST = 1000
#: Operators that pick samples, not compute with them: they take strings and waveforms.
ROW_PICKS = frozenset({"firstSample", "lastSample", "nth", "ncount"})


def _range(params: Any) -> tuple[tuple[int, int], tuple[int, int]]:
    try:
        end = parse_time(params["to"]) if params.get("to") else (int(time.time()), 0)
        start = parse_time(params["from"]) if params.get("from") else (end[0] - 3600, end[1])
    except TimeError as error:
        raise RequestError(str(error)) from None
    if start > end:
        raise RequestError(f"from ({params.get('from')}) is after to ({params.get('to')})")
    return start, end


def _seconds(stamp: tuple[int, int]) -> float:
    return stamp[0] + stamp[1] * 1e-9


class Retrieval:
    """What the endpoints need: the archive, the read policy and the sample bound."""

    def __init__(
        self, access: AccessPolicy, max_samples: int, archive: Archive | None = None
    ) -> None:
        self.access, self.max_samples = access, max_samples
        self._archive = archive

    @property
    def archive(self) -> Archive:
        """The archive (set once the service has started)."""
        if self._archive is None:
            raise RequestError("the service is starting: retry", 503)
        return self._archive

    @archive.setter
    def archive(self, archive: Archive) -> None:
        self._archive = archive

    def check_peer(self, request: Request) -> None:
        host = request.client.host if request.client else ""
        if not self.access.allows(Operation.READ, host):
            raise RequestError(f"{host or 'this host'} may not read this retrieval service", 403)

    async def rows(
        self, pv: str, start: tuple[int, int], end: tuple[int, int]
    ) -> AsyncIterator[Samples]:
        """Rows of ``pv`` from the newest at or before ``start`` to ``end``, by page."""
        async for part in self.archive.rows(pv, _seconds(start), _seconds(end)):
            stamps = part.stamps()
            keep = stamps <= end[0] * 1_000_000_000 + end[1]
            if keep.any():
                yield part.take(keep)

    async def prepare(
        self, text: str, start: tuple[int, int], end: tuple[int, int]
    ) -> tuple[str, Operator | None, Recording, dict[str, str], PayloadType, int]:
        """Check a request for one PV before any byte of the answer is sent."""
        try:
            pv, operator = parse(text)
            recordings = self.archive.recorded(pv)
        except OperatorError as error:
            raise RequestError(str(error)) from None
        except UnknownPvError as error:
            raise RequestError(str(error), 404) from None
        except UnservedError as error:
            raise RequestError(str(error), 422) from None
        try:
            total = await self.archive.count(pv, _seconds(start), _seconds(end))
        except ClientError as error:
            raise RequestError(f"{pv}: its collector cannot be read now: {error}", 503) from None
        try:  # an operator's answer is its bins, where its collector computes them
            binned = bins(operator, start[0], end[0]) if operator is not None else total
        except OperatorError as error:
            raise RequestError(str(error)) from None
        answer = binned if operator and by_collector(operator, recordings, total) else total
        if answer > self.max_samples:
            raise RequestError(
                f"{pv} has {total} samples in this range, more than this service sends or "
                f"holds for one answer ({self.max_samples}): ask for a shorter range or use "
                "an operator its collector computes (optimized_N, mean_N, min_N, max_N, "
                "std_N, variance_N, jitter_N)",
                413,
            )
        headers, native = self.archive.metadata(pv)
        reduced = sorted({r.reduced_in(start[0]) for r in recordings} - {""})
        if reduced:  # rows of the range were reduced by a retention policy: say so
            headers = {**headers, "reduced": ",".join(reduced)}
        kind = payload_type(recordings[0].kind, np.zeros(0), native)
        kind_of_rows = recordings[0].kind
        if operator is not None and kind_of_rows != "number" and operator.name not in ROW_PICKS:
            needs = "numbers" if kind_of_rows == "string" else "scalars"
            raise RequestError(f"{operator.name} needs {needs}; {pv} is a {kind_of_rows} channel")
        return pv, operator, recordings[0], headers, kind, total

    async def _by_collector(
        self, recording: Recording, operator: Operator, start: tuple[int, int], end: tuple[int, int]
    ) -> tuple[AsyncIterator[Samples], PayloadType, int]:
        """An operator computed from the collector's aligned ``minmax`` bins.

        One Query per partial bin and one per MAX_POINTS full ones: no raw row leaves
        the collector, so the answer's size is its bins, whatever the rows in range.
        """
        optimized = operator.name == "optimized"
        width = max(1, (end[0] - start[0]) // operator.n) if optimized else operator.n
        begin, finish = _seconds(start), _seconds(end)
        try:
            found = await self.archive.summaries(recording, begin, finish, width)
            before = await self.archive.before(recording, begin)
        except ClientError as error:
            raise RequestError(f"the collector cannot be read now: {error}", 503) from None
        if len(before) and before.time[0] < begin:  # none exactly at from: the value then
            value = float(before.value[0])
            found[start[0] // width - 1] = (
                [value, 0.0, value, value, 1.0],
                int(before.severity[0]),
            )
        results: dict[int, tuple[object, int]] = (
            dict(found.items())
            if optimized
            else {
                number: (FROM_SUMMARY[operator.name](summary), severity)
                for number, (summary, severity) in found.items()
            }
        )
        rows = fill_bins(
            results, start[0] // width, end[0] // width, width, fill=True, vector=optimized
        )

        async def once() -> AsyncIterator[Samples]:
            yield rows

        if optimized:
            return once(), PayloadType.WAVEFORM_DOUBLE, 5
        return once(), PayloadType.SCALAR_DOUBLE, 1

    async def samples(
        self,
        pv: str,
        operator: Operator | None,
        start: tuple[int, int],
        end: tuple[int, int],
        kind: PayloadType,
        total: int = 0,
    ) -> tuple[AsyncIterator[Samples], PayloadType, int]:
        """The rows to send (raw, streamed; or the operator's result) and their type.

        The statistics of one numeric recording (and ``optimized`` over more than N
        rows) are binned by the collector (see :func:`by_collector`): its rows are never
        sent to this service.
        """
        if operator is None:
            return self.rows(pv, start, end), kind, 1
        recordings = self.archive.recorded(pv)
        if by_collector(operator, recordings, total):
            return await self._by_collector(recordings[0], operator, start, end)
        parts = [part async for part in self.rows(pv, start, end)]
        rows = concat(parts) if parts else Samples.empty()
        first = start[0] * 1_000_000_000 + start[1]
        before = rows.take(rows.stamps() < first)
        result = apply(
            operator,
            rows.take(rows.stamps() >= first),
            before.take(slice(-1, None)),
            start[0],
            end[0],
            kind,
        )

        async def once() -> AsyncIterator[Samples]:
            yield result.rows

        return once(), result.kind, result.elements


@dataclass(frozen=True)
class Checked:
    """A PV of a request, checked: what its answer will be made of."""

    pv: str
    operator: Operator | None
    headers: dict[str, str]
    kind: PayloadType
    total: int  # rows in range
    start: tuple[int, int]
    end: tuple[int, int]


def by_collector(operator: Operator, recordings: list[Recording], total: int) -> bool:
    """Whether the collector computes ``operator`` (one numeric recording, a statistic)."""
    if len(recordings) != 1 or recordings[0].kind != "number":
        return False
    return operator.name in FROM_SUMMARY or (operator.name == "optimized" and total > operator.n)


def _cast(kind: PayloadType, values: np.ndarray) -> np.ndarray:
    if kind in (PayloadType.SCALAR_STRING, PayloadType.WAVEFORM_STRING):
        return values
    if kind.name.startswith("SCALAR") and kind not in (
        PayloadType.SCALAR_DOUBLE,
        PayloadType.SCALAR_FLOAT,
    ):
        clean = np.nan_to_num(np.asarray(values, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        return np.rint(clean).astype(np.int64)
    return values


def _json_values(kind: PayloadType, values: np.ndarray) -> list[Any]:
    """Values as JSON: a gap row (NaN) is null whatever the type; ints stay ints."""
    cast = _cast(kind, values)
    if values.dtype.kind != "f" or values.ndim != 1:
        return [_json_value(v) for v in cast]
    gaps = np.isnan(values)
    return [None if gap else _json_value(v) for gap, v in zip(gaps, cast, strict=True)]


def _json_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_json_value(v) for v in value.tolist()]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN: a gap row's value is null
    if isinstance(value, np.generic):
        return _json_value(value.item())
    return value


def create_app(
    retrieval: Retrieval,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> FastAPI:
    """The FastAPI application of ``retrieval`` (``lifespan`` starts and stops its archive)."""
    app = FastAPI(
        title="EPICS Collector retrieval", docs_url=None, redoc_url=None, lifespan=lifespan
    )

    @app.exception_handler(RequestError)
    async def _refused(request: Request, error: RequestError) -> Response:
        return PlainTextResponse(str(error) + "\n", status_code=error.status)

    async def _check(text: str, params: Any) -> Checked:
        """One PV of a request, checked before any byte of the answer is sent."""
        start, end = _range(params)
        pv, operator, _, headers, kind, total = await retrieval.prepare(text, start, end)
        return Checked(pv, operator, headers, kind, total, start, end)

    async def _rows(
        checked: Checked,
    ) -> tuple[str, PayloadType, AsyncIterator[Samples], dict[str, str], int]:
        """The rows of a checked PV (an operator the service computes: computed now)."""
        c = checked
        rows, kind, elements = await retrieval.samples(
            c.pv, c.operator, c.start, c.end, c.kind, c.total
        )
        return c.pv, kind, rows, c.headers, elements

    async def _pv(
        text: str, params: Any
    ) -> tuple[str, PayloadType, AsyncIterator[Samples], dict[str, str], int]:
        return await _rows(await _check(text, params))

    def _asked(request: Request) -> str:
        retrieval.check_peer(request)
        text = request.query_params.get("pv", "")
        if not text:
            raise RequestError("give the PV: ?pv=NAME (or ?pv=mean_600(NAME))")
        return text

    @app.get("/retrieval/data/getData.raw")
    async def get_raw(request: Request) -> Response:
        pv, kind, rows, headers, elements = await _pv(_asked(request), request.query_params)
        body = _encode_async(pv, kind, rows, headers, elements)
        return StreamingResponse(body, media_type="application/x-protobuf")

    @app.get("/retrieval/data/getData.json")
    async def get_json(request: Request) -> Response:
        pv, kind, rows, headers, _ = await _pv(_asked(request), request.query_params)

        async def body() -> AsyncIterator[bytes]:
            yield b"["
            async for piece in _json_pv(pv, kind, rows, headers):
                yield piece
            yield b"]\n"

        return StreamingResponse(body(), media_type="application/json")

    async def _many(request: Request, extension: str) -> Response:
        """``getDataForPVs``: several PVs' answers in one, each as ``getData`` gives it.

        Every PV is checked (known, its operator, its size) before the first byte is
        sent; the answers are then streamed one PV after the other. ``pp=op_N`` applies
        to each PV named without an operator of its own.
        """
        retrieval.check_peer(request)
        if request.method == "POST":
            body = await bounded_body(request)
            names = names_from_body(request.headers.get("content-type", ""), body)
        else:
            names = request.query_params.getlist("pv")
        if not names:
            raise RequestError("give the PVs: ?pv=A&pv=B (or POST a JSON list of names)")
        if len(names) > MAX_PVS_PER_REQUEST:
            raise RequestError(f"at most {MAX_PVS_PER_REQUEST} PVs per request", 413)
        operator = request.query_params.get("pp", "")
        if operator:
            names = [name if "(" in name else f"{operator}({name})" for name in names]
        checked = [await _check(name, request.query_params) for name in names]

        async def raw() -> AsyncIterator[bytes]:
            for k, prepared in enumerate(checked):  # (one PV's rows held at a time)
                pv, kind, rows, headers, elements = await _rows(prepared)
                async for piece in _encode_async(pv, kind, rows, headers, elements, k == 0):
                    yield piece

        async def json_() -> AsyncIterator[bytes]:
            yield b"["
            for k, prepared in enumerate(checked):
                pv, kind, rows, headers, _ = await _rows(prepared)
                yield b", " if k else b""
                async for piece in _json_pv(pv, kind, rows, headers):
                    yield piece
            yield b"]\n"

        if extension == "raw":
            return StreamingResponse(raw(), media_type="application/x-protobuf")
        return StreamingResponse(json_(), media_type="application/json")

    @app.get("/retrieval/data/getDataForPVs.{extension}")
    async def get_data_for_pvs(extension: str, request: Request) -> Response:
        if extension not in ("raw", "json"):
            raise RequestError(f"getDataForPVs.{extension}: use .raw or .json", 400)
        return await _many(request, extension)

    @app.post("/retrieval/data/getDataForPVs.{extension}")
    async def post_data_for_pvs(extension: str, request: Request) -> Response:
        return await get_data_for_pvs(extension, request)

    @app.post("/retrieval/data/getDataAtTime")
    async def get_data_at_time(request: Request) -> Response:
        retrieval.check_peer(request)
        at_text = request.query_params.get("at")
        try:
            at = parse_time(at_text) if at_text else (int(time.time()), 0)
        except TimeError as error:
            raise RequestError(str(error)) from None
        body = await bounded_body(request, MAX_BODY)
        try:
            names = json.loads(body or b"[]")
        except RecursionError:
            raise RequestError(
                "the body is nested too deep: a flat JSON list of PV names"
            ) from None
        except ValueError:
            raise RequestError("the body must be a JSON list of PV names") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise RequestError("the body must be a JSON list of PV names")
        if len(names) > MAX_PVS_PER_REQUEST:
            raise RequestError(f"at most {MAX_PVS_PER_REQUEST} PVs per request", 413)
        answer: dict[str, Any] = {}
        for name in names:
            try:
                retrieval.archive.recorded(name)
            except (UnknownPvError, UnservedError):
                continue
            async for part in retrieval.rows(name, at, at):
                _, native = retrieval.archive.metadata(name)
                kind = payload_type(retrieval.archive.recorded(name)[0].kind, part.value, native)
                k = len(part) - 1
                answer[name] = {
                    "secs": int(part.secs[k]),
                    "nanos": int(part.nanos[k]),
                    "val": _json_values(kind, part.value[k : k + 1])[0],
                    "severity": int(part.severity[k]),
                    "status": int(part.status[k]),
                }
                break
        return JSONResponse(answer)

    def _limit(text: str | None) -> int:
        most = limit(text, 500)
        return len(retrieval.archive.names()) if most < 0 else most

    def _matching(params: Any) -> list[str]:
        """The PV names a request selects: ``pv`` a glob (as the EAA takes it), else ``regex``."""
        names = retrieval.archive.names()
        glob = params.get("pv")
        if glob:
            if len(glob) > MAX_REGEX:
                raise RequestError(f"the pv glob is longer than {MAX_REGEX} characters")
            return [n for n in names if fnmatch.fnmatchcase(n, glob)]
        pattern = compile_regex(params.get("regex"))
        return [n for n in names if pattern.search(n)]

    @app.get("/retrieval/bpl/getAllPVs")
    async def get_all_pvs(request: Request) -> Response:
        retrieval.check_peer(request)
        found = _matching(request.query_params)
        return JSONResponse(found[: _limit(request.query_params.get("limit"))])

    @app.get("/retrieval/bpl/getMatchingPVs")
    async def get_matching_pvs(request: Request) -> Response:
        retrieval.check_peer(request)
        limit = _limit(request.query_params.get("limit"))
        return JSONResponse(_matching(request.query_params)[:limit])

    @app.get("/retrieval/bpl/searchForPVsRegex")
    async def search_for_pvs_regex(request: Request) -> Response:
        retrieval.check_peer(request)
        pattern = compile_regex(request.query_params.get("regex"))
        found = [n for n in retrieval.archive.names() if pattern.search(n)]
        return PlainTextResponse("".join(f"{n}\n" for n in found))

    @app.get("/retrieval/bpl/getPVStatus")
    async def get_pv_status(request: Request) -> Response:
        retrieval.check_peer(request)
        text = request.query_params.get("pv", "")
        names = [n for n in text.split(",") if n][:MAX_PVS_PER_REQUEST]
        answer = []
        for name in names:
            recordings = retrieval.archive.recordings.get(name, [])
            answer.append(
                {
                    "pvName": name,
                    "status": retrieval.archive.status(name),
                    "collectors": [
                        f"{r.collector}{r.alias}" + (f" ({r.recording})" if r.recording else "")
                        for r in recordings
                    ],
                }
            )
        return JSONResponse(answer)

    return app


async def bounded_body(request: Request, most: int = MAX_BODY) -> bytes:
    """A request's body, refused (413) past ``most`` bytes as it is read, not after.

    A Content-Length over that is refused before a byte of the body is read.
    """
    length = request.headers.get("content-length", "")
    if length and (not length.isdigit() or int(length) > most):
        raise RequestError(f"the body is over {most} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > most:
            raise RequestError(f"the body is over {most} bytes", 413)
    return bytes(body)


async def _json_pv(
    pv: str, kind: PayloadType, rows: AsyncIterator[Samples], headers: dict[str, str]
) -> AsyncIterator[bytes]:
    """One PV's answer in JSON: ``{"meta": {...}, "data": [...]}``, page by page."""
    meta = {"name": pv, **{k: v for k, v in headers.items() if k in ("EGU", "PREC", "reduced")}}
    yield b'{"meta": ' + json.dumps(meta).encode() + b', "data": ['
    first = True
    async for part in rows:
        values = _json_values(kind, part.value)
        items = [
            json.dumps(
                {
                    "secs": int(part.secs[k]),
                    "nanos": int(part.nanos[k]),
                    "val": values[k],
                    "severity": int(part.severity[k]),
                    "status": int(part.status[k]),
                }
            )
            for k in range(len(part))
        ]
        if items:
            yield (b"" if first else b", ") + ", ".join(items).encode()
            first = False
    yield b"]}"


async def _encode_async(
    pv: str,
    kind: PayloadType,
    rows: AsyncIterator[Samples],
    headers: dict[str, str],
    elements: int,
    first: bool = True,
) -> AsyncIterator[bytes]:
    """PB/HTTP of an async stream of rows, one page at a time (``first`` PV of the answer)."""
    writer = PbWriter(pv, kind, headers, elements, first)
    async for part in rows:
        cast = Samples(part.secs, part.nanos, _cast(kind, part.value), part.severity, part.status)
        for chunk in writer.write(cast):
            yield chunk
    for chunk in writer.finish():
        yield chunk
