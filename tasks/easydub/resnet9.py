"""EasyDUB's ResNet-9, laid out module for module so their state dicts load (``easydub/models.py``).

The layout differs from ``tasks.vision.recipe.resnet9`` (the DAWNBench one): a 5x5 stride-2 second block, no pooling
before the first residual, one max-pool, a 3x3 unpadded last block to 128 channels, adaptive max-pool, a
bias-free linear layer and logits scaled by 0.2. Keys follow the ``nn.Sequential`` indices (``0.0.weight``,
``2.module.0.1.running_mean``, ``9.weight``). ``width`` scales every block (64: theirs, 6.6M parameters);
smaller widths keep the same keys and are for CPU tests only.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bench.errors import BenchError
from tasks.vision.recipe import Scale  # no parameter, so no state-dict key

PREFIXES = ("module.", "model.", "_orig_mod.")  # DataParallel, wrapper modules, torch.compile
SHOWN_KEYS = 6


class Residual(nn.Module):
    """x + body(x), the body stored as ``module`` as in their checkpoints."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.module = body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.module(x)


def _block(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


def easydub_resnet9(num_classes: int = 10, width: int = 64) -> nn.Sequential:
    """Blocks 3-w-2w(k5, s2)-res 2w-4w-pool-res 4w-2w(k3, p0), adaptive max-pool, linear, x0.2 (w = 64)."""
    w = width
    return nn.Sequential(
        _block(3, w),
        _block(w, 2 * w, kernel=5, stride=2, padding=2),
        Residual(nn.Sequential(_block(2 * w, 2 * w), _block(2 * w, 2 * w))),
        _block(2 * w, 4 * w),
        nn.MaxPool2d(2),
        Residual(nn.Sequential(_block(4 * w, 4 * w), _block(4 * w, 4 * w))),
        _block(4 * w, 2 * w, padding=0),
        nn.AdaptiveMaxPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(2 * w, num_classes, bias=False),
        Scale(0.2),
    )


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a ``module.``/``model.``/``_orig_mod.`` prefix that every key carries (repeatedly: they nest)."""
    changed = True
    while changed and state:
        changed = False
        for prefix in PREFIXES:
            if all(key.startswith(prefix) for key in state):
                state = {key[len(prefix):]: value for key, value in state.items()}
                changed = True
    return state


def _tensor_dict(obj: object) -> dict[str, torch.Tensor] | None:
    if isinstance(obj, dict) and obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        return obj
    return None


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's state dict, loaded with ``weights_only=True`` (no code runs), wrappers and prefixes removed."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BenchError(f"checkpoint {path} is missing") from None
    except Exception as err:  # truncated zip, a pickle that refers to code, not a torch file at all
        raise BenchError(f"checkpoint {path} cannot be read as a torch state dict ({type(err).__name__}: "
                         f"{str(err).splitlines()[0] if str(err) else ''}); download it again") from None
    state = _tensor_dict(obj)
    if state is None and isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model", "net"):
            state = _tensor_dict(obj.get(key))
            if state is not None:
                break
    if state is None:
        raise BenchError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict of tensors")
    return strip_prefixes(state)


def load_checkpoint(model: nn.Module, path: Path) -> nn.Module:
    """Load ``path`` into ``model`` (strictly; a missing ``num_batches_tracked`` counter is tolerated)."""
    state = read_state_dict(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(expected[k].shape)})" for k in expected
              if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:SHOWN_KEYS]}{' ...' if len(missing) > SHOWN_KEYS else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:SHOWN_KEYS]}{' ...' if len(unexpected) > SHOWN_KEYS else ''}")
        if shapes:
            parts.append(f"wrong shapes {shapes[:3]}")
        raise BenchError(f"checkpoint {path} does not fit EasyDUB's ResNet-9 layout: {'; '.join(parts)}. It must be a "
                         "state dict of easydub/models.py resnet9 (keys like 0.0.weight, 2.module.0.1.running_mean, "
                         "9.weight; a module./model. prefix is fine), saved at the task's width")
    model.load_state_dict(state, strict=False)
    return model
