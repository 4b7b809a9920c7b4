"""The HTTP API through FastAPI's test client: every route, every guard, and never a 500 for client input."""
from __future__ import annotations

import asyncio
import json
import os

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("multipart")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

import tudui  # noqa: E402
from tudui.cli import main as cli_main  # noqa: E402
from tudui.errors import TuduiError  # noqa: E402
from tudui.serve.app import create_app  # noqa: E402
from tudui.serve.batcher import MicroBatcher  # noqa: E402
from tudui.serve.guards import ClientError, limited  # noqa: E402
from tudui.serve.model import open_model  # noqa: E402

from serve_helpers import digit_image, encode, png_header_only, same_answer  # noqa: E402

STATIC = os.path.join(os.path.dirname(tudui.__file__), "serve", "static")


@pytest.fixture(scope="module")
def model(digits_run):
    return open_model(digits_run.best_path)


@pytest.fixture(scope="module")
def client(model):
    with TestClient(create_app(model), raise_server_exceptions=False) as c:
        yield c


def files_of(*items):
    return [("file" if len(items) == 1 else "files", (name, data, "application/octet-stream")) for name, data in items]


def cli_predict_json(capsys, ckpt, paths, topk):
    capsys.readouterr()
    assert cli_main(["predict", ckpt, *paths, "--json", "--topk", str(topk)]) == 0
    return json.loads(capsys.readouterr().out)


def test_predict_equals_cli_predict_json(client, digits_run, tmp_path, capsys):
    """POST /predict answers exactly `tudui predict --json`'s entry for the image (path = the file name)."""
    img, _ = digit_image(5)
    path = str(tmp_path / "five.png")
    img.save(path)
    for topk in (1, 3, 10):
        expected = cli_predict_json(capsys, digits_run.best_path, [path], topk)[0]
        with open(path, "rb") as fh:
            r = client.post(f"/predict?topk={topk}", files={"file": (path, fh, "image/png")})
        assert r.status_code == 200, r.text
        assert r.json() == expected


