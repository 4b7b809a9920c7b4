"""Property tests (hypothesis), bounded to run in seconds: random images through the preprocessing keep shape,
dtype and range; the memory and stream loaders give identical batches for random seeds, epochs and
augmentation settings; random config dictionaries parse or raise ConfigError, never anything else."""
import math
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from tudui.config import TrainConfig, config_fields, resolve
from tudui.data.images import pil_to_uint8
from tudui.data.pipeline import prepare
from tudui.data.preprocess import make_preprocess, preprocess_image
from tudui.errors import ConfigError
from test_loader import source_of

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MODES = {"1": np.bool_, "L": np.uint8, "P": np.uint8, "RGB": np.uint8, "RGBA": np.uint8, "LA": np.uint8,
         "CMYK": np.uint8, "I;16": np.uint16, "I": np.int32, "F": np.float32}


@st.composite
def images(draw):
    mode = draw(st.sampled_from(sorted(MODES)))
    w, h = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    bands = {"RGB": 3, "P": 3, "RGBA": 4, "CMYK": 4, "LA": 2}.get(mode, 1)
    if mode == "F":
        arr = rng.normal(0, draw(st.sampled_from([1.0, 300.0, 1e6])), (h, w)).astype(np.float32)
        im = Image.fromarray(arr)
    elif mode == "I":
        im = Image.fromarray(rng.integers(-70000, 70000, (h, w), dtype=np.int32))
    elif mode == "I;16":
        im = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    elif mode == "1":
        im = Image.fromarray(rng.integers(0, 2, (h, w), dtype=np.uint8) * 255).convert("1")
    else:
        arr = rng.integers(0, 256, (h, w, bands) if bands > 1 else (h, w), dtype=np.uint8)
        base = "RGB" if mode == "P" else mode
        im = Image.frombytes(base, (w, h), arr.tobytes())
        if mode == "P":
            im = im.convert("P", palette=Image.ADAPTIVE, colors=draw(st.integers(2, 256)))
            if draw(st.booleans()):
                im.info["transparency"] = 0
    return im


@FAST
@given(im=images(), channels=st.sampled_from([1, 3]), size=st.tuples(st.integers(1, 40), st.integers(1, 40)))
def test_preprocessing_keeps_shape_dtype_and_range(im, channels, size):
    x = pil_to_uint8(im, channels, size)
    assert x.shape == (channels, *size) and x.dtype == torch.uint8
    mean, std = [0.5] * channels, [0.25] * channels
    y = preprocess_image(im, make_preprocess(size, channels, mean, std))
    assert y.shape == (channels, *size) and y.dtype == torch.float32 and torch.isfinite(y).all()
    assert y.min() >= (0 - 0.5) / 0.25 - 1e-5 and y.max() <= (1 - 0.5) / 0.25 + 1e-5


_SRC = {}


def _source():
    if not _SRC:  # one small image source for every example (hypothesis examples share it)
        d = Path(tempfile.mkdtemp(prefix="tudui-prop-"))
        _SRC["src"], _SRC["dir"] = source_of(d, n_train=24, n_val=8), d
    return _SRC["src"], _SRC["dir"]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 31 - 1), epoch=st.integers(0, 50), augment=st.sampled_from(["none", "basic", "strong"]),
       cutout=st.integers(0, 6), translate=st.one_of(st.none(), st.integers(0, 4)), alt_flip=st.booleans(),
       batch_size=st.integers(1, 12), sampler=st.sampled_from(["shuffle", "balanced"]))
def test_memory_and_stream_paths_give_identical_batches(seed, epoch, augment, cutout, translate, alt_flip,
                                                         batch_size, sampler):
    src, d = _source()
    kw = dict(seed=seed, augment=augment, cutout=cutout, translate=translate, alt_flip=alt_flip,
              batch_size=batch_size, sampler=sampler, cache_dir=str(d / "cache"))
    mem = prepare(src, TrainConfig(loader="memory", **kw), "cpu")
    stream = prepare(src, TrainConfig(loader="stream", **kw), "cpu")
    stream.train.mean, stream.train.std = mem.train.mean, mem.train.std  # one normalization for both
    a, b = list(mem.train.iterate(epoch)), list(stream.train.iterate(epoch))
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert torch.equal(ya, yb) and torch.equal(xa, xb)


FIELDS = [f.name for f in config_fields()]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 6, 10 ** 6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["none", "true", "0.1", "3", "auto", "cpu", "1,2,3"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                      max_leaves=8)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=10))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, values, max_size=6))
def test_random_config_dicts_parse_or_raise_config_error(d):
    try:
        cfg = resolve(d)
    except ConfigError:
        return
    assert isinstance(cfg, TrainConfig)
    for k, v in cfg.to_dict().items():  # what parses is usable: finite numbers, no NaN
        if isinstance(v, float):
            assert math.isfinite(v), k
