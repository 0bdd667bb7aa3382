"""Test clips made from photos: a virtual camera pans or zooms over a photo, so that motion and true colours are
known. Clips of held-out photos, joined one after another, also give scene cuts."""

import cv2
import numpy as np

CAMERA_MOVES = ("pan", "zoom", "pan-zoom")
CROP_FRACTION = 0.75  # the camera sees this fraction of the photo's width and height at the widest


def camera_move(photo: np.ndarray, move: str = "pan", num_frames: int = 36) -> list[np.ndarray]:
    """Frames (h, w, 3) uint8 of a camera moving over ``photo`` (H, W, 3) uint8, each the size of the widest view
    (``CROP_FRACTION`` of the photo, even sides): ``"pan"`` left to right, ``"zoom"`` in to 1.5x, ``"pan-zoom"``
    both at once. Sub-pixel motion, bilinear resampling."""
    if move not in CAMERA_MOVES:
        raise ValueError(f"move must be one of {CAMERA_MOVES}, got '{move}'.")
    height, width = photo.shape[:2]
    out_h, out_w = (int(height * CROP_FRACTION) // 2) * 2, (int(width * CROP_FRACTION) // 2) * 2
    frames = []
    for t in np.linspace(0.0, 1.0, num_frames):
        zoom = 1.0 + 0.5 * t if move in ("zoom", "pan-zoom") else 1.0
        view_w, view_h = out_w / zoom, out_h / zoom
        free_x, free_y = width - view_w, height - view_h
        x0 = free_x * (t if move != "zoom" else 0.5)
        y0 = free_y * (0.5 + (0.2 * (t - 0.5) if move == "pan-zoom" else 0.0))
        scale = 1.0 / zoom
        matrix = np.array([[scale, 0, x0], [0, scale, y0]], dtype=np.float64)  # output pixel -> photo pixel
        frames.append(cv2.warpAffine(photo, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_REFLECT))
    return frames
