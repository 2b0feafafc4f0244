"""check_data: bad training data is named (leaf, row, value) before a step runs; one-class splits warn."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet.training.validation import DataError, check_data

EMBED = fnnet.serial(fnnet.Embedding(10, 4), fnnet.Flatten, fnnet.Dense(3))
EMBED_PARAMS = EMBED.init(jax.random.PRNGKey(0), (-1, 2))[1]
MLP = fnnet.serial(fnnet.Dense(4), fnnet.Relu, fnnet.Dense(3))
MLP_PARAMS = MLP.init(jax.random.PRNGKey(0), (-1, 2))[1]
FIT = dict(optimizer="sgd", epochs=1, batch_size=4, verbose=0)


def ids(bad=None, row=5):
    x = np.random.default_rng(0).integers(0, 10, size=(12, 2))
    if bad is not None:
        x[row, 1] = bad
    return x


def features(bad=None, row=3):
    x = np.random.default_rng(0).normal(size=(12, 2)).astype(np.float32)
    if bad is not None:
        x[row, 0] = bad
    return x


LABELS = np.arange(12) % 3


# ------------------------------------------------------------------ issue 20, defect 5

@pytest.mark.parametrize("bad", [-1, 10, 1000])
def test_issue20_out_of_range_embedding_ids_are_named_before_training(bad):
    # Negative ids wrapped to the last row; ids >= input_dim ended in NonFiniteLossError.
    with pytest.raises(DataError, match=rf"x: id for Embedding 'embedding' \(input_dim=10\): {bad} at row 5, "
                                        r"column 1 is outside \[0, 10\)"):
        fnnet.fit(EMBED, EMBED_PARAMS, ids(bad), LABELS, loss="sparse_categorical_crossentropy", **FIT)
    with pytest.raises(DataError, match="outside"):
        fnnet.predict(EMBED, EMBED_PARAMS, ids(bad))


@pytest.mark.parametrize("bad", [-1, 3, 7])
def test_issue20_labels_outside_the_classes_are_named(bad):
    labels = LABELS.copy()
    labels[4] = bad
    with pytest.raises(DataError, match=rf"^y: label for sparse_categorical_crossentropy \(the model gives 3 "
                                        rf"classes\): {bad} at row 4 is outside \[0, 3\)"):
        fnnet.fit(MLP, MLP_PARAMS, features(), labels, loss="sparse_categorical_crossentropy", **FIT)
    with pytest.raises(DataError, match="outside"):
        fnnet.evaluate(MLP, MLP_PARAMS, features(), labels, loss="sparse_categorical_crossentropy")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_issue20_non_finite_inputs_and_targets_are_named(bad):
    with pytest.raises(DataError, match=rf"x: {bad} at row 3, column 0 \(1 non-finite value in all\)"):
        fnnet.fit(MLP, MLP_PARAMS, features(bad), LABELS, loss="sparse_categorical_crossentropy", **FIT)
    y = features()[:, :1].copy()
    y[9, 0] = bad
    with pytest.raises(DataError, match=rf"y: {bad} at row 9, column 0"):
        fnnet.fit(fnnet.Dense(1), fnnet.Dense(1).init(jax.random.PRNGKey(0), (-1, 2))[1], features(), y,
                  loss="mse", **FIT)


def test_issue20_nan_only_in_validation_data_is_named():
    x_val = features(np.nan, row=1)
    with pytest.raises(DataError, match=r"validation x: nan at row 1, column 0"):
        fnnet.fit(MLP, MLP_PARAMS, features(), LABELS, loss="sparse_categorical_crossentropy",
                  validation_data=(x_val, LABELS), **FIT)


def test_leaves_of_a_pytree_are_named_by_their_path():
    x = {"price": features(), "area": features(np.inf, row=2)}
    with pytest.raises(DataError, match=r"x/area: inf at row 2, column 0"):
        check_data(fnnet.Dense(1), x)


def test_device_arrays_are_checked_too():
    with pytest.raises(DataError, match=r"x: nan at row 3"):
        check_data(MLP, jnp.asarray(features(np.nan)))
    check_data(MLP, jnp.asarray(features()))  # clean data passes


def test_clean_data_trains_without_a_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fnnet.fit(EMBED, EMBED_PARAMS, ids(), LABELS, loss="sparse_categorical_crossentropy",
                  validation_split=0.25, **FIT)


# ------------------------------------------------------------------ issue 20, defect 7

def test_issue20_a_one_class_validation_split_warns():
    # Sorted data (all class 0, then all class 1): the last 20% are one class.
    x = features()
    y = np.array([0] * 6 + [1] * 6)
    model = fnnet.serial(fnnet.Dense(2))
    params = model.init(jax.random.PRNGKey(0), (-1, 2))[1]
    with pytest.warns(UserWarning, match=r"validation_split=0.25 takes the last 3 rows, and all of them are class 1"):
        fnnet.fit(model, params, x, y, loss="sparse_categorical_crossentropy", validation_split=0.25, **FIT)


def test_a_validation_split_far_from_the_training_mix_warns():
    y = np.array([0] * 14 + [1] * 2 + [1] * 3 + [0])
    with pytest.warns(UserWarning, match="far from the training rows'"):
        check_data(fnnet.Dense(2), np.zeros((20, 2), np.float32), y[:16], loss="sparse_categorical_crossentropy",
                   validation=(np.zeros((4, 2), np.float32), y[16:]), validation_split=0.2)


def test_regression_targets_never_warn_about_classes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_data(fnnet.Dense(1), np.zeros((4, 2)), np.zeros((4, 1)), loss="mse",
                   validation=(np.zeros((1, 2)), np.ones((1, 1))), validation_split=0.2)
