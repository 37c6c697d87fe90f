"""A memory of normal patterns: patch features of the training footage, kept as a bank, and the distance of each
patch of a frame to its nearest normal neighbour (the `mem` cue).

The features are the generator's skip features at one level of the U-Net (after channel selection between the
bands and the temporal module), averaged over patches of about `score_patch` pixels. What training never showed, a
foreign object, a vehicle among walkers, is far from every patch in the bank whatever the decoder can copy through
its skips; what it showed is near one. The bank is a greedy k-centre coreset of the training patches: it covers the
rare normal patterns as well as the common ones, which a random sample of the same size would leave out.

With `memory_grey`, the memory also keeps each patch's grey levels (pixel_patches), chosen as a coreset of their
own and stored beside the features, row by row, and the distance to the nearest of them is a cue of its own
(`grey`, with its own unit and weight): the learned features are made to predict the scene, not to tell a dark
box from a walker moving the same way, and grey levels are blind to a walker going the wrong way."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MEMORY_LEVEL = 1  # U-Net level whose skip features are remembered (level l is 2^(l+1) times smaller)
CANDIDATES = 200_000  # training patches the coreset is chosen from (a random sample of them when there are more)
CPU_CHUNK = 64  # features a matrix product of the memory search takes on a CPU: 64 x 4096 distances, 1 MB, stay in
# a core's cache for their minimum (against 256: 0.87x the time in ONNX Runtime, 0.94x in torch; docs/benchmarks.md)
GPU_CHUNK = 256  # elsewhere (a GPU), as before: fewer, larger products, fewer launches (not measured on a GPU)
MAX_PATCHES = 1_000_000  # patches of the training footage held at once to draw them from (a share of each frame's)


def patch_features(skip: torch.Tensor, level: int, patch: int) -> torch.Tensor:
    """(B, T, C, h, w) skip features of level `level` -> (B, T, h', w', C): averaged over cells that cover about
    `patch` pixels of the input (stride one cell)."""
    cells = max(1, min(patch >> (level + 1), *skip.shape[-2:]))
    pooled = F.avg_pool2d(skip.flatten(0, 1).float(), cells, stride=1)
    return pooled.unflatten(0, skip.shape[:2]).permute(0, 1, 3, 4, 2)


def _cells(level: int, patch: int, hw: tuple[int, int]) -> int:
    """Cells of level `level` that patch_features averages over for patches of about `patch` pixels."""
    return max(1, min(patch >> (level + 1), hw[0] >> (level + 1), hw[1] >> (level + 1)))


def pixel_patches(frames: torch.Tensor, level: int, patch: int) -> torch.Tensor:
    """(B, T, C, H, W) model input frames -> (B, T, h', w', C * (2 * cells)^2): the grey levels of the patch that
    patch_features averages at level `level`, each the mean of a 2^level square of pixels, so that a patch darker,
    brighter or of another pattern than any the memory holds is far from it whatever the learned features say."""
    b, t = frames.shape[:2]
    cells = _cells(level, patch, frames.shape[-2:])
    small = frames.flatten(0, 1).float()
    small = F.avg_pool2d(small, 2 ** level) if level else small
    cols = F.unfold(small, 2 * cells, stride=2)  # (B*T, C*(2 cells)^2, h' * w')
    hh, ww = (small.shape[-2] - 2 * cells) // 2 + 1, (small.shape[-1] - 2 * cells) // 2 + 1
    return cols.unflatten(0, (b, t)).unflatten(-1, (hh, ww)).permute(0, 1, 3, 4, 2)


def pixel_width(nc: int, level: int, patch: int, hw: tuple[int, int]) -> int:
    """The length of pixel_patches' vectors for `nc`-channel frames of size `hw`."""
    return nc * (2 * _cells(level, patch, hw)) ** 2


def nearest_distance(features: torch.Tensor, bank: torch.Tensor, chunk: int | None = None) -> torch.Tensor:
    """(..., C) features -> (...) Euclidean distance of each to its nearest row of `bank` (K, C). Computed as
    min_k(|m_k|^2 - 2 q.m_k) + |q|^2 in one matrix product per chunk of `chunk` features: by default, on a CPU, few
    enough for their distances to stay in a core's cache for the minimum (CPU_CHUNK), elsewhere GPU_CHUNK."""
    if chunk is None:
        chunk = CPU_CHUNK if features.device.type == "cpu" else GPU_CHUNK
    flat = features.reshape(-1, features.shape[-1]).float()
    bank = bank.to(flat.device, torch.float32)
    b2, bt = bank.pow(2).sum(1), bank.T
    out = [torch.addmm(b2, flat[a:a + chunk], bt, alpha=-2).amin(1) for a in range(0, len(flat), chunk)]
    if not out:
        return flat.new_zeros(features.shape[:-1])
    return (torch.cat(out) + flat.pow(2).sum(1)).clamp_min(0).sqrt().reshape(features.shape[:-1])


def coreset(features: torch.Tensor, size: int, seed: int = 0, parts: tuple[int, ...] | None = None) -> torch.Tensor:
    """(N, C) -> (min(size, N), C): greedy k-centre selection (each pick the feature farthest from those picked).
    With `parts` (widths of the column groups, summing to C), each group is chosen on its own and their rows are
    stored side by side (row i of one group has nothing to do with row i of another)."""
    if parts is not None and len(parts) > 1:
        return torch.cat([coreset(c, size, seed) for c in features.split(list(parts), dim=1)], 1)
    g = torch.Generator().manual_seed(seed)
    features = features.float()
    if len(features) > CANDIDATES:
        features = features[torch.randperm(len(features), generator=g)[:CANDIDATES]]
    if len(features) <= size:
        return features.clone()
    picked = [int(torch.randint(len(features), (), generator=g))]
    # squared distances as |x|^2 - 2 x.y + |y|^2: one matrix-vector product a pick, with no (N, C) temporary
    # (13 times faster than subtracting at 50 000 candidates of 32 features, the same picks)
    sq = features.pow(2).sum(1)
    dist = torch.addmv(sq, features, features[picked[0]], alpha=-2).add_(sq[picked[0]])
    new = torch.empty_like(dist)
    for _ in range(size - 1):
        k = int(dist.argmax())
        picked.append(k)
        torch.minimum(dist, torch.addmv(sq, features, features[k], alpha=-2, out=new).add_(sq[k]), out=dist)
    return features[picked].clone()
