"""Spherical projection of KITTI velodyne scans, on point clouds of known geometry."""

from __future__ import annotations

import math

import imageio.v3 as iio
import numpy as np
import pytest

from stdiff.data.formats import load_sequence
from stdiff.data.velodyne import FOV_DOWN_DEG, FOV_UP_DEG, main, project

H, W = 64, 512


def _wall(distance: float, n: int = 400) -> np.ndarray:
    """Dense points of the plane x = distance, within +-40 deg azimuth and the vertical FOV."""
    yaw = np.radians(np.linspace(-40, 40, 4 * n))
    pitch = np.radians(np.linspace(FOV_DOWN_DEG + 0.1, FOV_UP_DEG - 0.1, n))
    yy, pp = np.meshgrid(yaw, pitch)
    x = np.full(yy.shape, distance)
    pts = np.stack([x, x * np.tan(yy), x * np.tan(pp) / np.cos(yy), np.ones_like(x)], -1)
    return pts.reshape(-1, 4).astype(np.float32)


def _pixel_angles():
    up, down = math.radians(FOV_UP_DEG), math.radians(FOV_DOWN_DEG)
    pitch = up - (np.arange(H) + 0.5) / H * (up - down)
    yaw = (1 - 2 * (np.arange(W) + 0.5) / W) * math.pi
    return pitch[:, None], yaw[None, :]


def test_plane_at_known_distance_projects_to_expected_ranges():
    image, mask = project(_wall(10.0), H, W)
    assert image.shape == (H, W) and mask.dtype == bool
    assert mask.all(axis=0)[W // 2 - 50 : W // 2 + 50].all()  # every row sees the wall ahead
    assert not mask[:, :100].any()  # nothing behind the sensor
    pitch, yaw = _pixel_angles()
    expected = 10.0 / (np.cos(yaw) * np.cos(pitch)) * np.ones((H, 1))
    assert np.abs(image[mask] - expected[mask]).max() < 0.15  # within one pixel's extent
    # straight ahead: the column of azimuth 0 and the row of elevation 0
    row0 = int(FOV_UP_DEG / (FOV_UP_DEG - FOV_DOWN_DEG) * H)
    assert image[row0, W // 2] == pytest.approx(10.0, abs=0.02)


def test_nearest_return_wins_and_out_of_fov_is_dropped():
    pts = np.array(
        [[20.0, 0, 0, 1], [5.0, 0, 0, 1], [12.0, 0, 0, 1], [10.0, 0, 5.0, 1]], np.float32
    )  # the last one is 26.6 deg up, above the +2 deg field of view
    image, mask = project(pts, H, W)
    assert mask.sum() == 1 and image.max() == pytest.approx(5.0)


def test_console_script_writes_png_ranges_the_range_format_reads(tmp_path, capsys):
    drive = tmp_path / "2011_09_26_drive_0001_sync/velodyne_points/data"
    drive.mkdir(parents=True)
    for i, d in enumerate((8.0, 9.0)):
        _wall(d, 200).tofile(drive / f"{i:010d}.bin")
    out = tmp_path / "seq/processed/range"
    assert main([str(drive.parents[1]), "-o", str(out)]) == 0
    png = iio.imread(out / "0000000000.png")
    assert png.dtype == np.uint16 and png.shape == (H, W)
    frames = load_sequence(tmp_path / "seq", "range", (H, W), 1, max_range=85.0)
    direct = load_sequence(drive.parents[1], "velodyne", (H, W), 1, max_range=85.0)
    assert frames.shape == direct.shape == (2, 1, H, W)
    assert (frames - direct).abs().max() < 2 / 85 / 256 * 2  # PNG quantisation only
    ahead = (direct[:, 0, 4, W // 2] + 1) / 2 * 85
    assert ahead.tolist() == pytest.approx([8.0, 9.0], abs=0.05)
    (tmp_path / "bad.bin").write_bytes(b"\0" * 10)
    with pytest.raises(SystemExit):
        main([str(tmp_path), "-o", str(tmp_path / "o")])
    assert "not a multiple of 4" in capsys.readouterr().err


def _drives(root, n, frames=7):
    for d in range(n):
        data = root / "2011_09_26" / f"2011_09_26_drive_{d:04d}_sync/velodyne_points/data"
        data.mkdir(parents=True)
        for i in range(frames):
            _wall(6.0 + d + 0.1 * i, 60).tofile(data / f"{i:010d}.bin")


def test_kitti_drives_split_by_upstream_ids_from_root_alone(tmp_path):
    from stdiff.data.datamodule import VideoDataModule

    _drives(tmp_path, 15, frames=1)
    dm = VideoDataModule(str(tmp_path), format="velodyne", image_size=(H, W))
    names = {s: [p.name[-9:-5] for p in dm.sequences(s)] for s in ("train", "val", "test")}
    assert names["test"] == ["0010", "0011", "0012", "0013"]
    assert names["val"] == ["0000", "0001"]
    assert len(names["train"]) == 9 and not set(names["train"]) & set(names["val"] + names["test"])
    small = VideoDataModule(str(tmp_path), format="velodyne", split_ids={"test": [0], "val": [1]})
    assert [p.name[-9:-5] for p in small.sequences("test")] == ["0000"]


def _rgb_sequences(root, n=3, frames=7):
    rng = np.random.default_rng(0)
    for d in range(n):
        seq = root / f"seq_{d}"
        seq.mkdir(parents=True)
        for i in range(frames):
            iio.imwrite(seq / f"{i:03d}.png", rng.integers(0, 255, (16, 64, 3), dtype=np.uint8))


@pytest.mark.parametrize("kind", [pytest.param("velodyne", marks=pytest.mark.slow), "rgb"])
def test_folder_trains_from_data_root_alone(tmp_path, repo_root, monkeypatch, kind):
    """A few training steps of the default model on raw .bin drives (or RGB frame folders with
    data.channels=3): no split folders, nothing about the model changed but its frame size."""
    from motioncore.train import run
    from stdiff.importer import compose_train_config

    if kind == "velodyne":
        _drives(tmp_path / "data", 3)
        data = ["data.format=velodyne"]
    else:
        _rgb_sequences(tmp_path / "data")
        data = ["data.format=frames", "data.channels=3"]
    monkeypatch.setenv("MOTIONCORE_EXPERIMENTS", str(repo_root / "experiments"))
    cfg = compose_train_config(
        [
            "data=folders",
            f"data.root={tmp_path / 'data'}",
            *data,
            "data.image_size=[16,64]",
            "data.batch_size=2",
            "data.num_workers=0",
            "model.STDiff.Diffusion.unet_config.sample_size=[16,64]",
            "model.STDiff.DiffNet.MotionEncoder.image_size=[16,64]",
            "trainer.max_steps=2",
            "test=false",
            "logger=[]",
            f"paths.output_dir={tmp_path / 'run'}",
        ]
    )
    metrics = run(cfg)
    assert np.isfinite(metrics["train/loss"])
