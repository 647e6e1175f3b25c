"""PyTorch reference pieces shared by the importer tests (tests/test_import_*.py): the ResNet-18
video front end that auto_avsr and AV-HuBERT both publish (Conv3d stem `frontend3D`, `trunk`),
random weights, random clips with padding, and the comparison. Written from the published
architectures, with a width parameter so the tests stay small; key names are the published ones.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lipjax.schema import MEAN, STD


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def make_act(kind: str, channels: int) -> nn.Module:
    return {"swish": Swish, "relu": nn.ReLU,
            "prelu": lambda: nn.PReLU(num_parameters=channels)}[kind]()


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, act: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = make_act(act, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = make_act(act, cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                         nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        res = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + res)


class Trunk(nn.Module):
    def __init__(self, width: int, act: str) -> None:
        super().__init__()
        cin = width
        for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, cout, stride, act),
                                                         BasicBlock(cout, cout, 1, act)))
            cin = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        return x.mean(dim=(2, 3))


class VideoFrontEnd(nn.Module):
    """(B, T, H, W) normalised frames → (B, T, 8·width)."""

    def __init__(self, width: int, act: str) -> None:
        super().__init__()
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, width, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False),
            nn.BatchNorm3d(width), make_act(act, width),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        self.trunk = Trunk(width, act)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        x = self.frontend3D(video[:, None])  # (B, C, T, h, w)
        x = x.transpose(1, 2).reshape(b * t, *x.shape[1:2], *x.shape[3:])
        return self.trunk(x).reshape(b, t, -1)


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random weights everywhere (PyTorch's initialisers, seeded) and random, non-trivial
    normalisation parameters and BatchNorm statistics; evaluation mode."""
    torch.manual_seed(seed)
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.dim() < 2:  # biases: PyTorch starts some at zero, which would hide a swap
                nn.init.normal_(p, 0.0, 0.3)
        if isinstance(module, nn.modules.batchnorm._BatchNorm | nn.LayerNorm):
            with torch.no_grad():
                module.weight.uniform_(0.6, 1.4)
                module.bias.normal_(0.0, 0.1)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_(0.0, 0.1)
            module.running_var.uniform_(0.6, 1.4)
        if isinstance(module, nn.PReLU):
            with torch.no_grad():
                module.weight.uniform_(0.05, 0.4)
    return model.eval()


def clips(lengths: list[int], size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 clips padded to the longest: (B, T, size, size) pixels, (B, T) mask."""
    rng = np.random.default_rng(seed)
    video = np.zeros((len(lengths), max(lengths), size, size), np.uint8)
    mask = np.zeros((len(lengths), max(lengths)), bool)
    for i, n in enumerate(lengths):
        video[i, :n] = rng.integers(0, 256, (n, size, size))
        mask[i, :n] = True
    return video, mask


def normalised(pixels: np.ndarray) -> torch.Tensor:
    """What both projects feed their models: (pixel / 255 - mean) / std, float32."""
    return torch.from_numpy(((pixels.astype(np.float32) / 255.0 - MEAN) / STD)
                            .astype(np.float32))


def run_per_clip(model: torch.nn.Module, lengths: list[int], size: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, list]:
    """Random padded clips, and the reference's outputs on each clip alone (no padding: what
    the lipjax model must reproduce at the valid frames of the padded batch), as numpy."""
    video, mask = clips(lengths, size, seed)
    with torch.no_grad():
        outs = [model(normalised(video[i:i + 1, :n])) for i, n in enumerate(lengths)]
    to_numpy = lambda y: tuple(z[0].numpy() for z in y) if isinstance(y, tuple) else y[0].numpy()
    return video, mask, [to_numpy(y) for y in outs]


def max_abs_diff(ours: np.ndarray, reference: list[np.ndarray], lengths: list[int]) -> float:
    """Largest |ours - reference| over the valid frames of each clip; padded frames of ours must
    be zero."""
    worst = 0.0
    for i, n in enumerate(lengths):
        worst = max(worst, float(np.abs(np.asarray(ours[i, :n]) - reference[i]).max()))
        assert not np.asarray(ours[i, n:]).any(), "padded frames are not zero"
    return worst
