"""The HTTP API and the page, as a FastAPI app around any predictor (see serve/model.py).

    POST /predict          one image (multipart file field, or the raw bytes), ?topk=K
                           -> {"path": NAME, "topk": [{"label", "index", "prob"}, ...]}: `tudui predict --json`'s
                           entry for that image, NAME being the upload's file name
    POST /predict/batch    several files in one multipart body -> a list of such entries, in upload order
    GET  /classes          the class names in index order, and the labels answers carry (--class-names)
    GET  /health           liveness (never needs the token)
    GET  /                 the page (choose, drop or paste an image; the top-k as bars)
    GET  /docs             OpenAPI docs (/openapi.json), their scripts served locally (/docs-static/)
"""
from __future__ import annotations

import secrets
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from ..version import __version__
from .batcher import MicroBatcher
from .guards import ClientError, bombs_are_errors, check_uploads, decode_upload, read_uploads
from .limits import BATCH_WAIT_MS, MAX_BATCH, MAX_BYTES, MAX_FILES, MAX_PIXELS, MAX_TOPK
from .model import model_name


# paths that never need the token: liveness, and the page's static shell (HTML/JS/CSS, no model data). A
# browser cannot send a bearer header when it opens a URL, so the page asks for the token and sends it
# with every API call it makes.
OPEN_PATHS = ("/health", "/", "/favicon.ico")
OPEN_PREFIXES = ("/static/",)

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "file": {"type": "string", "format": "binary"}}, "required": ["file"]}},
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {"type": "object", "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}}}, "required": ["files"]}}},
    }
}
_ERRORS = {code: {"description": text, "content": {"application/json": {"example": {"detail": text}}}}
           for code, text in ((400, "the image cannot be decoded, or the upload is malformed"),
                              (401, "missing or wrong bearer token"),
                              (413, "the body is over --max-bytes, or the image over --max-pixels"),
                              (415, "not an image in JPEG, PNG, WEBP, BMP, GIF or TIFF"))}


class TokenGuard:
    """ASGI middleware: every HTTP request outside OPEN_PATHS needs `Authorization: Bearer <token>`."""

    def __init__(self, app, token: str):
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope.get("path", "")
            if path not in OPEN_PATHS and not path.startswith(OPEN_PREFIXES):
                given = dict(scope.get("headers") or []).get(b"authorization", b"")
                if not secrets.compare_digest(given, self.expected):
                    response = JSONResponse({"detail": "this server needs a token: send the header "
                                                       "'Authorization: Bearer <token>'"}, status_code=401,
                                            headers={"WWW-Authenticate": "Bearer"})
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def create_app(model, *, token: str | None = None, max_bytes: int = MAX_BYTES, max_pixels: int = MAX_PIXELS,
               max_batch: int = MAX_BATCH, batch_wait_ms: float = BATCH_WAIT_MS, max_files: int = MAX_FILES,
               default_topk: int = 3) -> FastAPI:
    """A FastAPI app serving `model` (anything with .classes, .preprocess and .predict_images). Client
    mistakes get 4xx JSON answers ({"detail": ...}), never a 500."""
    for name, value in (("max_bytes", max_bytes), ("max_pixels", max_pixels), ("max_files", max_files)):
        if int(value) < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    bombs_are_errors()
    batcher = MicroBatcher(model.predict_images, max_batch=max_batch, wait_ms=batch_wait_ms)
    classes = list(model.classes)
    pre = getattr(model, "preprocess", None)
    channels = pre.get("channels") if isinstance(pre, dict) else None  # decode straight to the model's mode

    @asynccontextmanager
    async def lifespan(app):
        yield
        await batcher.close()

    # /docs and /redoc with Swagger UI's and ReDoc's scripts served from the fastapi-offline package, not a CDN:
    # the page works offline
    app = FastAPIOffline(title="tudui", version=__version__, lifespan=lifespan, static_url="/docs-static",
                  description=f"Image classification with a tudui model ({model_name(model)}, "
                              f"{len(classes)} classes).")
    app.state.model = model
    app.state.batcher = batcher
    app.state.limits = {"max_bytes": int(max_bytes), "max_pixels": int(max_pixels), "max_batch": int(max_batch),
                        "batch_wait_ms": float(batch_wait_ms), "max_files": int(max_files)}

    @app.exception_handler(ClientError)
    async def client_error(request: Request, exc: ClientError):
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    async def decode(uploads: list) -> list:
        # headers first (all of them, cheap), then decoding, in the thread pool beside the model thread
        await run_in_threadpool(check_uploads, uploads, max_pixels)
        return [await run_in_threadpool(decode_upload, data, name, max_pixels, channels) for name, data in uploads]

    async def classify(uploads: list, images: list, topk: int) -> list:
        """-> [{'path', 'topk'}] as plain JSON types (answered as JSONResponse, skipping FastAPI's encoder)."""
        try:
            preds = await batcher.predict(images, topk)
        except ClientError:
            raise
        except Exception as e:  # the model refused an image that decoded: still this input's doing
            raise ClientError(400, f"cannot classify the image: {type(e).__name__}: {e}") from None
        rows = [{"path": name, "topk": p} for (name, _), p in zip(uploads, preds)]
        if hasattr(model, "input_note"):  # an image far outside the training images' brightness: say so
            for row, image in zip(rows, images):
                note = await run_in_threadpool(model.input_note, image)
                if note:
                    row["note"] = note
        return rows

    topk_query = Query(default_topk, ge=1, le=MAX_TOPK,
                       description="how many classes to return (more than the model has returns them all)")

    @app.post("/predict", openapi_extra=_UPLOAD_BODY, responses=_ERRORS,
              summary="Classify one image (multipart file or raw bytes)")
    async def predict(request: Request, topk: int = topk_query,
                      name: str | None = Query(None, description="the path to report for a raw-body upload")):
        with batcher.arriving():
            uploads = await read_uploads(request, max_bytes, max_files=1)
            images = await decode(uploads)
        return JSONResponse((await classify(uploads, images, topk))[0])

    @app.post("/predict/batch", openapi_extra=_BATCH_BODY, responses=_ERRORS,
              summary="Classify several images (multipart, one file field each)")
    async def predict_batch(request: Request, topk: int = topk_query):
        with batcher.arriving():
            uploads = await read_uploads(request, max_bytes, max_files=max_files)
            images = await decode(uploads)
        return JSONResponse(await classify(uploads, images, topk))

    @app.get("/classes", summary="The class names in index order")
    async def get_classes():
        return {"classes": classes, "model": model_name(model), "labels": list(getattr(model, "labels", classes))}

    @app.get("/health", summary="Liveness; needs no token")
    async def health():
        return {"status": "ok"}

    static = resources.files("tudui.serve") / "static"

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(str(static / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    if token:
        app.add_middleware(TokenGuard, token=token)
    return app
