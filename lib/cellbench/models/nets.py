"""Built-in architectures (torch only, so that training and GPU machines need nothing else).

Two families of the same compact encoder-decoder (one ``base`` x ``depth`` U-Net body):

``unet_lite``: a plain U-Net (Ronneberger et al. 2015) with a foreground head: ``(N, 1, H, W)``
(``cellbench train`` trains it class-agnostic; with ``n_types`` a type head would follow, as in
``hovernet_lite``, but nothing reads it for this output kind yet). Touching nuclei are
split by a watershed of the foreground's distance transform (card ``output.kind: foreground``,
``postprocess.method: distance_watershed``): the classic U-Net + watershed baseline.

``hovernet_lite``: the U-Net with HoVer-Net-style heads (Graham et al.
2019). One tensor comes out, ``(N, 3 + n_types, H, W)``:

- channel 0: foreground logit (sigmoid gives the nucleus probability),
- channels 1, 2: horizontal and vertical distances of each nucleus pixel to its nucleus's
  centre of mass, normalised to [-1, 1] per nucleus (the HoVer-Net targets, see
  :func:`cellbench.models.postprocess.hv_targets`),
- channels 3..: type logits (softmax over types; absent when ``n_types`` = 0).

Input: ``(N, in_channels, H, W)`` float32 with H and W multiples of ``2 ** depth``.
"""

from __future__ import annotations

import torch
from torch import nn

from cellbench.models.card import ARCHITECTURE_NAMES


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class HoverNetLite(nn.Module):
    """Compact encoder-decoder with foreground, h/v distance and optional type heads.

    Parameters
    ----------
    in_channels
        3 for RGB, 1 for grey.
    n_types
        Number of nucleus types of the type head (0: no type head).
    base
        Channels of the first level; level ``k`` has ``base * 2**k``.
    depth
        Number of down-samplings (input sides must be multiples of ``2 ** depth``).
    """

    #: an h/v head (channels 1, 2)
    HV = True

    def __init__(self, in_channels: int = 3, n_types: int = 0, base: int = 32, depth: int = 4):
        super().__init__()
        chans = [base * 2**k for k in range(depth + 1)]
        self.depth = depth
        self.n_types = n_types
        self.enc = nn.ModuleList([_block(in_channels, chans[0])])
        self.enc.extend(_block(chans[k - 1], chans[k]) for k in range(1, depth + 1))
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(chans[k], chans[k - 1], 2, stride=2) for k in range(depth, 0, -1)
        )
        self.dec = nn.ModuleList(
            _block(2 * chans[k - 1], chans[k - 1]) for k in range(depth, 0, -1)
        )
        self.pool = nn.MaxPool2d(2)

        def head(cout: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(chans[0], chans[0], 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(chans[0], cout, 1),
            )

        self.np_head = head(1)
        self.hv_head = head(2) if self.HV else None
        self.tp_head = head(n_types) if n_types > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k, block in enumerate(self.enc):
            x = block(x if k == 0 else self.pool(x))
            skips.append(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips[:-1]), strict=True):
            x = dec(torch.cat([up(x), skip], dim=1))
        outs = [self.np_head(x)]
        if self.hv_head is not None:
            outs.append(self.hv_head(x))
        if self.tp_head is not None:
            outs.append(self.tp_head(x))
        return torch.cat(outs, dim=1)


class UNetLite(HoverNetLite):
    """The same encoder-decoder with a foreground head and an optional type head only (no
    h/v maps): output ``(N, 1 + n_types, H, W)``. Parameters as :class:`HoverNetLite`."""

    HV = False


ARCHITECTURES: dict[str, type[nn.Module]] = {"hovernet_lite": HoverNetLite, "unet_lite": UNetLite}


def hv_channels(architecture: str | None) -> int:
    """Number of h/v channels after the foreground channel in a built-in architecture's
    output (2 for HoVer-Net-style heads, 0 for a plain U-Net); type logits follow them."""
    return 2 if ARCHITECTURES[architecture or "hovernet_lite"].HV else 0


assert tuple(ARCHITECTURES) == ARCHITECTURE_NAMES, "card.ARCHITECTURE_NAMES is out of date"


def build(architecture: str, **kwargs) -> nn.Module:
    """Instantiate a built-in architecture by name."""
    if architecture not in ARCHITECTURES:
        raise KeyError(f"unknown architecture '{architecture}' (known: {sorted(ARCHITECTURES)})")
    return ARCHITECTURES[architecture](**kwargs)


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
