"""Optical flow between gray frames (OpenCV's DIS or Farneback), where it can be trusted, and warping along it.

Used by `VideoColorizationPipeline` to carry one frame's colours to the next (DIS), and by the video metrics
(warping error) to compare consecutive frames (Farneback by default: a flow the pipeline does not use, so that a
method cannot look steady merely by following the same flow errors the metric makes; DIS as a second check).
A flow here is *backward*: for each pixel x of the target frame, where it came from in the source frame, so that
``warp(source, flow)(x) = source(x + flow(x)) ≈ target(x)``.
"""

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# The forward-backward check (Sundaram et al. 2010, as Lai et al. 2018 use it for the warping error): a pixel whose
# flow and the reverse flow at its destination do not cancel out to within this is occluded or mismatched.
CONSISTENCY_ALPHA = 0.01
CONSISTENCY_BETA = 0.5


def dis_flow(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Backward flow (H, W, 2), in pixels (x, y), of 8-bit gray ``target`` (H, W) from ``source`` (H, W):
    ``target(x) ≈ source(x + flow(x))``. OpenCV's DIS optical flow, medium preset."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(np.ascontiguousarray(target), np.ascontiguousarray(source), None)


def farneback_flow(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Backward flow (H, W, 2) of 8-bit gray ``target`` from ``source``, as `dis_flow`, by OpenCV's Farneback
    (5 levels, 15 px windows)."""
    return cv2.calcOpticalFlowFarneback(np.ascontiguousarray(target), np.ascontiguousarray(source), None,
                                        pyr_scale=0.5, levels=5, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


FLOW_ESTIMATORS = {"dis": dis_flow, "farneback": farneback_flow}


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` (N, C, H, W) sampled at x + ``flow`` (N, 2, H, W; pixels, x then y) with bilinear interpolation;
    points outside the image take the nearest border value."""
    _, _, height, width = image.shape
    ys, xs = torch.meshgrid(torch.arange(height, dtype=flow.dtype), torch.arange(width, dtype=flow.dtype), indexing="ij")
    x = (xs + flow[:, 0]) * (2 / max(width - 1, 1)) - 1
    y = (ys + flow[:, 1]) * (2 / max(height - 1, 1)) - 1
    grid = torch.stack([x, y], dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def consistent(flow: np.ndarray, reverse: np.ndarray) -> np.ndarray:
    """Boolean (H, W): where backward ``flow`` (target from source) and ``reverse`` (source from target) agree
    and x + flow(x) lands inside the frame; False marks pixels occluded in (or outside) the source."""
    height, width = flow.shape[:2]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]
    back = cv2.remap(reverse, map_x, map_y, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    mismatch = ((flow + back) ** 2).sum(-1)
    scale = (flow**2).sum(-1) + (back**2).sum(-1)
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    return inside & (mismatch <= CONSISTENCY_ALPHA * scale + CONSISTENCY_BETA)


def flow_with_confidence(target: np.ndarray, source: np.ndarray, estimator: str = "dis") -> tuple[np.ndarray, np.ndarray]:
    """Backward flow (H, W, 2) of gray ``target`` from ``source`` (8-bit, (H, W)) by ``estimator`` (a key of
    `FLOW_ESTIMATORS`) and its forward-backward consistency mask (H, W), True where the source's colour can be
    carried to the target."""
    estimate = FLOW_ESTIMATORS[estimator]
    flow = estimate(target, source)
    return flow, consistent(flow, estimate(source, target))


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """A flow (H, W, 2) in pixels as a tensor (1, 2, h, w) at ``size`` (h, w), its vectors rescaled to that grid
    (area-averaged when shrinking)."""
    height, width = flow.shape[:2]
    resized = cv2.resize(flow, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    resized = resized * np.array([size[1] / width, size[0] / height], dtype=np.float32)
    return torch.from_numpy(resized).permute(2, 0, 1)[None]
