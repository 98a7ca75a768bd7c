"""The bare reference: a Starlette endpoint that reads the body and answers 202, nothing else.

Served by uvicorn with the same event loop and HTTP parser as notirouter (uvloop, httptools)
and no access log, it is the ceiling of what any Python receiver on this stack can ingest:
``bench/compare.py`` states notirouter's durable ingest as a percentage of it.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def receive(request: Request) -> Response:
    """Read the whole body, answer 202."""
    await request.body()
    return Response(status_code=202)


app = Starlette(routes=[Route("/hooks/{token}", receive, methods=["POST"])])


def main() -> None:
    """Serve on 127.0.0.1:--port until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
