"""Callbacks: early stopping with restore, checkpoints, learning-rate reduction, CSV, user protocol."""

import csv

import jax
import numpy as np
import optax
import pytest

import fnnet

MODEL = fnnet.serial(fnnet.Dense(8), fnnet.Tanh, fnnet.Dense(1))
SGD = optax.sgd(0.05)


def data(n=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).astype(np.float32)
    return x, (x[:, :1] * x[:, 1:] + 0.3 * rng.normal(size=(n, 1))).astype(np.float32)


PARAMS = MODEL.init(jax.random.PRNGKey(0), (-1, 2))[1]
X, Y = data()
X_VAL, Y_VAL = data(20, seed=1)
FIT = dict(loss="mse", optimizer="adam", batch_size=16, validation_data=(X_VAL, Y_VAL), verbose=0)


def test_user_function_callbacks_get_logs_and_params_and_can_stop():
    seen = []

    def stop_at_third(epoch, logs, params):
        seen.append((epoch, sorted(logs), params))
        return epoch == 2

    result = fnnet.fit(MODEL, PARAMS, X, Y, epochs=10, callbacks=[stop_at_third], **FIT)
    assert [s[0] for s in seen] == [0, 1, 2]
    assert seen[0][1] == ["loss", "val_loss"]
    assert len(result.history["loss"]) == 3
    # Params handed to callbacks stay valid (never donated) after later epochs.
    assert not np.array_equal(np.asarray(seen[0][2]["dense"]["kernel"]), np.asarray(seen[2][2]["dense"]["kernel"]))


def test_early_stopping_stops_and_restores_the_best_params():
    stop = fnnet.EarlyStopping(monitor="val_loss", patience=2)
    result = fnnet.fit(MODEL, PARAMS, X, Y, epochs=60, optimizer=optax.adam(0.3),
                       callbacks=[stop], **{k: v for k, v in FIT.items() if k != "optimizer"})
    history = result.history["val_loss"]
    assert len(history) < 60 and stop.stopped_epoch == len(history) - 1
    best = int(np.argmin(history))
    assert stop.best_epoch == best and len(history) - 1 - best == 2
    restored = fnnet.evaluate(MODEL, result.params, X_VAL, Y_VAL, loss="mse")["loss"]
    assert restored == pytest.approx(history[best], rel=1e-5)


def test_early_stopping_on_a_missing_key_names_what_is_logged():
    with pytest.raises(ValueError, match=r"monitors 'val_los', which fit does not log; logged: \['loss', 'val_loss'\]"):
        fnnet.fit(MODEL, PARAMS, X, Y, epochs=1, callbacks=[fnnet.EarlyStopping(monitor="val_los")], **FIT)


def test_model_checkpoint_every_epoch_and_best_only(tmp_path):
    every = fnnet.ModelCheckpoint(tmp_path / "e{epoch:02d}.ckpt")
    best = fnnet.ModelCheckpoint(tmp_path / "best.ckpt", save_best_only=True)
    result = fnnet.fit(MODEL, PARAMS, X, Y, epochs=4, callbacks=[every, best], **FIT)
    assert sorted(p.name for p in tmp_path.glob("e*.ckpt")) == ["e01.ckpt", "e02.ckpt", "e03.ckpt", "e04.ckpt"]
    last = fnnet.load_checkpoint(tmp_path / "e04.ckpt")
    assert int(last["epoch"]) == 4 and list(last["history"]["val_loss"]) == result.history["val_loss"]
    np.testing.assert_array_equal(last["params"]["dense"]["kernel"], result.params["dense"]["kernel"])
    val = result.history["val_loss"]
    improvements = sum(v < min(val[:i], default=np.inf) for i, v in enumerate(val))
    assert len(best.saved) == improvements
    saved = fnnet.load_checkpoint(tmp_path / "best.ckpt")
    assert float(saved["history"]["val_loss"][-1]) == min(val)


def test_reduce_lr_on_plateau_scales_the_updates():
    frozen_after_first = fnnet.ReduceLROnPlateau(monitor="loss", factor=1e-12, patience=0, min_delta=1e9)
    snapshots = []
    result = fnnet.fit(MODEL, PARAMS, X, Y, epochs=3, optimizer=SGD,
                       callbacks=[frozen_after_first, lambda e, logs, p: snapshots.append(p)],
                       **{k: v for k, v in FIT.items() if k != "optimizer"})
    first, second, third = (np.asarray(p["dense"]["kernel"]) for p in snapshots)
    moved = np.abs(first - np.asarray(PARAMS["dense"]["kernel"])).max()
    assert moved > 1e-4
    assert np.abs(third - second).max() < 1e-9 * moved  # learning rate scaled by 1e-12 then 1e-24
    assert len(result.history["loss"]) == 3


