"""Where the model looked: Grad-CAM on the last convolution, for the class it predicted.

Library: captum's `LayerGradCam`. benchmarks/cam_libs.py measured it against the `grad-cam` package
(pytorch-grad-cam 1.5.7) on the same models, images and target classes (benchmarks/results/cam_libs.json, 2-core
EPYC): the maps agree (Pearson correlation 1.0 after both are upsampled and scaled), and captum took 0.44 / 1.31
/ 2.40 ms per image on tudui / fastnet / resnet18 where grad-cam took 0.77 / 2.52 / 6.19. grad-cam also pulls in
OpenCV, SciPy and ttach; captum needs only torch, numpy and matplotlib, which tudui has anyway. captum it is.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


def last_conv(model) -> Optional[nn.Module]:
    """The last 2-D convolution in the model's module order, or None (not a module, or no convolutions)."""
    if not isinstance(model, nn.Module):
        return None
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1] if convs else None


def why_no_cam(model) -> Optional[str]:
    """None when Grad-CAM applies to this model, else the sentence the report shows instead."""
    if not isinstance(model, nn.Module):
        return "Grad-CAM needs the PyTorch model (gradients); this model is not a torch module."
    if last_conv(model) is None:
        return "This model has no convolution layer, so there is no Grad-CAM map to show."
    try:
        import captum  # noqa: F401
    except ImportError:
        return "Grad-CAM needs captum, which tudui depends on: pip install captum."
    return None


def gradcam(model: nn.Module, x: torch.Tensor, targets, batch: int = 32) -> torch.Tensor:
    """Grad-CAM maps (n, H, W) in [0, 1] for input batch x (n, C, H, W) and one target class per image,
    computed at the last convolution's resolution and upsampled (bilinear) to the input's H x W."""
    from captum.attr import LayerAttribution, LayerGradCam  # import-time cost: captum, only for Grad-CAM

    layer = last_conv(model)
    if layer is None:
        raise ValueError("the model has no Conv2d layer")
    was_training = model.training
    model.eval()
    cam = LayerGradCam(model, layer)
    targets = torch.as_tensor(targets, dtype=torch.long)
    out = []
    try:
        for s in range(0, len(x), batch):
            xb = x[s:s + batch].float().contiguous().clone().requires_grad_(True)
            tb = targets[s:s + batch].to(xb.device)
            with torch.enable_grad():
                a = cam.attribute(xb, target=tb, relu_attributions=True)
            a = LayerAttribution.interpolate(a, tuple(x.shape[-2:]), interpolate_mode="bilinear")
            out.append(a.detach()[:, 0].float().cpu())
    finally:
        model.train(was_training)
    maps = torch.cat(out) if out else torch.zeros(0, *x.shape[-2:])
    top = maps.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)
    return (maps.clamp(min=0) / top).clamp(0, 1)
