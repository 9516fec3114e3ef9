"""Per-video-frame music features with librosa (the EDGE / AIST++ baseline recipe).

EDGE (Tseng et al. 2023, ``baseline_features.py``) samples the audio at ``fps * HOP_LENGTH`` so
one STFT hop is one video frame, and stacks onset strength (1), MFCC (20), chroma CENS (12),
onset-peak one-hot (1) and beat one-hot (1) = 35 dims. ``onset`` is the 1-d variant (onset
strength only). Deviation, for a well-scaled encoder input: onset strength is divided by its
track maximum and MFCC/chroma are standardised per track.
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np

HOP_LENGTH = 512
FEATURE_SETS = {"onset": 1, "edge35": 35}


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
    audio_path: Path, fps: float, num_frames: int, feature_set: str = "edge35"
) -> np.ndarray:
    """``[num_frames, D]`` float32 features aligned to the video frames (D = 1 or 35)."""
    dim = feature_dim(feature_set)
    sr = int(round(fps * HOP_LENGTH))
    y, _ = librosa.load(str(audio_path), sr=sr, mono=True)
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
