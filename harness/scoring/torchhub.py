"""Point torch.hub at a folder for the length of a block, then put it back.

Libraries that load through torch.hub (torchvision backbones for LPIPS, DINO for DreamSim) read its directory, and
DreamSim's loader sets it for the whole process. Every load goes through this guard so one metric's cache never
leaks into another's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def torch_hub_dir(path: Path) -> Iterator[None]:
    import torch.hub

    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(path))
    try:
        yield
    finally:
        torch.hub.set_dir(previous)
