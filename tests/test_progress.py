"""Progress output: Keras-style lines per epoch, verbose levels, number formats."""

import io
import re

import jax
import numpy as np

import fnnet
from fnnet.training.progress import Progress, format_seconds, format_step_time, format_value

MODEL = fnnet.Dense(1)
PARAMS = MODEL.init(jax.random.PRNGKey(0), (-1, 2))[1]
X = np.linspace(-1, 1, 40, dtype=np.float32).reshape(20, 2)
Y = X[:, :1] - X[:, 1:]
FIT = dict(loss="mse", optimizer="sgd", epochs=3, batch_size=8, validation_split=0.2, metrics=["mae"])


def test_verbose_1_prints_one_keras_line_per_epoch(capsys):
    fnnet.fit(MODEL, PARAMS, X, Y, verbose=1, **FIT)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    pattern = (r"Epoch (\d)/3  2/2 \[={30}\] \d+(\.\d)?m?s \d+[mu]s/step - loss: \d+\.\d{4} - mae: \d+\.\d{4}"
               r" - val_loss: \d+\.\d{4} - val_mae: \d+\.\d{4}$")
    assert [re.match(pattern, line).group(1) for line in lines] == ["1", "2", "3"]


def test_verbose_2_drops_the_bar_and_verbose_0_is_silent(capsys):
    fnnet.fit(MODEL, PARAMS, X, Y, verbose=2, **FIT)
    out = capsys.readouterr().out
    assert out.count("\n") == 3 and "[" not in out and "Epoch 2/3  2/2 " in out
    fnnet.fit(MODEL, PARAMS, X, Y, verbose=0, **FIT)
    assert capsys.readouterr().out == ""


def test_callback_messages_follow_verbose(capsys):
    reduce = fnnet.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=1e9)
    fnnet.fit(MODEL, PARAMS, X, Y, verbose=2, callbacks=[reduce], **FIT)
    assert "ReduceLROnPlateau scales the learning rate by 0.25" in capsys.readouterr().out


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_live_bar_on_a_terminal_redraws_in_place():
    out = FakeTerminal()
    progress = Progress(epochs=2, steps=10, verbose=1, stream=out)
    progress.update(0, 4, 0.2, {"loss": 1.5})
    progress.end_epoch(0, {"loss": 1.25}, 0.5)
    text = out.getvalue()
    assert text.startswith("\rEpoch 1/2  4/10 [============>.................] ETA 0.3s - loss: 1.5000")
    assert text.endswith("\rEpoch 1/2  10/10 [==============================] 0.5s 50ms/step - loss: 1.2500\n")
    plain = io.StringIO()
    Progress(epochs=2, steps=10, verbose=1, stream=plain).update(0, 4, 0.2, {"loss": 1.5})
    assert plain.getvalue() == ""  # logs and notebooks get only the final line


def test_number_formats():
    assert format_value(0.0123456) == "0.0123"
    assert format_value(2.5e-7) == "2.5000e-07"
    assert format_value(float("nan")) == "nan"
    assert format_seconds(0.004) == "4ms" and format_seconds(3.21) == "3.2s" and format_seconds(61) == "1m 01s"
    assert format_step_time(0.0123) == "12ms/step" and format_step_time(2e-5) == "20us/step"


def test_long_epochs_on_a_terminal_run_in_chunks_with_the_same_history(monkeypatch):
    from fnnet.training import loop
    monkeypatch.setattr(loop, "MIN_CHUNK_STEPS", 2)  # 10 steps of 2 rows: chunks of 2, a live bar
    quiet = fnnet.fit(MODEL, PARAMS, X, Y, loss="mse", optimizer="sgd", epochs=2, batch_size=2, verbose=0)
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stdout", terminal)
    live = fnnet.fit(MODEL, PARAMS, X, Y, loss="mse", optimizer="sgd", epochs=2, batch_size=2, verbose=1)
    np.testing.assert_allclose(live.history["loss"], quiet.history["loss"], rtol=1e-6)
    text = terminal.getvalue()
    assert "\rEpoch 1/2  2/10 [" in text and "\rEpoch 2/2  8/10 [" in text
    assert text.count("\n") == 2
