"""Identity references: the `IdentityRefs` batch, the shared identity embedding e_id (paper eq. 4) and
the dense near-square multi-view canvas packing (paper §3.3.1, ARCHITECTURE §2)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn

# N views -> (rows, cols) of the near-square grid (ARCHITECTURE §12 "Packing").
_GRIDS = {1: (1, 1), 2: (1, 2), 3: (2, 2), 4: (2, 2), 5: (2, 3), 6: (2, 3), 7: (3, 3), 8: (3, 3), 9: (3, 3)}


@dataclass
class IdentityRefs:
    """References for K identity slots (slot k = anchor k = e_id[k] = canvas k = voice k).

    video: [B, K, Cv, Hv, Wv] one latent canvas per identity (or None);
    audio: [B, K, L, Ca] latents zero-padded to L (or None); audio_lens: [B, K] valid audio latents
    (0 = no voice for that slot); id_mask: [B, K] which slots exist.
    """

    video: torch.Tensor | None
    audio: torch.Tensor | None
    audio_lens: torch.Tensor | None
    id_mask: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.id_mask.shape[0])

    @property
    def num_slots(self) -> int:
        return int(self.id_mask.shape[1])

    def validate(self, k_max: int, audio_ref_len: int | None = None) -> None:
        """Clear errors for inconsistent shapes (rather than silent broadcasting)."""
        b, k = self.id_mask.shape
        if self.id_mask.dtype != torch.bool:
            raise ValueError(f"id_mask must be bool, got {self.id_mask.dtype}")
        if k > k_max:
            raise ValueError(f"{k} identity slots exceed identity.k_max={k_max}")
        if self.video is not None and (self.video.dim() != 5 or tuple(self.video.shape[:2]) != (b, k)):
            raise ValueError(f"refs.video must be [B={b}, K={k}, C, H, W], got {tuple(self.video.shape)}")
        if self.audio is not None:
            if self.audio.dim() != 4 or tuple(self.audio.shape[:2]) != (b, k):
                raise ValueError(f"refs.audio must be [B={b}, K={k}, L, C], got {tuple(self.audio.shape)}")
            if audio_ref_len is not None and self.audio.shape[2] > audio_ref_len:
                raise ValueError(f"refs.audio has {self.audio.shape[2]} latents per identity > L={audio_ref_len}")
            if self.audio_lens is None or tuple(self.audio_lens.shape) != (b, k):
                raise ValueError(f"refs.audio_lens must be [B={b}, K={k}] when audio refs are given")
            if bool((self.audio_lens > self.audio.shape[2]).any()) or bool((self.audio_lens < 0).any()):
                raise ValueError(f"refs.audio_lens out of range [0, {self.audio.shape[2]}]: {self.audio_lens.tolist()}")

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> IdentityRefs:
        """Move tensors (float tensors also cast to `dtype` if given)."""
        def mv(x: torch.Tensor | None) -> torch.Tensor | None:
            if x is None:
                return None
            return x.to(device, dtype) if (dtype is not None and x.is_floating_point()) else x.to(device)

        return IdentityRefs(**{f.name: mv(getattr(self, f.name)) for f in fields(self)})

    def repeat(self, n: int) -> IdentityRefs:
        """Repeat the batch n times (e.g. to stack CFG branches)."""
        def rep(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.repeat(n, *([1] * (x.dim() - 1)))

        return IdentityRefs(**{f.name: rep(getattr(self, f.name)) for f in fields(self)})

    @classmethod
    def from_lists(
        cls,
        video: list[torch.Tensor] | None = None,
        audio: list[torch.Tensor | None] | None = None,
        audio_ref_len: int | None = None,
    ) -> IdentityRefs:
        """Batch of one from per-identity lists: canvases [Cv, H, W] and voices [l, Ca] (None = no voice)."""
        k = len(video) if video is not None else len(audio or [])
        if video is not None and audio is not None and len(audio) != k:
            raise ValueError(f"{len(video)} visual refs but {len(audio)} audio refs: slots must match by index")
        v = torch.stack(video)[None] if video is not None else None
        a = lens = None
        if audio is not None:
            clips = [c for c in audio if c is not None]
            if not clips:
                raise ValueError("audio list has no clip")
            length = audio_ref_len or max(c.shape[0] for c in clips)
            ch = clips[0].shape[1]
            a = clips[0].new_zeros(1, k, length, ch)
            lens = torch.zeros(1, k, dtype=torch.long)
            for i, c in enumerate(audio):
                if c is None:
                    continue
                if c.shape[0] > length:
                    raise ValueError(f"audio ref {i} has {c.shape[0]} latents > L={length}")
                a[0, i, : c.shape[0]] = c
                lens[0, i] = c.shape[0]
        return cls(video=v, audio=a, audio_lens=lens, id_mask=torch.ones(1, k, dtype=torch.bool))


class IdentityEmbedding(nn.Embedding):
    """Shared e_id table [K_max, D] (top-level key `identity_embedding.weight`), init N(0, std)."""

    def __init__(self, k_max: int, dim: int, init_std: float = 0.02):
        super().__init__(k_max, dim)
        self.init_std = init_std
        nn.init.normal_(self.weight, std=init_std)


def grid_shape(n: int, landscape: bool = True) -> tuple[int, int]:
    """(rows, cols) of the dense near-square grid for n views (1..9); transposed for portrait canvases."""
    if n not in _GRIDS:
        raise ValueError(f"pack_multiview supports 1..9 views, got {n}")
    r, c = _GRIDS[n]
    return (r, c) if landscape else (c, r)


def cell_boxes(n: int, H: int, W: int, cell_multiple: int = 32) -> list[tuple[int, int, int, int]]:
    """Pixel boxes (y0, x0, h, w) of the n grid cells; origins and sizes are multiples of cell_multiple."""
    if H % cell_multiple or W % cell_multiple:
        raise ValueError(f"canvas {H}x{W} must be a multiple of {cell_multiple} px")
    rows, cols = grid_shape(n, landscape=W >= H)
    ch = (H // rows) // cell_multiple * cell_multiple
    cw = (W // cols) // cell_multiple * cell_multiple
    if ch == 0 or cw == 0:
        raise ValueError(f"canvas {H}x{W} too small for a {rows}x{cols} grid of {cell_multiple}-px cells")
    oy = (H - rows * ch) // 2 // cell_multiple * cell_multiple
    ox = (W - cols * cw) // 2 // cell_multiple * cell_multiple
    return [(oy + (i // cols) * ch, ox + (i % cols) * cw, ch, cw) for i in range(n)]


def _fit(img: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Aspect-preserving resize of [3, ih, iw] to fit inside h x w."""
    ih, iw = img.shape[-2:]
    s = min(h / ih, w / iw)
    nh, nw = max(1, min(h, math.floor(ih * s + 0.5))), max(1, min(w, math.floor(iw * s + 0.5)))
    if (nh, nw) == (ih, iw):
        return img
    return F.interpolate(img[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]


def pack_multiview(
    images: list[torch.Tensor], H: int, W: int, cell_multiple: int = 32, fill: float = 0.0
) -> torch.Tensor:
    """Pack 1..9 views [3, h, w] into one canvas [3, H, W]: near-square grid, aspect-preserving fit, each
    view centred in its cell; cells are aligned to `cell_multiple` px so no latent token straddles views."""
    if not images:
        raise ValueError("pack_multiview needs at least one image")
    dtype = images[0].dtype if images[0].is_floating_point() else torch.float32
    canvas = torch.full((3, H, W), float(fill), dtype=dtype, device=images[0].device)
    for img, (y0, x0, ch, cw) in zip(images, cell_boxes(len(images), H, W, cell_multiple)):
        if img.dim() != 3 or img.shape[0] != 3:
            raise ValueError(f"each view must be [3, h, w], got {tuple(img.shape)}")
        fitted = _fit(img.to(dtype), ch, cw)
        fh, fw = fitted.shape[-2:]
        dy, dx = (ch - fh) // 2, (cw - fw) // 2
        canvas[:, y0 + dy : y0 + dy + fh, x0 + dx : x0 + dx + fw] = fitted
    return canvas


def compact_rows(
    tokens: torch.Tensor, angles: torch.Tensor, valid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None:
    """Drop invalid rows: tokens [B, N, D], angles [B, N, a], valid [B, N] -> packed to the max valid count
    M (order kept, padding at the end). Returns None when no row is valid; valid=None when none is padded."""
    counts = valid.sum(dim=1)
    m = int(counts.max()) if valid.numel() else 0
    if m == 0:
        return None
    order = torch.argsort((~valid).to(torch.int32), dim=1, stable=True)[:, :m]  # valid rows first, in order
    tok = torch.gather(tokens, 1, order[..., None].expand(-1, -1, tokens.shape[-1]))
    ang = torch.gather(angles.expand(tokens.shape[0], -1, -1), 1, order[..., None].expand(-1, -1, angles.shape[-1]))
    new_valid = torch.arange(m, device=valid.device)[None] < counts[:, None]
    return tok, ang, (None if bool(new_valid.all()) else new_valid)
