"""fnnet.neighbors: exact k-NN against a float64 reference and against scikit-learn.

The reference ranks by (distance, training index) with a stable sort of scipy's float64
distances. Integer-valued data keeps every distance exact in float32 too, so ties (many
in digits) must be broken exactly like the reference. scikit-learn orders tied neighbours
the way its heaps leave them, so it is compared wherever the k-th neighbour is unambiguous
(no tie across the k-th/(k+1)-th boundary), and elsewhere only the neighbours' distances.
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnnet
from fnnet.neighbors import classify, kneighbors, regress, vote

# fnnet.neighbors.search is the search function, so the module is fetched by its full name.
search_module = importlib.import_module("fnnet.neighbors.search")

cdist = pytest.importorskip("scipy.spatial.distance").cdist
sk_neighbors = pytest.importorskip("sklearn.neighbors")
sk_datasets = pytest.importorskip("sklearn.datasets")

threadpoolctl = pytest.importorskip("threadpoolctl")

SCIPY_METRIC = {"euclidean": "sqeuclidean", "manhattan": "cityblock", "cosine": "cosine"}


def reference(train, queries, k, metric):
    """``(all distances, first k indices)``: float64, ties to the lower index."""
    dist = cdist(np.asarray(queries, np.float64), np.asarray(train, np.float64), SCIPY_METRIC[metric])
    if metric == "euclidean":
        dist = np.sqrt(dist)
    return dist, np.argsort(dist, axis=1, kind="stable")[:, :k]


@pytest.fixture(scope="module", autouse=True)
def one_sklearn_thread():
    """scikit-learn's OpenMP threads crawl on a busy 2-core machine; these problems are tiny."""
    with threadpoolctl.threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def digits():
    x, y = sk_datasets.load_digits(return_X_y=True)
    return x[:1200], y[:1200], x[1200:1500], y[1200:1500]


def tie_free_rows(all_distances, k):
    """Rows whose k-th and (k+1)-th nearest distances differ: their neighbour set is unique."""
    ordered = np.sort(all_distances, axis=1)
    return ordered[:, k - 1] < ordered[:, k]


# ----------------------------------------------------------------------- exact search

@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
@pytest.mark.parametrize("k", [1, 4, 5, 8])
def test_digits_neighbours_equal_the_stable_reference_and_sklearn(digits, metric, k):
    x_train, y_train, x_test, _ = digits
    all_dist, ref_idx = reference(x_train, x_test, k, metric)
    dist, idx = kneighbors(x_train, x_test, k, metric)
    np.testing.assert_array_equal(np.asarray(idx), ref_idx)
    np.testing.assert_allclose(np.asarray(dist), np.take_along_axis(all_dist, ref_idx, 1), rtol=1e-6)

    unique = tie_free_rows(all_dist, k)
    assert unique.mean() > 0.5  # the comparison below covers most rows
    for weights in ["uniform", "distance"]:
        params = dict(n_neighbors=k, algorithm="brute", metric=metric, weights=weights)
        sk_class = sk_neighbors.KNeighborsClassifier(**params).fit(x_train, y_train).predict(x_test)
        sk_value = sk_neighbors.KNeighborsRegressor(**params).fit(x_train, y_train).predict(x_test)
        ours_class = classify(x_train, y_train, x_test, k, metric, weights)
        ours_value = np.asarray(regress(x_train, y_train, x_test, k, metric, weights))
        np.testing.assert_array_equal(ours_class[unique], sk_class[unique])
        np.testing.assert_allclose(ours_value[unique], sk_value[unique], rtol=1e-5)

    # Where the boundary is tied, scikit-learn may take other tied rows: same distances.
    sk_dist, _ = sk_neighbors.NearestNeighbors(n_neighbors=k, algorithm="brute", metric=metric) \
        .fit(x_train).kneighbors(x_test)
    np.testing.assert_allclose(np.asarray(dist), sk_dist, rtol=1e-6)