def test_predict_raw_body_and_default_topk(client, digits_run, tmp_path, capsys):
    img, _ = digit_image(7)
    data = encode(img, "PNG")
    (tmp_path / "raw.png").write_bytes(data)
    expected = cli_predict_json(capsys, digits_run.best_path, [str(tmp_path / "raw.png")], 3)[0]
    r = client.post("/predict", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 200, r.text
    assert r.json() == dict(expected, path="upload")
    r = client.post("/predict?name=mine.png", content=data, headers={"content-type": "application/octet-stream"})
    assert r.json() == dict(expected, path="mine.png")  # default top-k is the CLI's (3)


def test_predict_batch_equals_cli(client, digits_run, tmp_path, capsys):
    paths = []
    for i in range(4):
        img, _ = digit_image(i)
        paths.append(str(tmp_path / f"d{i}.png"))
        img.save(paths[-1])
    expected = cli_predict_json(capsys, digits_run.best_path, paths, 2)
    r = client.post("/predict/batch?topk=2",
                    files=[("files", (p, open(p, "rb").read(), "image/png")) for p in paths])
    assert r.status_code == 200, r.text
    assert same_answer(r.json(), expected)
    assert [e["path"] for e in r.json()] == paths


def test_classes_health_docs_page(client, model):
    assert client.get("/classes").json() == {"classes": model.classes, "model": "tudui", "labels": model.classes}
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/predict/batch", "/classes", "/health"} <= set(spec["paths"])
    assert "multipart/form-data" in spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for asset in ("static/app.js", "static/style.css"):
        assert asset in page.text
        assert client.get("/" + asset).status_code == 200


def test_docs_page_works_offline(client):
    """/docs and /redoc load every script and stylesheet from this server, none from a CDN (issue 22)."""
    import re
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
        urls += re.findall(r"""url: ?["']([^"']+)["']""", html) + re.findall(r"""spec-url=["']([^"']+)["']""", html)
        assets = [u for u in urls if u.endswith((".js", ".css", ".png"))]
        assert assets, html[:500]
        for u in urls:
            assert not u.startswith(("http:", "https:", "//")), f"{page} loads {u} from outside"
        for u in assets:
            r = client.get(u)
            assert r.status_code == 200 and len(r.content) > 1000, u


def test_page_works_offline():
    """No external script, style, font or image: nothing on the page names another host."""
    for name in os.listdir(STATIC):
        text = open(os.path.join(STATIC, name), encoding="utf-8").read()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text, name
        assert "@import" not in text and "@font-face" not in text, name


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_every_allowed_format(client, fmt):
    img, _ = digit_image(2)
    im = img.convert("RGB") if fmt == "JPEG" else img
    r = client.post("/predict", files=files_of((f"x.{fmt.lower()}", encode(im.resize((32, 32)), fmt))))
    assert r.status_code == 200, (fmt, r.text)
    assert len(r.json()["topk"]) == 3


def test_token_guards_everything_but_health_and_page(model):
    app = create_app(model, token="s3cret")
    png = encode(digit_image(0)[0], "PNG")
    with TestClient(app, raise_server_exceptions=False) as c:
        for method, url, kw in (("post", "/predict", {"files": files_of(("a.png", png))}),
                                ("post", "/predict/batch", {"files": files_of(("a.png", png), ("b.png", png))}),
                                ("get", "/classes", {}), ("get", "/docs", {}), ("get", "/openapi.json", {})):
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                r = getattr(c, method)(url, headers=headers, **kw)
                assert r.status_code == 401, (url, headers)
                assert r.headers["www-authenticate"] == "Bearer" and "token" in r.json()["detail"]
            r = getattr(c, method)(url, headers={"Authorization": "Bearer s3cret"}, **kw)
            assert r.status_code == 200, url
        assert c.get("/health").status_code == 200
        assert c.get("/").status_code == 200 and c.get("/static/app.js").status_code == 200


def test_413_by_bytes(model):
    png = encode(digit_image(0)[0].resize((64, 64)), "PNG")
    with TestClient(create_app(model, max_bytes=len(png) // 2), raise_server_exceptions=False) as c:
        r = c.post("/predict", content=png, headers={"content-type": "image/png"})  # Content-Length
        assert r.status_code == 413 and "--max-bytes" in r.json()["detail"]
        r = c.post("/predict", files=files_of(("a.png", png)))
        assert r.status_code == 413
        chunks = (png[i:i + 100] for i in range(0, len(png), 100))  # chunked: no Content-Length
        r = c.post("/predict", content=chunks, headers={"content-type": "image/png"})
        assert r.status_code == 413 and "--max-bytes" in r.json()["detail"]
        small = encode(digit_image(0)[0], "PNG")
        assert len(small) < len(png) // 2
        assert c.post("/predict", content=small).status_code == 200  # and it keeps serving


def test_size_limit_stops_reading_the_stream():
    """The body is counted while it streams: reading stops at the chunk that passes the limit."""
    pulled = []

    async def body():
        for i in range(100):
            pulled.append(i)
            yield b"x" * 1000

    async def consume():
        return [c async for c in limited(body(), 5500)]

    with pytest.raises(ClientError) as e:
        asyncio.run(consume())
    assert e.value.status == 413 and len(pulled) == 6


def test_413_by_pixels_without_decoding(model, client):
    # a header that claims 7000 x 7000 px (49 MP) and has no pixel data: refused from the header alone
    r = client.post("/predict", files=files_of(("huge.png", png_header_only(7000, 7000))))
    assert r.status_code == 413 and "--max-pixels" in r.json()["detail"]
    # the same header at a size within the limit gets as far as decoding, which fails: 400
    r = client.post("/predict", files=files_of(("small.png", png_header_only(64, 64))))
    assert r.status_code == 400
    with TestClient(create_app(model, max_pixels=63), raise_server_exceptions=False) as c:
        r = c.post("/predict", files=files_of(("d.png", encode(digit_image(0)[0], "PNG"))))  # 8x8 = 64 px
        assert r.status_code == 413


def test_batch_images_share_the_pixel_limit(model):
    png = encode(digit_image(0)[0], "PNG")  # 8x8 = 64 px
    with TestClient(create_app(model, max_pixels=200), raise_server_exceptions=False) as c:
        assert c.post("/predict/batch", files=files_of(*[(f"{i}.png", png) for i in range(3)])).status_code == 200
        r = c.post("/predict/batch", files=files_of(*[(f"{i}.png", png) for i in range(4)]))  # 256 px together
        assert r.status_code == 413 and "together" in r.json()["detail"]


def test_decompression_bomb_warning_is_an_error(model):
    """With --max-pixels above Pillow's own limit, Pillow's bomb warning (and error) still give 413."""
    from PIL import Image as PILImage
    over = int(PILImage.MAX_IMAGE_PIXELS ** 0.5) + 10
    with TestClient(create_app(model, max_pixels=10 ** 12), raise_server_exceptions=False) as c:
        for side in (over, 2 * over):  # the warning, then the DecompressionBombError
            r = c.post("/predict", files=files_of(("bomb.png", png_header_only(side, side))))
            assert r.status_code == 413 and "decompression-bomb" in r.json()["detail"]


def test_415_for_non_images_and_other_formats(client):
    img, _ = digit_image(1)
    for name, data in (("notes.txt", b"hello, this is not an image"), ("x.ppm", encode(img, "PPM")),
                       ("x.ico", encode(img.convert("RGB").resize((16, 16)), "ICO")),
                       ("x.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")):
        r = client.post("/predict", files=files_of((name, data)))
        assert r.status_code == 415, name
        assert "JPEG, PNG, WEBP, BMP, GIF, TIFF" in r.json()["detail"]


def test_400_for_broken_uploads(client):
    img, _ = digit_image(1)
    jpeg = encode(img.convert("RGB").resize((64, 64)), "JPEG")
    png = encode(img.resize((64, 64)), "PNG")
    cases = [
        ("truncated.png", png[:len(png) // 2]),
        ("truncated.jpg", jpeg[: len(jpeg) // 2]),
        ("empty.png", b""),
    ]
    for name, data in cases:
        r = client.post("/predict", files=files_of((name, data)))
        assert r.status_code == 400, (name, r.text)
        assert isinstance(r.json()["detail"], str) and r.json()["detail"]
    assert client.post("/predict", content=b"").status_code == 400  # no body at all
    r = client.post("/predict", content=b"--xx\r\nbroken", headers={"content-type": "multipart/form-data; boundary=zz"})
    assert r.status_code == 400
    r = client.post("/predict", data={"note": "no file here"}, files=[("other", ("", b"", "text/plain"))])
    assert r.status_code in (400, 415)
    r = client.post("/predict", files=files_of(("a.png", png), ("b.png", png)))  # two files to /predict
    assert r.status_code == 400 and "Too many files" in r.json()["detail"]
    # a batch with one broken file is refused naming it, and the server goes on serving
    r = client.post("/predict/batch", files=files_of(("good.png", png), ("bad.png", png[:len(png) // 2])))
    assert r.status_code == 400 and "bad.png" in r.json()["detail"]
    assert client.post("/predict", files=files_of(("good.png", png))).status_code == 200


def test_batch_file_limit(model):
    png = encode(digit_image(0)[0], "PNG")
    with TestClient(create_app(model, max_files=3), raise_server_exceptions=False) as c:
        assert c.post("/predict/batch", files=files_of(*[(f"{i}.png", png) for i in range(3)])).status_code == 200
        r = c.post("/predict/batch", files=files_of(*[(f"{i}.png", png) for i in range(4)]))
        assert r.status_code == 400


def test_topk_bounds(client, model):
    png = encode(digit_image(0)[0], "PNG")
    for bad in ("0", "-1", "abc", "1.5", "1001"):
        r = client.post(f"/predict?topk={bad}", files=files_of(("a.png", png)))
        assert r.status_code == 422, bad
    r = client.post("/predict?topk=50", files=files_of(("a.png", png)))  # more than the classes: all of them
    assert r.status_code == 200 and len(r.json()["topk"]) == len(model.classes)


def test_never_500_for_odd_requests(client):
    """Garbage of every kind gets a 4xx, and the server keeps answering."""
    png = encode(digit_image(0)[0], "PNG")
    bodies = [b"\x00" * 10, b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM" + b"\x00" * 60, b"RIFF\x00\x00\x00\x00WEBP",
              b"II*\x00" + b"\x00" * 20, png[:8] + b"\x00" * 30, os.urandom(2000)]
    ctypes = ["image/png", "application/octet-stream", "multipart/form-data", "multipart/form-data; boundary=",
              "text/plain", "application/json"]
    for body in bodies:
        for ctype in ctypes:
            r = client.post("/predict", content=body, headers={"content-type": ctype})
            assert 400 <= r.status_code < 500, (body[:12], ctype, r.status_code, r.text)
        r = client.post("/predict/batch", files=files_of(("a", body), ("b", body)))
        assert 400 <= r.status_code < 500
    assert client.get("/nothing-here").status_code == 404
    assert client.get("/predict").status_code == 405
    assert client.post("/predict", files=files_of(("ok.png", png))).status_code == 200


def test_odd_image_modes(client):
    """Modes the model was not trained on (RGBA, P, CMYK, 16-bit, 1-bit) are converted, like tudui predict."""
    img, _ = digit_image(3)
    for im, fmt in ((img.convert("RGBA"), "PNG"), (img.convert("P"), "GIF"), (img.convert("CMYK"), "JPEG"),
                    (img.convert("I;16"), "PNG"), (img.convert("1"), "BMP"), (img.convert("RGB"), "TIFF")):
        r = client.post("/predict", files=files_of((f"x.{fmt}", encode(im, fmt))))
        assert r.status_code == 200, (im.mode, fmt, r.text)


# --- the micro-batcher on its own ---

def fake_predict(calls):
    def predict(images, topk):
        calls.append(len(images))
        if any(im == "bad" for im in images):
            raise ValueError("bad image")
        return [[{"label": str(im), "index": i, "prob": 1.0 / (i + 1)} for i in range(topk)] for im in images]
    return predict


def run_jobs(batcher, jobs):
    async def main():
        results = await asyncio.gather(*(batcher.predict(images, k) for images, k in jobs), return_exceptions=True)
        await batcher.close()
        return results
    return asyncio.run(main())


def test_batcher_groups_concurrent_requests():
    calls = []
    b = MicroBatcher(fake_predict(calls), max_batch=8, wait_ms=50)
    out = run_jobs(b, [([f"im{i}"], 1 + i % 3) for i in range(20)])
    assert [o[0][0]["label"] for o in out] == [f"im{i}" for i in range(20)]
    assert [len(o[0]) for o in out] == [1 + i % 3 for i in range(20)]  # each its own top-k
    assert calls == [8, 8, 4] and b.stats.as_dict() == {"batches": 3, "images": 20, "largest_batch": 8}


def test_batcher_off_and_oversized_requests():
    calls = []
    out = run_jobs(MicroBatcher(fake_predict(calls), max_batch=1, wait_ms=50), [([f"im{i}"], 2) for i in range(5)])
    assert calls == [1] * 5 and len(out) == 5
    calls.clear()
    out = run_jobs(MicroBatcher(fake_predict(calls), max_batch=4, wait_ms=0), [([f"im{i}" for i in range(10)], 1)])
    assert calls == [4, 4, 2] and [p[0]["label"] for p in out[0]] == [f"im{i}" for i in range(10)]


def test_batcher_waits_only_for_requests_on_their_way():
    calls = []
    b = MicroBatcher(fake_predict(calls), max_batch=8, wait_ms=60_000)

    async def main():
        alone = await asyncio.wait_for(b.predict(["a"], 1), 30)  # nothing arriving: no 60 s wait
        first = asyncio.ensure_future(b.predict(["b"], 1))
        with b.arriving():  # a request being decoded: the batch waits for it
            await asyncio.sleep(0.05)
            second = asyncio.ensure_future(b.predict(["c"], 1))
        out = await asyncio.wait_for(asyncio.gather(first, second), 30)
        await b.close()
        return alone, out

    alone, (first, second) = asyncio.run(main())
    assert alone[0][0]["label"] == "a" and first[0][0]["label"] == "b" and second[0][0]["label"] == "c"
    assert calls == [1, 2]


def test_batcher_isolates_a_failing_request():
    calls = []
    out = run_jobs(MicroBatcher(fake_predict(calls), max_batch=16, wait_ms=50),
                   [(["a"], 1), (["bad"], 1), (["c", "d"], 1)])
    assert out[0][0][0]["label"] == "a" and isinstance(out[1], ValueError) and out[2][1][0]["label"] == "d"
    assert calls == [4, 1, 1, 2]  # tried together first, then each request alone


def test_model_failure_is_a_400_not_a_500(model):
    class Picky:
        classes, preprocess = model.classes, model.preprocess

        def predict_images(self, images, topk):
            if any(im.size[0] > 8 for im in images):
                raise RuntimeError("shape mismatch")
            return model.predict_images(images, topk)

    with TestClient(create_app(Picky()), raise_server_exceptions=False) as c:
        img, _ = digit_image(0)
        assert c.post("/predict", files=files_of(("ok.png", encode(img, "PNG")))).status_code == 200
        r = c.post("/predict", files=files_of(("big.png", encode(img.resize((16, 16)), "PNG"))))
        assert r.status_code == 400 and "shape mismatch" in r.json()["detail"]


# --- serve() and the CLI ---

def test_serve_function_token_env_and_warning(digits_run, monkeypatch, capsys):
    import torch
    import uvicorn
    started = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: started.update(app=app, **kw))
    monkeypatch.setenv("TUDUI_TOKEN", "from-env")
    n = torch.get_num_threads()
    try:
        tudui.serve(digits_run.best_path, host="0.0.0.0", port=8123, threads=1)
    finally:
        torch.set_num_threads(n)
    assert started["host"] == "0.0.0.0" and started["port"] == 8123
    assert "warning" not in capsys.readouterr().err  # a token is set
    with TestClient(started["app"]) as c:
        assert c.get("/classes").status_code == 401
        assert c.get("/classes", headers={"Authorization": "Bearer from-env"}).status_code == 200
    monkeypatch.delenv("TUDUI_TOKEN")
    for host, warns in (("0.0.0.0", True), ("::", True), ("192.168.1.5", True), ("127.0.0.1", False),
                        ("localhost", False), ("::1", False)):
        tudui.serve(digits_run.best_path, host=host, threads=1)
        err = capsys.readouterr().err
        assert ("warning" in err and "without a token" in err) == warns, host
    torch.set_num_threads(n)


def test_cli_serve_errors(digits_run, monkeypatch, capsys):
    import importlib.util
    assert cli_main(["serve", digits_run.best_path, "--max-batch", "0"]) == 2
    assert "--max-batch must be at least 1" in capsys.readouterr().err
    assert cli_main(["serve", "/no/such/checkpoint.pt"]) == 2
    assert "not found" in capsys.readouterr().err
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert cli_main(["serve", digits_run.best_path]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "tudui serve: error: tudui serve needs uvicorn: pip install 'tudui[serve]'"
    with pytest.raises(TuduiError):
        tudui.serve(digits_run.best_path)


def test_serves_an_exported_onnx_file_like_its_checkpoint(client, digits_run, tmp_path):
    """`tudui serve MODEL.onnx`: the same inference path as predict and eval, the same answers."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    onnx_path = tudui.export(digits_run.best_path, out=tmp_path / "digits.onnx")["path"]
    onnx_model = open_model(onnx_path)
    assert onnx_model.kind == "onnx" and onnx_model.classes == open_model(digits_run.best_path).classes
    data = encode(digit_image(7)[0], "PNG")
    with TestClient(create_app(onnx_model), raise_server_exceptions=False) as c:
        got = c.post("/predict?topk=3", files=files_of(("seven.png", data))).json()
        assert c.get("/classes").json()["classes"] == onnx_model.classes
    want = client.post("/predict?topk=3", files=files_of(("seven.png", data))).json()
    assert same_answer(got, want, tol=1e-4)


def test_cli_serve_on_a_busy_port_is_one_line_and_exit_2(digits_run, capsys):
    import socket
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        assert cli_main(["serve", digits_run.best_path, "--port", str(port), "--threads", "1",
                         "--log-level", "critical"]) == 2
    err = capsys.readouterr().err
    assert f"tudui serve: error: the server could not start on 127.0.0.1:{port}" in err and "Traceback" not in err


@pytest.mark.timeout(120)  # the bug this guards against was a hang
def test_batcher_serves_again_after_its_app_restarts(model):
    """A second lifespan (a second test client, a reloaded app) gets a fresh model thread."""
    app = create_app(model)
    data = encode(digit_image(3)[0], "PNG")
    for _ in range(2):
        with TestClient(app, raise_server_exceptions=False) as c:
            assert c.post("/predict", files=files_of(("three.png", data)), timeout=30).status_code == 200
