"""The CNNT network in torch: CNN attention over frames inside a U-net (Rehman et al., Sci Rep 2024).

Tensors are ``[B, T, C, H, W]``. Every convolution works frame by frame; only the attention mixes the T
frames of a window. Nothing here depends on a fixed T, H or W, so one exported graph serves every shape.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from livedenoise.model.config import CNNTConfig

# The U-net halves H and W twice (after a 2x2 space-to-depth stem where the config has one), so the
# padded frame must be a multiple of 4 x unshuffle; SIZE_MULTIPLE is the coarsest grid of any config, which
# tiles align to. Instance norm at the quarter-resolution level needs more than one pixel, so frames are
# padded to at least MIN_SIZE x unshuffle; smaller frames are refused (see inference.base).
SIZE_MULTIPLE = 8
MIN_SIZE = 8


def _per_frame(fn: nn.Module, x: Tensor) -> Tensor:
    """Apply a 4D module to each frame of a ``[B, T, C, H, W]`` tensor."""
    b, t = x.shape[0], x.shape[1]
    return fn(x.flatten(0, 1)).unflatten(0, (b, t))


class FrameConv(nn.Module):
    """3x3 convolution applied to every frame on its own."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return _per_frame(self.conv, x)


class FrameNorm(nn.Module):
    """Instance norm per frame: unlike layer norm over [C, H, W] it allows any H and W."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: Tensor) -> Tensor:
        return _per_frame(self.norm, x)


class CNNAttention(nn.Module):
    """Multi-head attention whose tokens are whole frames and whose projections are 3x3 convs.

    Per head a token is a frame's ``hc*H*W`` feature values, so the attention matrix is only T x T and
    the cost is linear in H*W. The 1/sqrt(hc*H*W) scale is taken from the runtime shape and applied as
    (hc*H*W)^-1/4 to q and to k before their product, which keeps the sum of hc*H*W terms within FP16.
    """

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = FrameConv(channels, channels)
        self.k = FrameConv(channels, channels)
        self.v = FrameConv(channels, channels)
        self.out = FrameConv(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        b, t, c, h, w = x.shape
        token = (c // self.heads) * h * w

        def split(y: Tensor) -> Tensor:  # [B, T, C, H, W] -> [B, heads, T, hc*H*W]
            return y.reshape(b, t, self.heads, token).transpose(1, 2)

        scale = token**-0.25  # stays symbolic in an export: never float() a shape
        q = split(self.q(x)) * scale
        k = split(self.k(x)) * scale
        weights = torch.softmax(q @ k.transpose(-2, -1), dim=-1)
        mixed = (weights @ split(self.v(x))).transpose(1, 2).reshape(b, t, c, h, w)
        return self.out(mixed)


class CNNTCell(nn.Module):
    """Pre-norm transformer cell: attention then a conv mixer, each with a residual."""

    def __init__(self, channels: int, heads: int, mixer_ratio: int, dropout: float) -> None:
        super().__init__()
        hidden = channels * mixer_ratio
        self.norm1 = FrameNorm(channels)
        self.attn = CNNAttention(channels, heads)
        self.norm2 = FrameNorm(channels)
        self.mixer = nn.Sequential(
            nn.Conv2d(channels, hidden, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, channels, kernel_size=3, padding=1),
            nn.Dropout(dropout),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + _per_frame(self.mixer, self.norm2(x))


class CNNTBlock(nn.Module):
    """An input projection to the level's width, then N cells."""

    def __init__(self, c_in: int, c_out: int, cfg: CNNTConfig) -> None:
        super().__init__()
        self.proj = FrameConv(c_in, c_out)
        self.cells = nn.Sequential(
            *(
                CNNTCell(c_out, cfg.heads, cfg.mixer_ratio, cfg.dropout)
                for _ in range(cfg.cells_per_block)
            )
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.cells(self.proj(x))


def _resample(x: Tensor, factor: float) -> Tensor:
    """Bilinear resampling over H and W only (never over T)."""
    return _per_frame(nn.Upsample(scale_factor=factor, mode="bilinear", align_corners=False), x)


class CNNT(nn.Module):
    """Pre-conv, a two-level CNNT U-net with skip concatenations, post-conv and a long residual skip."""

    def __init__(self, cfg: CNNTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c0, c1, c2 = cfg.block_channels
        packed = cfg.channels * cfg.unshuffle**2  # channels after the space-to-depth stem
        self.pre = FrameConv(packed, cfg.stem_channels)
        self.enc0 = CNNTBlock(cfg.stem_channels, c0, cfg)
        self.enc1 = CNNTBlock(c0, c1, cfg)
        self.bottom = CNNTBlock(c1, c2, cfg)
        self.dec1 = CNNTBlock(c2 + c1, c1, cfg)
        self.dec0 = CNNTBlock(c1 + c0, c0, cfg)
        self.post = FrameConv(c0, packed)

    def forward(self, x: Tensor) -> Tensor:
        """Denoise ``[B, T, C, H, W]`` (intensities already normalised); returns the same shape."""
        h, w = x.shape[-2], x.shape[-1]
        f = self.cfg.unshuffle
        pad_h = torch.sym_max(MIN_SIZE * f - h, (-h) % self.cfg.stride)
        pad_w = torch.sym_max(MIN_SIZE * f - w, (-w) % self.cfg.stride)
        x = _per_frame(nn.ReplicationPad2d((0, pad_w, 0, pad_h)), x)
        e0 = self.enc0(self.pre(_per_frame(nn.PixelUnshuffle(f), x) if f > 1 else x))
        e1 = self.enc1(_resample(e0, 0.5))
        m = self.bottom(_resample(e1, 0.5))
        d1 = self.dec1(torch.cat([_resample(m, 2.0), e1], dim=2))
        d0 = self.dec0(torch.cat([_resample(d1, 2.0), e0], dim=2))
        residual = self.post(d0)
        y = x + (_per_frame(nn.PixelShuffle(f), residual) if f > 1 else residual)
        return y[..., :h, :w]


def build_model(cfg: CNNTConfig, seed: int | None = 0) -> CNNT:
    """A CNNT with reproducible initial weights (``seed=None`` uses torch's global RNG)."""
    if seed is None:
        return CNNT(cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return CNNT(cfg)
