"""What the server takes from a client, checked before any real work:

- the body: over `max_bytes` is a 413, from Content-Length before reading anything, else as soon as the
  streamed bytes pass the limit (the body is never read whole first);
- the format: JPEG, PNG, WEBP, BMP, GIF or TIFF, identified from the data, else 415;
- the size: over `max_pixels` is a 413, read from the header without decoding the pixels (Pillow's
  decompression-bomb warning is an error too); a batch request's images share that limit;
- any decode failure is a 400. Every refusal is a ClientError that the app answers as JSON.
"""
from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from ..data.images import open_image, to_mode
from ..errors import DataError

# Pillow's JPEG opener also reads multi-picture JPEGs (as phones write them, format "MPO")
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_BOMB = (Image.DecompressionBombWarning, Image.DecompressionBombError)


class ClientError(Exception):
    """A request the server refuses: HTTP status and a one-line message for {"detail": ...}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def bombs_are_errors() -> None:
    """Make Pillow's DecompressionBombWarning an exception in this process (a filter, set once)."""
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)


def check_content_length(headers, max_bytes: int) -> None:
    value = headers.get("content-length")
    if value is None:
        return
    try:
        n = int(value)
    except ValueError:
        raise ClientError(400, f"bad Content-Length header: {value!r}") from None
    if n > max_bytes:
        raise ClientError(413, f"the upload is {n} bytes, over the server's limit of {max_bytes} bytes "
                               "(--max-bytes)")


async def limited(stream, max_bytes: int):
    """Pass the body's chunks through, stopping with a 413 as soon as more than max_bytes have come."""
    total = 0
    async for chunk in stream:
        total += len(chunk)
        if total > max_bytes:
            raise ClientError(413, f"the upload is over the server's limit of {max_bytes} bytes (--max-bytes)")
        yield chunk


async def read_uploads(request, max_bytes: int, max_files: int) -> list:
    """The request's images as [(name, bytes)]: every file of a multipart/form-data body, or the raw body
    (its name from ?name=, else "upload"). Size-checked while streaming."""
    check_content_length(request.headers, max_bytes)
    body = limited(request.stream(), max_bytes)
    ctype = request.headers.get("content-type", "")
    if ctype.lower().startswith("multipart/form-data"):
        parser = MultiPartParser(request.headers, body, max_files=max_files, max_fields=max_files)
        try:
            form = await parser.parse()
        except MultiPartException as e:
            raise ClientError(400, f"bad multipart upload: {e.message}") from None
        try:
            out = []
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    out.append((value.filename or key, await value.read()))
        finally:
            await form.close()
        if not out:
            raise ClientError(400, "the multipart upload has no file; send the image as a file field "
                                   "(curl -F file=@photo.jpg)")
        return out
    data = b"".join([chunk async for chunk in body])
    if not data:
        raise ClientError(400, "the request has no image; send it as a multipart file field or as the raw body")
    return [(request.query_params.get("name") or "upload", data)]


def image_pixels(data: bytes, name: str, max_pixels: int) -> int:
    """Width x height from the header alone (no pixel decoded), or a ClientError: 400 for an empty file, 415
    for a non-image or a format outside ALLOWED_FORMATS, 413 over max_pixels or Pillow's bomb limit."""
    if not data:
        raise ClientError(400, f"{name}: the file is empty")
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as head:
            width, height = head.size
    except UnidentifiedImageError:
        raise ClientError(415, f"{name} is not an image in a format the server takes "
                               f"({', '.join(ALLOWED_FORMATS)})") from None
    except _BOMB:
        raise ClientError(413, f"{name} has more pixels than Pillow's decompression-bomb limit "
                               f"({Image.MAX_IMAGE_PIXELS}) allows") from None
    except Exception as e:  # a header Pillow recognizes but cannot parse
        raise ClientError(400, f"cannot read image {name}: {e}") from None
    if width * height > max_pixels:
        raise ClientError(413, f"{name} is {width}x{height} = {width * height} pixels, over the server's limit "
                               f"of {max_pixels} (--max-pixels)")
    return width * height


def check_uploads(uploads: list, max_pixels: int) -> None:
    """Every upload's header (see image_pixels), and their pixels together within max_pixels: a batch request
    cannot make the server hold more decoded pixels than one largest image."""
    total = sum(image_pixels(data, name, max_pixels) for name, data in uploads)
    if total > max_pixels:
        raise ClientError(413, f"the {len(uploads)} images have {total} pixels together, over the server's limit "
                               f"of {max_pixels} per request (--max-pixels); send them in smaller batches")


def decode_upload(data: bytes, name: str, max_pixels: int, channels=None) -> Image.Image:
    """Bytes -> a decoded PIL image (EXIF orientation applied, converted to the model's channels), or a
    ClientError: the header checks of image_pixels, then 400 when the data cannot be decoded."""
    image_pixels(data, name, max_pixels)
    fh = io.BytesIO(data)
    fh.name = name
    try:
        im = open_image(fh)
        return to_mode(im, int(channels)) if channels else im
    except _BOMB:
        raise ClientError(413, f"{name} has more pixels than Pillow's decompression-bomb limit "
                               f"({Image.MAX_IMAGE_PIXELS}) allows") from None
    except DataError as e:
        raise ClientError(400, str(e)) from None
    except Exception as e:  # any other failure inside a decoder is still the file's fault
        raise ClientError(400, f"cannot decode image {name}: {type(e).__name__}: {e}") from None
