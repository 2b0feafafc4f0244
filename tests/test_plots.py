"""plot_history: a PNG of loss and metrics per epoch."""

import struct
import sys

import pytest

import fnnet

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


def test_writes_a_png_with_one_subplot_per_quantity(tmp_path):
    pytest.importorskip("matplotlib")
    history = {"loss": [1.0, 0.6, 0.4, 0.3], "val_loss": [1.1, 0.8, 0.7, 0.7],
               "mae": [0.9, 0.7, 0.5, 0.45], "val_mae": [1.0, 0.8, 0.7, 0.6]}
    one = fnnet.plot_history({"loss": history["loss"]}, tmp_path / "one.png")
    path = fnnet.plot_history(history, tmp_path / "plots" / "history.png", title="House prices")
    assert path == tmp_path / "plots" / "history.png"
    assert path.stat().st_size > 5000
    width_one, _ = _png_size(one)
    width_two, height_two = _png_size(path)
    assert width_two > width_one and height_two > 100  # loss and mae side by side


def test_accepts_an_object_with_a_history_dict(tmp_path):
    pytest.importorskip("matplotlib")

    class Result:
        history = {"loss": [0.5, 0.25], "accuracy": [0.6, 0.8], "lr": [1e-3, 1e-4]}

    path = fnnet.plot_history(Result(), tmp_path / "h.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_bad_history_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="non-empty dict"):
        fnnet.plot_history({}, tmp_path / "h.png")
    pytest.importorskip("matplotlib")
    with pytest.raises(ValueError, match="'val_loss'"):
        fnnet.plot_history({"loss": [1.0], "val_loss": [[1.0, 2.0]]}, tmp_path / "h.png")


def test_missing_matplotlib_names_the_extra(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.ticker"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail as if not installed
    with pytest.raises(ImportError, match=r"pip install fnnet\[plots\]"):
        fnnet.plot_history({"loss": [1.0]}, tmp_path / "h.png")
    assert not (tmp_path / "h.png").exists()