def test_csv_logger_writes_a_row_per_epoch(tmp_path):
    path = tmp_path / "log.csv"
    fnnet.fit(MODEL, PARAMS, X, Y, epochs=3, callbacks=[fnnet.CSVLogger(path)], **FIT)
    rows = list(csv.reader(open(path)))
    assert rows[0] == ["epoch", "loss", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    assert all(float(v) > 0 for r in rows[1:] for v in r[1:])


def test_on_batch_end_runs_every_step_and_gives_the_same_history():
    steps = []

    class Counter(fnnet.Callback):
        def on_batch_end(self, step, logs):
            steps.append((step, logs["loss"]))

    stepped = fnnet.fit(MODEL, PARAMS, X, Y, epochs=2, callbacks=[Counter()], **FIT)
    scanned = fnnet.fit(MODEL, PARAMS, X, Y, epochs=2, **FIT)
    assert [s for s, _ in steps] == [0, 1, 2, 3] * 2  # 60 rows: 3 batches of 16 and one of 12
    np.testing.assert_allclose(stepped.history["loss"], scanned.history["loss"], rtol=1e-5)
    with pytest.raises(ValueError, match="on_batch_end"):
        fnnet.fit(MODEL, PARAMS, X, Y, epochs=1, callbacks=[Counter()], scan_epoch=True, **FIT)


def test_resume_restores_callback_state(tmp_path):
    path = tmp_path / "run.ckpt"
    kwargs = dict(FIT, loss="mse", epochs=6)

    def callbacks():
        return [fnnet.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1), fnnet.ModelCheckpoint(path)]

    whole_cbs = callbacks()
    whole = fnnet.fit(MODEL, PARAMS, X, Y, callbacks=whole_cbs[:1], **kwargs)
    fnnet.fit(MODEL, PARAMS, X, Y, callbacks=callbacks(), **dict(kwargs, epochs=3))
    resumed_cbs = callbacks()
    resumed = fnnet.fit(MODEL, PARAMS, X, Y, callbacks=resumed_cbs, resume_from=path, **kwargs)
    assert resumed.history == whole.history
    assert resumed_cbs[0].wait == whole_cbs[0].wait
    np.testing.assert_array_equal(resumed.params["dense_1"]["kernel"], whole.params["dense_1"]["kernel"])


# ------------------------------------------------------------------ issue 20: never lose a run

def nan_val_loss(epoch, logs, params):
    logs["val_loss"] = float("nan")  # as a diverged validation loss would be


def test_issue20_early_stopping_that_never_improves_finishes_training(capsys):
    # Issue 20, defect 3: a NaN val_loss never improves, and on_train_end raised
    # "TypeError: unsupported operand type(s) for +: 'NoneType' and 'int'".
    stop = fnnet.EarlyStopping(monitor="val_loss", patience=2)
    result = fnnet.fit(MODEL, PARAMS, X, Y, epochs=10, callbacks=[nan_val_loss, stop],
                       **{**FIT, "verbose": 1})
    assert len(result.history["loss"]) == 2 and stop.best_epoch is None
    assert "val_loss never improved" in capsys.readouterr().out
    # The last epoch's params are returned: training moved them.
    assert not np.array_equal(np.asarray(result.params["dense"]["kernel"]), np.asarray(PARAMS["dense"]["kernel"]))


class _BrokenAtEnd(fnnet.Callback):
    def on_train_end(self, run):
        raise OSError("the log disk is full")


def test_an_exception_at_the_end_of_training_keeps_the_trained_params():
    from fnnet.training.callbacks import TrainingEndError, TrainingRun, finish_training
    from fnnet.training.progress import Progress
    stop = fnnet.EarlyStopping(monitor="loss")
    stop.best_params, stop.best_epoch = {"w": np.float32(2.0)}, 0
    run = TrainingRun(params={"w": np.float32(1.0)}, state=None, opt_state=(), epochs=3, seed=0,
                      callbacks=[_BrokenAtEnd(), stop], progress=Progress(3, 1, 0))
    with pytest.raises(TrainingEndError, match=r"_BrokenAtEnd.on_train_end raised OSError: the log disk is full.*"
                                               r"trained params are in error.run.params and saved to") as e:
        finish_training(run, run.callbacks)
    assert float(run.params["w"]) == 2.0  # the hooks after the failing one still ran (best params restored)
    assert float(fnnet.load_checkpoint(e.value.checkpoint)["params"]["w"]) == 2.0
    assert isinstance(e.value.__cause__, OSError)


def test_a_failing_end_of_training_hook_in_fit_never_loses_the_trained_params():
    class Broken(fnnet.Callback):
        def on_train_end(self, run):
            raise OSError("log disk full")

    model = fnnet.Dense(1)
    _, params = model.init(jax.random.PRNGKey(0), (-1, 2))
    x = np.ones((8, 2), np.float32)
    with pytest.raises(fnnet.TrainingEndError, match="log disk full") as info:
        fnnet.fit(model, params, x, x[:, :1], loss="mse", optimizer="sgd", epochs=2, batch_size=4, verbose=0,
                  callbacks=[Broken()])
    saved = fnnet.load_checkpoint(info.value.checkpoint)["params"]
    np.testing.assert_allclose(saved["kernel"], info.value.run.params["kernel"])
    assert not np.allclose(saved["kernel"], params["kernel"])