def integer_points_with_duplicates(seed=0):
    """Small integer features: many exactly tied distances, plus repeated rows."""
    rng = np.random.default_rng(seed)
    train = rng.integers(0, 4, size=(203, 5)).astype(np.float32)
    train[150:170] = train[10:30]  # duplicates, in another block than their originals
    queries = np.concatenate([rng.integers(0, 4, size=(30, 5)), train[[10, 160, 202]]]).astype(np.float32)
    return train, queries


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
@pytest.mark.parametrize("plan", [
    # several query blocks (the last one padded), several training blocks (the last padded)
    search_module.SearchPlan(query_block=5, n_query_blocks=7, train_block=32, n_train_blocks=7,
                             group=8, kept_groups=8),
    # groups of one point and as few kept groups as k: the selection has no margin at all
    search_module.SearchPlan(query_block=33, n_query_blocks=1, train_block=64, n_train_blocks=4,
                             group=1, kept_groups=7),
])
def test_ties_go_to_the_lower_index_across_block_boundaries(metric, plan):
    train, queries = integer_points_with_duplicates()
    _, ref_idx = reference(train, queries, 7, metric)
    _, idx = search_module.search(train, queries, k=7, metric=metric, plan=plan)
    np.testing.assert_array_equal(np.asarray(idx), ref_idx)


def test_a_small_memory_budget_gives_the_same_answer(digits):
    x_train, _, x_test, _ = digits
    tiny = search_module.plan_search(len(x_train), 40, 64, 8, "euclidean", max_block_bytes=2**12)
    assert tiny.query_block == 1 and tiny.n_train_blocks > 1
    _, expected = reference(x_train, x_test[:40], 8, "euclidean")
    _, idx = kneighbors(x_train, x_test[:40], 8, max_block_bytes=2**12)
    np.testing.assert_array_equal(np.asarray(idx), expected)


def test_cosine_matches_sklearn_on_continuous_data():
    rng = np.random.default_rng(1)
    train = rng.normal(size=(300, 6)).astype(np.float32)
    train[7] = 0.0  # a zero row: cosine distance 1 to everything, as scikit-learn has it
    labels = rng.integers(0, 3, size=300)
    queries = rng.normal(size=(50, 6)).astype(np.float32)
    sk = sk_neighbors.NearestNeighbors(n_neighbors=6, algorithm="brute", metric="cosine").fit(train)
    sk_dist, sk_idx = sk.kneighbors(queries)
    dist, idx = kneighbors(train, queries, 6, "cosine")
    np.testing.assert_array_equal(np.asarray(idx), sk_idx)
    np.testing.assert_allclose(np.asarray(dist), sk_dist, atol=1e-6)
    sk_class = sk_neighbors.KNeighborsClassifier(6, algorithm="brute", metric="cosine", weights="distance") \
        .fit(train, labels).predict(queries)
    np.testing.assert_array_equal(classify(train, labels, queries, 6, "cosine", "distance"), sk_class)
    _, far = kneighbors(train, np.ones((1, 6), np.float32), 300, "cosine")
    assert 7 in np.asarray(far)[0]


