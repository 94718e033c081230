"""The tours, as JSON for the page: GET /api/tours and GET /api/tours/{name}.

Loaded and checked once when the app is made (server/tours.py), so a broken
tour file stops the server with its message instead of a visitor's panel.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.tours import Tour

_HEADERS = {"cache-control": "no-cache"}


def routes(tours: list[Tour]) -> list[Route]:
    by_name = {tour.name: tour for tour in tours}
    listing = [
        {"name": t.name, "title": t.title, "summary": t.summary, "steps": len(t.steps)}
        for t in tours
    ]

    async def index(request: Request) -> Response:
        return JSONResponse(listing, headers=_HEADERS)

    async def show(request: Request) -> Response:
        tour = by_name.get(request.path_params["name"])
        if tour is None:
            known = ", ".join(by_name)
            return JSONResponse({"error": f"no tour by that name; tours: {known}"}, 404)
        return JSONResponse(tour.as_json(), headers=_HEADERS)

    return [
        Route("/api/tours", index, methods=["GET"]),
        Route("/api/tours/{name}", show, methods=["GET"]),
    ]
