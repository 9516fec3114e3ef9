"""KITTI velodyne point clouds -> range images by spherical projection.

A KITTI ``velodyne_points/data/%010d.bin`` holds float32 ``(x, y, z, reflectance)`` rows in the
sensor frame (x forward, y left, z up). Each point goes to the pixel of its azimuth and elevation:

    r     = |(x, y, z)|
    yaw   = atan2(y, x)                         column = (1 - yaw / pi) / 2 * W
    pitch = asin(z / r)                         row    = (fov_up - pitch) / (fov_up - fov_down) * H

with the Velodyne HDL-64E's vertical field of view, +2 to -24.8 degrees, at 64 x 512 by default.
Where several points fall into one pixel the nearest return is kept; points outside the vertical
field of view are dropped; pixels without a return are 0 (the ``range`` format's "no return").

``stdiff-velodyne SRC -o OUT`` writes one 16-bit PNG per scan (metres * png_scale, the KITTI depth
convention ``data.format=range`` reads); ``data.format=velodyne`` projects ``.bin`` files while
loading instead.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

FOV_UP_DEG, FOV_DOWN_DEG = 2.0, -24.8


def read_bin(path: Path) -> np.ndarray:
    """[N, 4] float32 (x, y, z, reflectance) of one KITTI scan."""
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % 4:
        raise ValueError(
            f"{path} has {raw.size} float32 values, not a multiple of 4: not a KITTI velodyne "
            "scan (float32 x, y, z, reflectance per point)"
        )
    return raw.reshape(-1, 4)


def project(
    points: np.ndarray,
    height: int = 64,
    width: int = 512,
    fov_up: float = FOV_UP_DEG,
    fov_down: float = FOV_DOWN_DEG,
) -> tuple[np.ndarray, np.ndarray]:
    """Points [N, >=3] -> (range [H, W] in metres, 0 = no return; validity mask [H, W] bool)."""
    if fov_up <= fov_down:
        raise ValueError(f"fov_up={fov_up} must exceed fov_down={fov_down} (degrees)")
    xyz = np.asarray(points, dtype=np.float64)[:, :3]
    r = np.linalg.norm(xyz, axis=1)
    keep = np.isfinite(r) & (r > 0)
    xyz, r = xyz[keep], r[keep]
    yaw = np.arctan2(xyz[:, 1], xyz[:, 0])
    pitch = np.arcsin(np.clip(xyz[:, 2] / r, -1.0, 1.0))
    up, down = math.radians(fov_up), math.radians(fov_down)
    row = np.floor((up - pitch) / (up - down) * height).astype(np.int64)
    col = np.floor((1.0 - yaw / math.pi) / 2.0 * width).astype(np.int64) % width
    inside = (row >= 0) & (row < height)
    row, col, r = row[inside], col[inside], r[inside]
    order = np.argsort(-r)  # far first, so the nearest return is written last and wins
    image = np.zeros((height, width), np.float32)
    image[row[order], col[order]] = r[order]
    return image, image > 0


def scan_files(src: Path) -> list[Path]:
    """``.bin`` scans of a drive folder (``velodyne_points/data/``) or of ``src`` itself."""
    folder = src / "velodyne_points" / "data"
    folder = folder if folder.is_dir() else src
    return sorted(folder.glob("*.bin")) if folder.is_dir() else []


def convert(src: Path, out: Path, height: int, width: int, png_scale: float) -> list[Path]:
    import imageio.v3 as iio

    files = scan_files(src)
    if not files:
        raise FileNotFoundError(f"no .bin scans in {src} (or {src}/velodyne_points/data)")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in files:
        image, _ = project(read_bin(path), height, width)
        target = out / f"{path.stem}.png"
        iio.imwrite(target, np.clip(np.round(image * png_scale), 0, 65535).astype(np.uint16))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="stdiff-velodyne",
        description="KITTI velodyne .bin scans -> 16-bit PNG range images (metres * png_scale).",
    )
    parser.add_argument("src", type=Path, help="folder of .bin scans or a KITTI <drive>_sync")
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--png-scale", type=float, default=256.0)
    args = parser.parse_args(argv)
    if args.height < 1 or args.width < 1 or args.png_scale <= 0:
        parser.error("--height and --width must be >= 1 and --png-scale > 0")
    try:
        written = convert(args.src, args.output, args.height, args.width, args.png_scale)
    except (FileNotFoundError, ValueError) as e:
        parser.exit(2, f"stdiff-velodyne: error: {e}\n")
    print(f"wrote {len(written)} range images to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
