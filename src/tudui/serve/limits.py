"""The server's default limits (no FastAPI import here: the CLI's parser reads them)."""
MAX_BYTES = 10_000_000      # 10 MB per request body
MAX_PIXELS = 40_000_000     # 40 megapixels per image
MAX_BATCH = 32              # images per model call
BATCH_WAIT_MS = 5.0         # how long a batch waits for more requests
MAX_FILES = 64              # files per /predict/batch request
MAX_TOPK = 1000
