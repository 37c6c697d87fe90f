"""Training losses, each a plain function so its value can be checked by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def adversarial_d(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                  aug_logits: torch.Tensor | None = None, aug_mask: torch.Tensor | None = None) -> torch.Tensor:
    """BCE(D(real), 1) + BCE(D(fake), 0) + BCE(D(forged), 0) over frames; `aug_mask` keeps the
    forged frames that were actually altered."""
    loss = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    loss = loss + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    if aug_logits is not None:
        logits = aug_logits if aug_mask is None else aug_logits[aug_mask]
        if logits.numel():
            loss = loss + F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits))
    return loss


def adversarial_g(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator wants its frames called real: BCE(D(fake), 1)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def reconstruction(fake: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return (fake - target).abs().mean()


def feature_matching(f_real: torch.Tensor, f_fake: torch.Tensor) -> torch.Tensor:
    """Mean squared error between discriminator features."""
    return (f_real - f_fake).pow(2).mean()


def temporal_consistency(real: torch.Tensor, fake: torch.Tensor,
                         f_real: torch.Tensor | None = None, f_fake: torch.Tensor | None = None) -> torch.Tensor:
    """MSE between frame differences of fake and real clips (B, T, ...), plus, with features
    (B, T, D), the mean |cos(f_t, f_t+1) of fake - that of real|: the feature trajectories agree."""
    loss = (torch.diff(fake, dim=1) - torch.diff(real, dim=1)).pow(2).mean()
    if f_real is not None and f_fake is not None:
        cos_real = F.cosine_similarity(f_real[:, 1:], f_real[:, :-1], dim=-1)
        cos_fake = F.cosine_similarity(f_fake[:, 1:], f_fake[:, :-1], dim=-1)
        loss = loss + (cos_fake - cos_real).abs().mean()
    return loss


SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Horizontal and vertical Sobel responses of (N, C, H, W), replicate-padded."""
    c = x.shape[1]
    kx = SOBEL_X.to(x)[None, None].expand(c, 1, 3, 3)
    ky = SOBEL_X.t().to(x)[None, None].expand(c, 1, 3, 3)
    p = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return F.conv2d(p, kx, groups=c), F.conv2d(p, ky, groups=c)


def temporal_motion(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """L1 between the Sobel gradients of the frame differences of fake and real (B, T, C, H, W)."""
    dr = torch.diff(real, dim=1).flatten(0, 1)
    df = torch.diff(fake, dim=1).flatten(0, 1)
    gxr, gyr = sobel(dr)
    gxf, gyf = sobel(df)
    return 0.5 * ((gxf - gxr).abs().mean() + (gyf - gyr).abs().mean())


def attention_regularisation(maps: list[torch.Tensor]) -> torch.Tensor:
    """Mean over attention rows of normalised entropy (H / log n) plus Gini impurity (1 - sum p^2),
    n being the keys a row may attend; both are 0 for a one-hot row. Maps are (..., T, T)."""
    if not maps:
        return torch.zeros(())
    terms = []
    for p in maps:
        valid = (p > 0).sum(-1).clamp(min=2).float()
        ent = -(p * p.clamp_min(1e-12).log()).sum(-1) / valid.log()
        gini = 1.0 - p.pow(2).sum(-1)
        terms.append((ent + gini).mean())
    return torch.stack(terms).mean()

