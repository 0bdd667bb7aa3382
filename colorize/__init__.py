"""colorize: diffusion-based colorization of grayscale photos, built on 🤗 diffusers."""

from .image_encoder import ImageEncoder
from .pipeline_colorization import ColorizationPipeline, ColorizationPipelineOutput
from .pipeline_video_colorization import VideoColorizationPipeline, VideoColorizationPipelineOutput

__version__ = "0.1.0"
__all__ = [
    "ColorizationPipeline",
    "ColorizationPipelineOutput",
    "ImageEncoder",
    "VideoColorizationPipeline",
    "VideoColorizationPipelineOutput",
    "__version__",
]
