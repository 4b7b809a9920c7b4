import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"

# keep decoded-data caches of the whole test session out of the user's home
os.environ.setdefault("TUDUI_CACHE_DIR", tempfile.mkdtemp(prefix="tudui-test-cache-"))


@pytest.fixture(autouse=True)
def one_thread():
    """Test inputs are tiny: one thread is faster, and torch's spinning threads burn a shared 2-core machine."""
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def shared_dataset(name: str) -> Path:
    p = SHARED_DATASETS / name
    if not p.exists():
        pytest.skip(f"{p} is not available")
    return p


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """One short digits run shared by the end-to-end tests (training is the slow part)."""
    import tudui
    out = tmp_path_factory.mktemp("runs")
    return tudui.train("digits", epochs=2, out=str(out), name="d", progress=False, seed=0)
