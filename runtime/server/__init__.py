"""``radon serve``'s HTTP server (FastAPI + uvicorn) over the edge runtime.

Never imported by ``import radon.runtime``: fastapi and uvicorn are the ``serve`` extra.
``create_app(generator)`` builds the app; ``radon.cli.serve`` runs it under uvicorn.
"""

from __future__ import annotations

from radon.runtime.server.app import create_app

__all__ = ["create_app"]
