"""The dashboard (`/ui`), the interactive API docs (`/docs`, `/redoc`) and the JSON reads the
dashboard needs beyond the public routes (`/ui/api/...`).

Everything a browser loads is served from this package's `static/` folder: the single-page app
and the vendored third-party builds (see `static/vendor/VENDORED.md`). No page loads anything
from another host.
"""

from query_api.ui.routes import router

__all__ = ["router"]
