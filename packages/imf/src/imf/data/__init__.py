"""Built-in synthetic clips, real-format clip loaders and the IMF DataModule."""

from imf.data.dataset import ClipPairs, IMFDataModule, to_model_frames, to_uint8
from imf.data.synthetic import SyntheticSpec, generate, render_clip
from imf.data.video_io import find_clips, read_clip, read_frame_folder, read_video, write_video

__all__ = [
    "ClipPairs",
    "IMFDataModule",
    "SyntheticSpec",
    "find_clips",
    "generate",
    "read_clip",
    "read_frame_folder",
    "read_video",
    "render_clip",
    "to_model_frames",
    "to_uint8",
    "write_video",
]
