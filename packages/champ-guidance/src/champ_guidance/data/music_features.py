"""Per-video-frame music features with librosa (the EDGE / AIST++ baseline recipe).

EDGE (Tseng et al. 2023, ``baseline_features.py``) samples the audio at ``fps * HOP_LENGTH`` so
one STFT hop is one video frame, and stacks onset strength (1), MFCC (20), chroma CENS (12),
onset-peak one-hot (1) and beat one-hot (1) = 35 dims. ``onset`` is the 1-d variant (onset
strength only). Deviation, for a well-scaled encoder input: onset strength is divided by its
track maximum and MFCC/chroma are standardised per track.

librosa JIT-compiles with numba's on-disk cache, by default beside librosa's own files; two
processes writing it at once (two preparations, or a preparation next to a training run that
builds its data) crashed one of them. Each process that imports this module therefore compiles
into its own temporary cache folder (``NUMBA_CACHE_DIR``, removed at exit). This must happen
before numba's first import, so import librosa through this module.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np


def private_numba_cache() -> str:
    """Point numba's cache at a fresh folder owned by this process (see the module docstring)."""
    path = tempfile.mkdtemp(prefix=f"numba-cache-{os.getpid()}-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    os.environ["NUMBA_CACHE_DIR"] = path
    if "numba.core.config" in sys.modules:  # already imported: re-read the environment
        sys.modules["numba.core.config"].reload_config()
    return path


NUMBA_CACHE_DIR = private_numba_cache()

import librosa  # noqa: E402  (after the cache folder is set)

HOP_LENGTH = 512
FEATURE_SETS = {"onset": 1, "edge35": 35}
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")


class AudioError(ValueError):
    """An audio (or video) file that cannot give a sound track; the message names it."""


def _extract_audio_track(video: Path, wav: Path, sr: int) -> None:
    """The video's first audio stream as a mono WAV at ``sr`` (imageio-ffmpeg's ffmpeg)."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-y", "-i"]
    cmd += [str(video), "-vn", "-map", "0:a:0", "-ac", "1", "-ar", str(sr), str(wav)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        detail = result.stderr.strip().splitlines()[-1:] or ["ffmpeg failed"]
        if "matches no streams" in result.stderr:
            raise AudioError(
                f"{video} is a video without an audio track; pass the song's audio file "
                "(.wav/.mp3/.flac/.ogg) instead"
            )
        raise AudioError(f"cannot extract the audio track of {video}: {detail[0]}")


def load_audio(path: Path, sr: int) -> np.ndarray:
    """Mono float audio at ``sr`` from an audio file, or from the audio track of a video."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"audio file {path} does not exist")
    if path.suffix.lower() in VIDEO_SUFFIXES:
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "track.wav"
            _extract_audio_track(path, wav, sr)
            return load_audio(wav, sr)
    try:
        y, _ = librosa.load(str(path), sr=sr, mono=True)
    except Exception as e:  # soundfile / audioread raise many types (NoBackendError, ...)
        raise AudioError(
            f"{path} cannot be decoded as audio ({type(e).__name__}: {e}); convert it to WAV, "
            "e.g. ffmpeg -i <file> song.wav"
        ) from e
    if y.size == 0:
        raise AudioError(f"{path} holds no audio samples")
    return y


def check_fps(fps: float) -> float:
    fps = float(fps)
    if not np.isfinite(fps) or fps <= 0:
        raise AudioError(f"fps={fps} must be a positive frame rate (e.g. 10 or 30)")
    return fps


def feature_dim(feature_set: str) -> int:
    if feature_set not in FEATURE_SETS:
        raise ValueError(
            f"feature_set={feature_set!r} is unknown; use one of {sorted(FEATURE_SETS)}"
        )
    return FEATURE_SETS[feature_set]


def _fit(x: np.ndarray, num_frames: int) -> np.ndarray:
    """Trim or edge-pad the time axis (last) to ``num_frames``."""
    if x.shape[-1] >= num_frames:
        return x[..., :num_frames]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, num_frames - x.shape[-1])], mode="edge")


def music_features(
    audio_path: Path, fps: float, num_frames: int | None = None, feature_set: str = "edge35"
) -> np.ndarray:
    """``[num_frames, D]`` float32 features aligned to the video frames (D = 1 or 35).

    ``num_frames=None``: as many frames as the track lasts at ``fps``."""
    dim = feature_dim(feature_set)
    sr = int(round(check_fps(fps) * HOP_LENGTH))
    y = load_audio(audio_path, sr)
    if num_frames is None:
        num_frames = max(1, int(len(y) / sr * fps))
    if num_frames <= 0:
        raise AudioError(f"num_frames={num_frames} must be positive")
    onset = librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP_LENGTH)
    onset_norm = onset / max(float(onset.max()), 1e-8)
    if dim == 1:
        return _fit(onset_norm[None], num_frames).T.astype(np.float32)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20, hop_length=HOP_LENGTH)
    # chroma_cens' default 7 octaves from C1 exceed Nyquist below 30 fps; keep the octaves that fit.
    n_octaves = min(7, int(np.floor(np.log2(sr / 2 / librosa.note_to_hz("C1")))) - 1)
    chroma = librosa.feature.chroma_cens(
        y=y, sr=sr, hop_length=HOP_LENGTH, n_chroma=12, n_octaves=n_octaves
    )
    peaks = np.zeros_like(onset)
    peaks[librosa.onset.onset_detect(onset_envelope=onset, sr=sr, hop_length=HOP_LENGTH)] = 1.0
    beats = np.zeros_like(onset)
    _, beat_idx = librosa.beat.beat_track(
        onset_envelope=onset, sr=sr, hop_length=HOP_LENGTH, start_bpm=120.0, tightness=100
    )
    beats[beat_idx] = 1.0
    length = min(onset.shape[-1], mfcc.shape[-1], chroma.shape[-1])

    def standardise(x: np.ndarray) -> np.ndarray:
        x = x[:, :length]
        return (x - x.mean(1, keepdims=True)) / (x.std(1, keepdims=True) + 1e-6)

    stacked = np.concatenate(
        [
            onset_norm[None, :length],
            standardise(mfcc),
            standardise(chroma),
            peaks[None, :length],
            beats[None, :length],
        ],
        axis=0,
    )
    return _fit(stacked, num_frames).T.astype(np.float32)


def music_beat_frames(onset_envelope: np.ndarray, fps: float) -> np.ndarray:
    """Beat frame indices tracked on an onset envelope sampled at the video frame rate.

    Every feature set keeps onset strength in channel 0, so beats come from the guidance itself.
    """
    sr = int(round(fps * HOP_LENGTH))
    _, beats = librosa.beat.beat_track(
        onset_envelope=np.asarray(onset_envelope, dtype=np.float64),
        sr=sr,
        hop_length=HOP_LENGTH,
        start_bpm=120.0,
        tightness=100,
    )
    return np.asarray(beats, dtype=np.int64)


def write_feature_frames(features: np.ndarray, folder: Path) -> list[Path]:
    """One ``frame_XXX.npy`` of shape ``(feature_dim,)`` per video frame."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, row in enumerate(features):
        path = folder / f"frame_{i:03d}.npy"
        np.save(path, row)
        paths.append(path)
    return paths
