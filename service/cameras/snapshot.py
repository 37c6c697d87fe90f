"""A camera's latest frame with its anomaly map blended over it, as JPEG."""

from __future__ import annotations

import cv2
import numpy as np


def render_snapshot(image: np.ndarray, heatmap: np.ndarray | None, scale: float, quality: int = 85) -> bytes:
    """image: (H, W) grey or (H, W, 3) RGB uint8; heatmap: (h, w) local error, shown relative to `scale` (the
    typical peak error on normal footage: the camera's own once calibrated, else the checkpoint's rec_scale):
    transparent up to half of it, full colour from twice it."""
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if heatmap is not None:
        h, w = bgr.shape[:2]
        level = np.clip(heatmap.astype(np.float32) / (2.0 * max(scale, 1e-12)), 0.0, 1.0)
        level = cv2.resize(level, (w, h), interpolation=cv2.INTER_LINEAR)
        colour = cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET).astype(np.float32)
        alpha = (0.7 * np.clip((level - 0.25) / 0.75, 0.0, 1.0))[..., None]  # typical error stays clear
        bgr = (bgr.astype(np.float32) * (1 - alpha) + colour * alpha).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()
