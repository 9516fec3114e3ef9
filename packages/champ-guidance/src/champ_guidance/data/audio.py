"""A synthetic music track: sustained chord tones plus percussive kicks on the beat.

Hand-written because no library synthesises a beat track with known beat times; the WAV is
written with soundfile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

SAMPLE_RATE = 22050


def beat_times(bpm: float, duration: float, offset: float) -> np.ndarray:
    """Beat onsets in seconds: ``offset + k * 60 / bpm`` inside ``[0, duration)``."""
    period = 60.0 / bpm
    return np.arange(offset, duration, period)


def synth_track(
    bpm: float, duration: float, offset: float, rng: np.random.Generator, sr: int = SAMPLE_RATE
) -> tuple[np.ndarray, np.ndarray]:
    """Mono float32 audio in [-1, 1] and its beat times.

    Tones: a chord (root + fifth + octave) that changes every 4 beats. Percussion: a decaying
    low sine sweep (kick) on every beat and a quiet noise burst (hi-hat) half-way between beats, soft enough that beat tracking
    locks onto the kicks.
    """
    n = int(round(duration * sr))
    t = np.arange(n) / sr
    beats = beat_times(bpm, duration, offset)
    period = 60.0 / bpm
    roots = rng.choice([110.0, 130.8, 146.8, 164.8, 196.0], size=max(1, len(beats) // 4 + 2))
    bar = np.clip(((t - offset) // (4 * period)).astype(int) + 1, 0, len(roots) - 1)
    f0 = roots[bar]
    audio = 0.08 * (
        np.sin(2 * np.pi * f0 * t) + np.sin(3 * np.pi * f0 * t) + 0.5 * np.sin(4 * np.pi * f0 * t)
    )
    kick_len = int(0.15 * sr)
    k = np.arange(kick_len) / sr
    kick = np.sin(2 * np.pi * (120 * k - 150 * k**2)) * np.exp(-k / 0.04)
    hat_len = int(0.04 * sr)
    hat = rng.standard_normal(hat_len) * np.exp(-np.arange(hat_len) / sr / 0.01)
    for b in beats:
        i = int(b * sr)
        seg = audio[i : i + kick_len]
        seg += 0.8 * kick[: len(seg)]
        j = int((b + period / 2) * sr)
        seg = audio[j : j + hat_len]
        seg += 0.02 * hat[: len(seg)]
    audio = audio / max(1.0, float(np.abs(audio).max()))
    return audio.astype(np.float32), beats


def write_wav(path: Path, audio: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr)
