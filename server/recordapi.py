"""Recordings over HTTP, and the replay page.

POST   /api/sessions/{id}/recordings          {"input": false, "cols": 80, "rows": 24,
                                               "expires_in": s} -> 201 the recording, with
                                               its replay links (only here: their token is
                                               not kept); 429 or 507 past a disk quota
GET    /api/sessions/{id}/recordings          this session's recordings (by public id)
POST   /api/sessions/{id}/recordings/{rec}/stop
DELETE /api/sessions/{id}/recordings/{rec}    delete the recording and its file
POST   /api/sessions/{id}/markers             {"label": "..."}: a chapter in running recordings
GET    /r/{token}                             the replay page (asciinema-player); 410 once expired
GET    /r/{token}.cast                        the cast as recorded (asciicast v3; v2 if
                                               recorded before v3); `?format=v2` or
                                               `?format=v3` converts (server/castformat.py),
                                               `?download` saves it
GET    /r/{token}.monitor                     its monitor timeline (JSON lines beside the
                                               cast: server/monitortimeline.py); 404 when
                                               it has none
GET    /api/recordings/{token}                what the replay page shows about it
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from server.apierror import NO_STORE, error, needing, part
from server.castformat import FORMATS, convert, stored_version
from server.jsonbody import BadBody, is_int, read_object
from server.notice import notice
from server.quota import QuotaError
from server.recordings import Recording
from server.sessions.live import SessionError
from server.settings import Settings
from server.shareapi import client_ip
from server.shares import ShareError
from server.sharing import Sharing
from server.terminal import MAX_COLS_ROWS

CAST_TYPE = "application/x-asciicast"
TIMELINE_TYPE = "application/jsonl"


def _start_options(params: dict, retention_s: float) -> dict:
    """The start request's options; a recording expires at most `retention_s` after it
    starts (and by default then)."""
    record_input = params.get("input", False)
    if not isinstance(record_input, bool):
        raise BadBody('"input" must be true or false (record keystrokes too)')
    cols, rows = params.get("cols", 80), params.get("rows", 24)
    if not all(is_int(v) and 1 <= v <= MAX_COLS_ROWS for v in (cols, rows)):
        raise BadBody(f'"cols" and "rows" must be integers 1..{MAX_COLS_ROWS}')
    expires_in = params.get("expires_in", retention_s)
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int | float)
        or not 0 < expires_in <= retention_s
    ):
        raise BadBody(f'"expires_in" must be a number of seconds, 1 to {retention_s:.0f}')
    return {"record_input": record_input, "cols": cols, "rows": rows, "expires_in": expires_in}


def routes(settings: Settings) -> list[Route]:
    needs_hub = needing("hub", "the server is starting or stopping")

    def owned(hub: Sharing, request: Request) -> Recording | None:
        recording = hub.recordings.get(request.path_params["recording_id"])
        if recording is None or recording.session_id != request.path_params["session_id"]:
            return None
        return recording

    @needs_hub
    async def start(request: Request, hub: Sharing) -> Response:
        try:
            session = await hub.live(request.path_params["session_id"])
            if session is None:
                return error(404, "no such live session (it never existed, or it has ended)")
            params = await read_object(request, {"input", "cols", "rows", "expires_in"})
            options = _start_options(params, settings.recording_limits.retention_s)
            recording, token = await hub.recordings.start(session, client_ip(request), **options)
        except QuotaError as exc:
            wait = {"retry-after": f"{exc.retry_after:.0f}"} if exc.retry_after else None
            return error(exc.status, str(exc), wait)
        except (BadBody, ShareError, SessionError) as exc:
            return error(exc.status, str(exc))
        return JSONResponse(recording.info(token), 201, headers=NO_STORE)

    @needs_hub
    async def listing(request: Request, hub: Sharing) -> Response:
        session_id = request.path_params["session_id"]
        if not await hub.known(session_id):
            return error(404, "no such session")
        recordings = [r.info() for r in hub.recordings.of_session(session_id)]
        return JSONResponse({"recordings": recordings}, headers=NO_STORE)

    @needs_hub
    async def stop(request: Request, hub: Sharing) -> Response:
        recording = owned(hub, request)
        if recording is None:
            return error(404, "no such recording on this session")
        hub.recordings.stop(recording)
        return JSONResponse(recording.info(), headers=NO_STORE)

    @needs_hub
    async def delete(request: Request, hub: Sharing) -> Response:
        recording = owned(hub, request)
        if recording is None:
            return error(404, "no such recording on this session")
        try:
            await hub.recordings.delete(recording)
        except ShareError as exc:
            return error(exc.status, str(exc))
        return Response(status_code=204, headers=NO_STORE)

    @needs_hub
    async def mark(request: Request, hub: Sharing) -> Response:
        session_id = request.path_params["session_id"]
        try:
            if await hub.live(session_id) is None:
                return error(404, "no such live session (it never existed, or it has ended)")
            label = (await read_object(request, {"label"})).get("label", "")
            if not isinstance(label, str) or not label.strip():
                raise BadBody('"label" must be a non-empty string: the chapter\'s title')
        except (BadBody, SessionError) as exc:
            return error(exc.status, str(exc))
        marked = hub.recordings.mark(session_id, label.strip())
        if not marked:
            return error(409, "no recording of this session is running; start one first")
        return JSONResponse({"marked": marked}, headers=NO_STORE)

    def public(request: Request) -> tuple[Sharing, Recording] | Response:
        """The hub and the recording a replay link opens, or the page that says why not."""
        hub: Sharing | None = part(request, "hub")
        if hub is None:
            return notice("Starting", "The server is starting; try again.", 503)
        recording = hub.recordings.find(request.path_params["token"])
        if recording is None:
            return notice("No such recording", "Check the address.", 404)
        why = recording.gone()
        if why is not None:
            return notice("This recording is gone", why[0].upper() + why[1:] + ".", 410)
        return hub, recording

    async def page(request: Request) -> Response:
        found = public(request)
        if isinstance(found, Response):
            return found
        return FileResponse(
            settings.web_dir / "replay.html",
            media_type="text/html; charset=utf-8",
            headers=NO_STORE,
        )

    async def cast(request: Request) -> Response:
        formats = request.query_params.getlist("format")
        if len(formats) > 1 or (formats and formats[0] not in FORMATS):
            return notice(
                "Unknown format",
                "The format must be v2 (asciicast v2, for older tools) or v3 (asciicast v3), "
                "given once; leave it out for the cast as it was recorded.",
                400,
            )
        found = public(request)
        if isinstance(found, Response):
            return found
        hub, recording = found
        path = hub.recordings.path(recording)
        disposition = "attachment" if "download" in request.query_params else "inline"
        stored = stored_version(path)
        wanted = FORMATS[formats[0]] if formats else stored
        if wanted == stored:
            return FileResponse(
                path,
                media_type=CAST_TYPE,
                filename=f"capos-{recording.id}.cast",
                content_disposition_type=disposition,
                headers=NO_STORE,
            )
        name = f"capos-{recording.id}-v{wanted}.cast"
        return StreamingResponse(  # a sync iterator: Starlette reads it in a thread
            convert(path, wanted),
            media_type=CAST_TYPE,
            headers={**NO_STORE, "content-disposition": f'{disposition}; filename="{name}"'},
        )

    async def timeline(request: Request) -> Response:
        if request.query_params:
            return notice(
                "Unknown option",
                "The monitor timeline takes no options: it is served as it was recorded.",
                400,
            )
        found = public(request)
        if isinstance(found, Response):
            return found
        hub, recording = found
        path = hub.recordings.timeline(recording)
        if path is None:
            return notice(
                "No monitor timeline",
                "This recording has none: its session had no system monitor to record.",
                404,
            )
        # Read whole now: a running recording's timeline grows while it is sent, and a
        # file response would send more than the length it declared. It is at most
        # max_timeline_bytes (4 MiB); a line still being written is left for next time.
        data = await asyncio.to_thread(path.read_bytes)
        name = f"capos-{recording.id}.monitor.jsonl"
        return Response(
            data[: data.rfind(b"\n") + 1],
            media_type=TIMELINE_TYPE,
            headers={**NO_STORE, "content-disposition": f'inline; filename="{name}"'},
        )

    async def info(request: Request) -> Response:
        found = public(request)
        if isinstance(found, Response):
            return error(found.status_code, "no such recording, or it has expired")
        body = found[1].info()
        body.pop("input")
        return JSONResponse(body, headers=NO_STORE)

    return [
        Route("/api/sessions/{session_id}/recordings", start, methods=["POST"]),
        Route("/api/sessions/{session_id}/recordings", listing, methods=["GET"]),
        Route("/api/sessions/{session_id}/recordings/{recording_id}/stop", stop, methods=["POST"]),
        Route("/api/sessions/{session_id}/recordings/{recording_id}", delete, methods=["DELETE"]),
        Route("/api/sessions/{session_id}/markers", mark, methods=["POST"]),
        Route("/api/recordings/{token}", info, methods=["GET"]),
        Route("/r/{token}.cast", cast, methods=["GET", "HEAD"]),
        Route("/r/{token}.monitor", timeline, methods=["GET", "HEAD"]),
        Route("/r/{token}", page, methods=["GET", "HEAD"]),
    ]