def test_float_data_with_duplicates_matches_sklearn():
    rng = np.random.default_rng(2)
    train = rng.normal(size=(500, 8))
    train = np.concatenate([train, train[:100]])  # rows 500.. repeat rows 0..
    y = rng.normal(size=600)
    queries = np.concatenate([rng.normal(size=(40, 8)), train[:20]])
    all_dist, ref_idx = reference(train, queries, 5, "euclidean")
    _, idx = kneighbors(train, queries, 5)
    np.testing.assert_array_equal(np.asarray(idx), ref_idx)
    unique = tie_free_rows(all_dist, 5)
    for weights in ["uniform", "distance"]:
        sk = sk_neighbors.KNeighborsRegressor(5, algorithm="brute", weights=weights).fit(train, y)
        np.testing.assert_allclose(np.asarray(regress(train, y, queries, 5, weights=weights))[unique],
                                   sk.predict(queries)[unique], rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------- voting

def test_vote_ties_go_to_the_smallest_label_as_in_sklearn():
    train, labels, query = np.array([[0.0], [2.0]]), np.array([5, 3]), np.array([[1.0]])
    for weights in ["uniform", "distance"]:
        sk = sk_neighbors.KNeighborsClassifier(2, algorithm="brute", weights=weights).fit(train, labels)
        assert classify(train, labels, query, k=2, weights=weights).tolist() == sk.predict(query).tolist() == [3]


def test_distance_weights_let_exact_matches_decide():
    train = np.array([[0.0], [0.0], [0.1], [0.2], [0.3]])
    labels, targets = np.array([1, 1, 0, 0, 0]), np.array([4.0, 6.0, 0.0, 0.0, 0.0])
    query = np.array([[0.0], [0.15]])
    assert classify(train, labels, query, k=5, weights="distance").tolist() == [1, 0]
    assert classify(train, labels, query, k=5).tolist() == [0, 0]
    values = np.asarray(regress(train, targets, query, k=5, weights="distance"))
    sk = sk_neighbors.KNeighborsRegressor(5, algorithm="brute", weights="distance").fit(train, targets)
    np.testing.assert_allclose(values, sk.predict(query), rtol=1e-6)
    assert values[0] == 5.0


def test_callable_weights_and_vote_on_given_neighbours():
    train, labels = np.array([[0.0], [1.0], [3.0]]), np.array([0, 1, 1])
    # weighting the farthest most flips the majority
    assert classify(train, labels, np.array([[0.0]]), k=3, weights=lambda d: d).tolist() == [1]
    assert vote(np.array([["x", "y", "y"]])).tolist() == ["y"]
    assert vote(np.array([[2, 1]]), np.array([[1.0, 1.0]]), "distance").tolist() == [1]


def test_regress_several_outputs():
    train = np.array([[0.0], [1.0], [5.0]])
    targets = np.array([[0.0, 10.0], [2.0, 20.0], [9.0, 90.0]])
    out = np.asarray(regress(train, targets, np.array([[0.2], [5.0]]), k=2))
    np.testing.assert_allclose(out, [[1.0, 15.0], [5.5, 55.0]])


# ---------------------------------------------------------------------------- errors

X5 = np.arange(10.0).reshape(5, 2)


@pytest.mark.parametrize("call, message", [
    (lambda: kneighbors(X5, X5, 6), r"k=6 is larger than the training set \(train_x has 5 rows\)"),
    (lambda: kneighbors(X5, X5, 0), "k must be a positive integer, got 0"),
    (lambda: kneighbors(X5, X5, 2.5), "k must be a positive integer, got 2.5"),
    (lambda: kneighbors(X5, np.ones((1, 3)), 1), "query_x has 3 features but train_x has 2"),
    (lambda: kneighbors(np.where(X5 == 3, np.nan, X5), X5, 1), "train_x contains NaN at row 1, column 1"),
    (lambda: kneighbors(X5, np.array([[0.0, np.inf]]), 1), "query_x contains an infinite value at row 0, column 1"),
    (lambda: kneighbors(np.zeros((0, 2)), X5, 1), r"train_x is empty: it has no rows \(shape \(0, 2\)\)"),
    (lambda: kneighbors(X5, np.zeros((0, 2)), 1), "query_x is empty"),
    (lambda: kneighbors(X5, np.zeros(2), 1), r"query_x must be 2-D \(rows, features\), got shape \(2,\)"),
    (lambda: kneighbors(np.array([["a", "b"]]), X5, 1), "train_x must be numeric"),
    (lambda: kneighbors(X5, X5, 1, "cityblock"), "unknown metric 'cityblock'; expected one of euclidean"),
    (lambda: classify(X5, [0, 1, 0, 1], X5, 1), "train_y has 4 rows but train_x has 5"),
    (lambda: classify(X5, [0, 1, 0, 1, 0], X5, 1, weights="inverse"), "unknown weights 'inverse'"),
    (lambda: regress(X5, [0.0, 1.0, np.nan, 1.0, 0.0], X5, 1), "train_y contains NaN at row 2"),
    (lambda: vote(np.array([[1, 2]]), weights="distance"), "weights='distance' needs the distances"),
    (lambda: fnnet.KNNClassifier(X5, ["a", "b", "a", "b", "a"]), "KNNClassifier needs numeric labels"),
    (lambda: fnnet.KNNRegressor(X5, np.ones(5), k=9), "k=9 is larger than the training set"),
])
def test_clear_errors_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_layer_errors_name_the_layer_path():
    model = fnnet.serial(fnnet.Dense(3), fnnet.KNNClassifier(np.ones((4, 2)), [0, 1, 0, 1], k=1))
    with pytest.raises(fnnet.LayerError, match=r"serial\[1\]/KNNClassifier\(k=1\): expected inputs with 2 features"):
        model.init(jax.random.PRNGKey(0), (-1, 5))
    layer = fnnet.KNNRegressor(np.ones((4, 2)), np.ones(4), k=1)
    _, params = layer.init(jax.random.PRNGKey(0), (-1, 2))
    with pytest.raises(fnnet.LayerError, match="inputs contains NaN at row 0, column 1"):
        layer.apply(params, np.array([[0.0, np.nan]]))


# ------------------------------------------------------------------------ layer style

def test_knn_layers_compose_with_a_network_and_jit(digits):
    x_train, y_train, x_test, _ = digits
    net = fnnet.serial(fnnet.Dense(8), fnnet.Tanh)
    _, net_params = net.init(jax.random.PRNGKey(0), (-1, 64))
    features_train, features_test = net.apply(net_params, x_train), net.apply(net_params, x_test)

    classifier = fnnet.serial(net, fnnet.KNNClassifier(features_train, y_train, k=5, weights="distance"))
    shape, params = classifier.init(jax.random.PRNGKey(1), (-1, 64))
    params["serial"] = net_params
    assert shape == (-1,) and set(params["knn_classifier"]) == {"train_x", "train_codes", "classes"}
    predicted = jax.jit(classifier.apply)(params, x_test)
    expected = classify(features_train, y_train, features_test, 5, weights="distance")
    np.testing.assert_array_equal(np.asarray(predicted), expected)

    targets = np.stack([y_train, -y_train], axis=1).astype(np.float32)
    regressor = fnnet.KNNRegressor(features_train, targets, k=3)
    shape, params = regressor.init(jax.random.PRNGKey(1), (-1, 8))
    assert shape == (-1, 2)
    batched = regressor.apply(params, features_test.reshape(3, 100, 8))  # leading dims are kept
    np.testing.assert_allclose(np.asarray(batched).reshape(300, 2),
                               regress(features_train, targets, features_test, 3), rtol=1e-6)


# ----------------------------------------------------------------------- memory bound

def temp_bytes(n_train, n_queries, n_features, budget, metric="euclidean", k=5):
    plan = search_module.plan_search(n_train, n_queries, n_features, k, metric, budget)
    compiled = search_module.search.lower(
        jax.ShapeDtypeStruct((n_train, n_features), jnp.float32),
        jax.ShapeDtypeStruct((n_queries, n_features), jnp.float32), k=k, metric=metric, plan=plan).compile()
    return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize("metric", ["euclidean", "manhattan"])
def test_scratch_memory_is_bounded_by_the_budget_not_queries_times_train(metric):
    n_train, n_features, budget = 20_000, 8, 2**20
    large = temp_bytes(n_train, 8_000, n_features, budget, metric)
    # A few copies of the training set (padding, centring) and a few budget-sized blocks;
    # one full distance matrix would be 640 MB.
    assert large <= 4 * (4 * n_train * n_features) + 4 * budget
    if metric == "euclidean":
        # 7,000 more queries cost only their own rows and results, nothing per training point.
        small = temp_bytes(n_train, 1_000, n_features, budget, metric)
        assert large - small <= 7_000 * 4 * (2 * n_features + 4 * 8)
