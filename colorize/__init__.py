"""colorize: diffusion-based colorization of grayscale photos, built on 🤗 diffusers."""

from .pipeline_colorization import ColorizationPipeline, ColorizationPipelineOutput

__version__ = "0.1.0"
__all__ = ["ColorizationPipeline", "ColorizationPipelineOutput", "__version__"]
