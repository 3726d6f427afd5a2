"""The web dashboard: server-rendered pages over kb's services, at `/dashboard` (see routes.py)."""

from .routes import install

__all__ = ["install"]
