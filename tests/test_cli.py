"""End to end: train -> eval -> predict through the CLI, the run folder, errors and repeatability."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import tudui
from tudui.cli import main


def run_cli(args, capsys):
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def digit_image(index=0):
    from sklearn.datasets import load_digits
    d = load_digits()
    return Image.fromarray(np.round(d.images[index] / 16 * 255).astype(np.uint8), "L"), int(d.target[index])


def test_env_json(capsys):
    code, out, err = run_cli(["env", "--json"], capsys)
    assert code == 0
    info = json.loads(out)
    assert info["torch"] == torch.__version__
    assert info["cuda_available"] == torch.cuda.is_available()
    assert info["auto_device"] in ("cpu", "cuda", "mps")
    assert info["cpu_threads"] >= 1


def test_run_folder_contents(digits_run):
    run = digits_run.run_dir
    for name in ("last.pt", "best.pt", "config.yaml", "metrics.jsonl"):
        assert os.path.isfile(os.path.join(run, name)), name
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("epoch", "train_loss", "val_loss", "val_acc", "lr", "seconds"):
        assert key in rows[0]
    events = [f for f in os.listdir(run) if f.startswith("events.out.tfevents")]
    assert events
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(run)
    acc.Reload()
    tags = acc.Tags()
    assert {"train/loss", "val/loss", "val/acc", "train/lr"} <= set(tags["scalars"])
    assert tags["images"], "a grid image of a training batch is logged"


def test_train_cli_prints_next_steps(tmp_path, capsys):
    code, out, err = run_cli(["train", "--epochs", "1", "--out", str(tmp_path), "--name", "r", "--no-progress"], capsys)
    assert code == 0
    assert "tensorboard --logdir" in err and "tudui predict" in err
    assert "epoch 1/1" in err and "val_acc" in err
    assert os.path.isfile(tmp_path / "r" / "best.pt")


def test_eval_json(digits_run, capsys):
    code, out, err = run_cli(["eval", digits_run.best_path, "--json"], capsys)
    assert code == 0
    r = json.loads(out)
    assert 0.0 <= r["accuracy"] <= 1.0 and r["num_samples"] == 359
    assert r["classes"] == [str(i) for i in range(10)]
    cm = np.array(r["confusion_matrix"])
    assert cm.shape == (10, 10) and cm.sum() == 359
    assert abs(np.trace(cm) / cm.sum() - r["accuracy"]) < 1e-9
    assert set(r["per_class"]["3"]) == {"precision", "recall", "f1", "support"}
    assert "top5" in r and r["top5"] >= r["accuracy"]
    assert r["loss"] > 0


def test_predict_odd_images(digits_run, tmp_path, capsys):
    img, _ = digit_image(0)
    big = img.resize((80, 80))
    paths = []
    rgba = big.convert("RGBA")
    rgba.putalpha(200)
    for name, im in (("rgba.png", rgba), ("gray.png", big), ("pal.png", big.convert("P")), ("rgb.jpg", big.convert("RGB"))):
        p = tmp_path / "imgs" / name
        p.parent.mkdir(exist_ok=True)
        im.save(p)
        paths.append(p)
    # EXIF-rotated JPEG: stored rotated, orientation tag says rotate back
    exif = Image.Exif()
    exif[0x0112] = 6
    big.convert("RGB").rotate(90, expand=True).save(tmp_path / "imgs" / "exif.jpg", exif=exif.tobytes())
    code, out, err = run_cli(["predict", digits_run.best_path, str(paths[0]), str(tmp_path / "imgs"), "--topk", "2",
                              "--json"], capsys)
    assert code == 0
    res = json.loads(out)
    assert res[0]["path"] == str(paths[0])
    folder = [r["path"] for r in res[1:]]
    assert folder == sorted(folder) and len(folder) == 5
    for r in res:
        assert len(r["topk"]) == 2
        assert r["topk"][0]["prob"] >= r["topk"][1]["prob"]
        assert r["topk"][0]["label"] == digits_run.classes[r["topk"][0]["index"]]


def test_predict_applies_training_preprocessing(digits_run):
    """predict on a file equals the model on the training pipeline's tensor."""
    clf = tudui.load(digits_run.best_path)
    img, _ = digit_image(3)
    pre = clf.preprocess
    assert pre["channels"] == 1 and pre["size"] == [8, 8]
    x = (torch.from_numpy(np.array(img)).float() / 255 - pre["mean"][0]) / pre["std"][0]
    expected = clf.model(x[None, None]).softmax(1)[0]
    path = os.path.join(digits_run.run_dir, "d3.png")
    img.save(path)
    got = tudui.predict(digits_run.best_path, [path], topk=10)[0]["topk"]
    for t in got:
        assert abs(t["prob"] - float(expected[t["index"]].detach())) < 1e-5


