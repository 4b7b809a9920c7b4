"""Writes examples/course_workflow.ipynb (unexecuted): the course's workflow with tudui's Python API on the
bundled digits set. Edit the cells here and run `python examples/make_course_workflow.py`;
tests/test_notebook.py executes the notebook and checks that it matches this script."""
from __future__ import annotations

import os

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    ("md", """# The course's workflow with tudui

The PyTorch course "PyTorch 深度学习快速入门" builds an image classifier step by step. This notebook walks the
same steps with tudui's Python API, on scikit-learn's bundled 8x8 handwritten digits, so it runs offline on
a CPU in well under a minute. Each section names the course step; the documentation site has a page for
each (From the course to tudui)."""),
    ("code", """import tudui

EPOCHS = 4          # small, so the notebook runs in seconds; the default `tudui train` uses 15
print(tudui.__version__)"""),
    ("md", """## 1. Install and check

The course checks `torch.cuda.is_available()`. `tudui.env_info()` answers that and more, and
`resolve_device("auto")` is the device training will use."""),
    ("code", """info = tudui.env_info()
print({k: info[k] for k in ("python", "torch", "torchvision")})
print("device:", tudui.resolve_device("auto"))"""),
    ("md", """## 2 and 5. The dataset

The course writes a `Dataset` for the ants-and-bees folder and loads CIFAR-10 with torchvision. tudui reads
built-in sets, folders, CSVs or your own `Dataset`; `stats` shows what it read, with the per-channel mean and
std that `Normalize` needs."""),
    ("code", """from tudui.data.stats import stats

s = stats("digits")
for split, info in s["splits"].items():
    print(split, info["num_images"], "images; mean", [round(m, 3) for m in info["mean"]])
print("classes:", s["classes"])"""),
    ("md", """## 4. Transforms

The training augmentation, drawn as a grid (the course's `add_images` of a batch)."""),
    ("code", """from IPython.display import Image as Show
from tudui.report.preview import preview

Show(preview("digits", out="preview.png", n=16, logdir=None, augment="basic"))"""),
    ("md", """## 7-9. The network

The course's `Tudui` network, adapted to 1-channel 8x8 images: the same layers in an `nn.Sequential`, the same
state_dict keys."""),
    ("code", """import torch

net = tudui.models.create("tudui", num_classes=10, in_channels=1, img_size=8)
print(net.model)
print(net(torch.ones(64, 1, 8, 8)).shape)"""),
    ("md", """## 10-14. Loss, optimizer, StepLR and the training loop

One call runs the course's loop (`zero_grad`, `backward`, `step`, evaluation with `argmax`) with SGD, a
cross-entropy loss and a step schedule, logs to TensorBoard (step 3) and saves checkpoints."""),
    ("code", """result = tudui.train("digits", epochs=EPOCHS, optimizer="sgd", lr=0.05, scheduler="step", step_size=2,
                     gamma=0.5, name="course")   # in Jupyter the progress bar is a widget
for row in result.history:
    print(f"epoch {row['epoch']}  train_loss {row['train_loss']:.3f}  val_acc {row['val_acc']:.3f}  lr {row['lr']:.4f}")"""),
    ("md", """What `train` returns shows itself in a notebook: the curves and the final numbers, with the accuracy of
`best.pt` (the checkpoint the next steps use)."""),
    ("code", """result"""),
    ("code", """import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(4, 2.5))
ax.plot([r["epoch"] for r in result.history], [r["val_acc"] for r in result.history], marker="o")
ax.set_xlabel("epoch"); ax.set_ylabel("val accuracy")
plt.show()"""),
    ("md", """## 3. TensorBoard

Every run has its own folder with TensorBoard events; `tudui board runs` (or the command below) shows them."""),
    ("code", """import os
from tudui.board import board_command

print(sorted(os.listdir(result.run_dir)))
argv, url = board_command("runs")
print(" ".join(argv[1:]), "->", url)"""),
    ("md", """## Evaluation

Loss, accuracy, per-class metrics and the confusion matrix on the held-out split."""),
    ("code", """evaluation = tudui.evaluate(result.best_path)
print("accuracy", round(evaluation["accuracy"], 3))
for name, row in zip(evaluation["classes"], evaluation["confusion_matrix"]):
    print(name, row)"""),
    ("md", """The same dict, shown by the notebook: metrics, the per-class table and the confusion matrix."""),
    ("code", """evaluation"""),
    ("md", """## The report

Curves, confusion matrix, the most confident mistakes with Grad-CAM and calibration on one self-contained
page (`tudui report RUN`); in a notebook it shows inline."""),
    ("code", """tudui.report(result.run_dir, top=4)"""),
    ("md", """## 13. Saving and loading

A checkpoint is tensors and plain values: plain `torch.load(weights_only=True)` reads it, on any device, and
`tudui.load` rebuilds the model from it alone."""),
    ("code", """ckpt = torch.load(result.best_path, map_location="cpu", weights_only=True)
print(ckpt["model"], ckpt["classes"])
clf = tudui.load(result.best_path)
print(type(clf.model).__name__, "training:", clf.model.training)"""),
    ("md", """## 16. Testing your own image

An image file, classified with the preprocessing stored in the checkpoint."""),
    ("code", """from PIL import Image
from sklearn.datasets import load_digits

digits = load_digits()
Image.fromarray((digits.images[3] * 255 / 16).astype("uint8")).save("my_digit.png")
print("true label:", digits.target[3])
for p in tudui.predict(result.best_path, ["my_digit.png"], topk=3)[0]["topk"]:
    print(p["label"], round(p["prob"], 3))"""),
    ("md", """A list of predictions shows each image with its top classes. A digit drawn dark on white (as people
draw) gets a note: the training digits are light on dark, and `invert=True` reads it."""),
    ("code", """from PIL import ImageOps

ImageOps.invert(Image.open("my_digit.png")).save("drawn_dark_on_light.png")
tudui.predict(result.best_path, ["my_digit.png", "drawn_dark_on_light.png"], topk=3)"""),
    ("md", """## Resuming

`last.pt` continues the run exactly; a larger `epochs` extends it."""),
    ("code", """more = tudui.train(resume=result.last_path, epochs=EPOCHS + 1, progress=False)
print([row["epoch"] for row in more.history])"""),
    ("md", """## 17. Dropout, init, normalization

The options the course's notes teach, as model arguments."""),
    ("code", """better = tudui.train("digits", epochs=EPOCHS, model_args={"activation": "relu", "norm": "batchnorm"},
                     name="relu-bn", progress=False)
print("course net:", round(result.history[-1]["val_acc"], 3), " with ReLU + BatchNorm:",
      round(better.history[-1]["val_acc"], 3))"""),
]


def build() -> nbformat.NotebookNode:
    nb = new_notebook()
    nb.cells = [new_markdown_cell(src) if kind == "md" else new_code_cell(src) for kind, src in CELLS]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def main() -> None:
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "course_workflow.ipynb")
    nbformat.write(build(), path)
    print(path)


if __name__ == "__main__":
    main()
