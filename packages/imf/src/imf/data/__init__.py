"""Built-in synthetic clips, real-format clip loaders and the IMF DataModule."""

from imf.data.dataset import ClipPairs, IMFDataModule, to_model_frames
from imf.data.synthetic import SyntheticSpec, generate, render_clip
from imf.data.video_io import find_clips, read_clip, read_frame_folder

__all__ = [
    "ClipPairs",
    "IMFDataModule",
    "SyntheticSpec",
    "find_clips",
    "generate",
    "read_clip",
    "read_frame_folder",
    "render_clip",
    "to_model_frames",
]