def test_load_api(digits_run):
    clf = tudui.load(digits_run.last_path)
    assert not clf.model.training
    assert clf.classes == [str(i) for i in range(10)]
    assert clf.meta["model"]["name"] == "tudui"
    assert clf.meta["versions"]["torch"] == str(torch.__version__)


def test_gpu_saved_checkpoint_loads_on_cpu(digits_run, tmp_path, monkeypatch):
    """A checkpoint whose storages are tagged cuda:0 (as written on a GPU machine) loads without map_location."""
    ck = torch.load(digits_run.best_path, weights_only=True)
    import torch.serialization as ser
    monkeypatch.setattr(ser, "location_tag", lambda storage: "cuda:0")
    path = tmp_path / "gpu.pt"
    torch.save(ck, path)
    monkeypatch.undo()
    with pytest.raises(RuntimeError):
        torch.load(path, weights_only=True)  # what the course's users hit without map_location
    clf = tudui.load(str(path))
    assert next(clf.model.parameters()).device.type == "cpu"


@pytest.mark.parametrize("args, needle", [
    (["train", "--data", "/nonexistent/folder"], "not found"),
    (["train", "--data", "no-such-set"], "unknown dataset"),
    (["train", "--model", "no_such_model", "--epochs", "1"], "unknown model"),
    (["train", "--device", "cuda"], "CUDA"),
    (["train", "--epochs", "0"], "epochs"),
    (["eval", "/nonexistent.pt"], "not found"),
    (["predict", "/nonexistent.pt", "x.png"], "not found"),
])
def test_user_errors_one_line_exit_2(args, needle, capsys, tmp_path):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, out, err = run_cli(args + (["--out", str(tmp_path)] if args[0] == "train" else []), capsys)
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and needle in lines[-1]
    assert "Traceback" not in err


def test_not_a_checkpoint(tmp_path, capsys, digits_run):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"this is not a checkpoint")
    code, out, err = run_cli(["eval", str(bogus)], capsys)
    assert code == 2 and "not a readable checkpoint" in err
    plain = tmp_path / "plain.pt"
    torch.save({"a": torch.zeros(2)}, plain)
    code, out, err = run_cli(["predict", str(plain), digits_run.best_path], capsys)
    assert code == 2 and "not a tudui checkpoint" in err
    img = tmp_path / "broken.png"
    img.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    code, out, err = run_cli(["predict", digits_run.best_path, str(img)], capsys)
    assert code == 2 and "cannot read image" in err


def test_seeded_runs_repeat(tmp_path):
    def metrics(name):
        r = tudui.train("digits", epochs=2, out=str(tmp_path), name=name, progress=False, seed=3)
        return [{k: v for k, v in row.items() if k != "seconds"} for row in r.history]
    assert metrics("a") == metrics("b")


def test_module_entry_point():
    p = subprocess.run([sys.executable, "-m", "tudui", "--help"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "usage: tudui" in p.stdout


def test_help_on_every_command(capsys):
    from tudui.cli import COMMANDS
    for name in COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert f"usage: tudui {name}" in capsys.readouterr().out


def test_board_absolute_logdir_and_free_port(tmp_path):
    import socket

    from tudui.board import board_command
    (tmp_path / "runs").mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        argv, url = board_command(str(tmp_path / "runs"), port=taken)
        port = int(argv[argv.index("--port") + 1])
        assert port != taken
        assert os.path.isabs(argv[argv.index("--logdir") + 1])
        assert url.endswith(f":{port}/")
    with pytest.raises(tudui.TuduiError):
        board_command(str(tmp_path / "missing"))


def test_python_dataset_checkpoint_needs_data_for_eval(tmp_path):
    """A run on a Python Dataset records no reloadable data: eval says to pass it, and accepts it."""
    class Squares(torch.utils.data.Dataset):
        classes = ["dark", "light"]

        def __len__(self):
            return 40

        def __getitem__(self, i):
            label = i % 2
            return torch.full((1, 8, 8), 0.2 + 0.6 * label), label

    r = tudui.train(data=Squares(), epochs=1, out=str(tmp_path), name="sq", progress=False, threads=1)
    with pytest.raises(tudui.TuduiError, match="--data"):
        tudui.evaluate(r.best_path)
    rep = tudui.evaluate(r.best_path, data=Squares())
    assert rep["classes"] == ["dark", "light"] and rep["num_samples"] == 8
