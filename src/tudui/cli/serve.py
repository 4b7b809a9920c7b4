from __future__ import annotations

from .common import add_device, add_engine, add_load_flags


def add_parser(sub, name):
    # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..serve.limits import BATCH_WAIT_MS, MAX_BATCH, MAX_BYTES, MAX_FILES, MAX_PIXELS
    p = sub.add_parser(name, help="serve a model over HTTP, with a page to try it",
                       description="An HTTP API (POST /predict, POST /predict/batch, GET /classes, GET /health, "
                                   "docs at /docs) and a page at / to classify an image. Concurrent requests "
                                   "are micro-batched. Needs the serve extra: pip install 'tudui[serve]'.")
    p.add_argument("checkpoint", help="a tudui checkpoint (.pt), a run folder, or a file made by `tudui export` (.onnx, TorchScript)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--token", default=None,
                   help="require 'Authorization: Bearer TOKEN' on every request but /health "
                        "(default: the TUDUI_TOKEN environment variable; none when unset)")
    p.add_argument("--max-bytes", type=int, default=MAX_BYTES,
                   help=f"largest request body in bytes; larger gets 413 (default {MAX_BYTES})")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                   help=f"largest image in pixels (width x height), also the most for all images of a batch request; "
                        f"more gets 413 (default {MAX_PIXELS})")
    p.add_argument("--max-batch", type=int, default=MAX_BATCH,
                   help=f"most images per model call; 1 turns micro-batching off (default {MAX_BATCH})")
    p.add_argument("--batch-wait-ms", type=float, default=BATCH_WAIT_MS,
                   help=f"how long a batch waits for more requests, in ms (default {BATCH_WAIT_MS:g})")
    p.add_argument("--max-files", type=int, default=MAX_FILES,
                   help=f"most files in one /predict/batch request (default {MAX_FILES})")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads for the model (default: the machine's cores, at most 4)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level; 'warning' drops the line per request (default info)")
    add_engine(p)
    add_device(p)
    add_load_flags(p)
    return p


def run(args):  # import-time cost: a command loads its code only when it runs (`tudui --help` stays fast)
    from ..api import serve
    serve(args.checkpoint, host=args.host, port=args.port, token=args.token, max_bytes=args.max_bytes,
          max_pixels=args.max_pixels, max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms,
          max_files=args.max_files, threads=args.threads, device=args.device,
          log_level=args.log_level, verify=args.verify, unsafe_load=args.unsafe_load, engine=args.engine)
    return 0
