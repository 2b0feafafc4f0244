"""The sentiment recipe: features, the naive-Bayes bag layer, per-fold vocabularies, save/load/predict
and the command line, on tiny synthetic reviews (always) and on MR (when present)."""

import csv
import dataclasses
import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from recipes import sentiment

POSITIVE = "good great superb fun moving brilliant charming".split()
NEGATIVE = "bad dull boring awful mess tedious flat".split()
FILLER = "the film plot movie acting story is a and".split()
TINY = sentiment.SentimentConfig(embed_dim=4, lstm_units=4, epochs=1, bag_epochs=3, min_count=1, batch_size=16)


def synthetic_reviews(n, seed):
    """Reviews whose polarity words give the label away, so every model here can learn them."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = POSITIVE if label else NEGATIVE
        texts.append(" ".join(rng.choice(words) if rng.random() < 0.5 else rng.choice(FILLER)
                              for _ in range(rng.integers(3, 9))) + " " + rng.choice(words))
        labels.append(label)
    return texts, np.array(labels)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """Tiny MR-style files; every review ends with a tag word no other review has."""
    folder = tmp_path_factory.mktemp("mr")
    texts, labels = synthetic_reviews(80, seed=0)
    texts = [f"{text} tag{i}z" for i, text in enumerate(texts)]
    (folder / "rt-polarity.pos").write_text("\n".join(t for t, y in zip(texts, labels) if y) + "\n")
    # A Windows-1252 byte (0xE9, 'é') that is not valid UTF-8, as in some copies of MR.
    (folder / "rt-polarity.neg").write_bytes(
        ("\n".join(t for t, y in zip(texts, labels) if not y) + "\n").encode() + b"a clich\xe9d mess tag80z\n")
    return folder


@pytest.fixture(scope="module")
def cli_run(tiny_dir, tmp_path_factory):
    """One command-line run (2-fold CV, then --save-model) with tiny layer sizes, recording
    what each call of train_model was given and returned."""
    out = tmp_path_factory.mktemp("cli")
    calls = []
    real_train_model = sentiment.train_model

    def recording_train_model(texts, labels, class_names, cfg, seed=0, verbose=0):
        trained = real_train_model(texts, labels, class_names, cfg, seed=seed, verbose=verbose)
        calls.append((list(texts), trained))
        return trained

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sentiment, "train_model", recording_train_model)
        patch.setattr(sentiment, "config_from", lambda args: dataclasses.replace(TINY, epochs=args.epochs))
        metrics = sentiment.main(["--data", str(tiny_dir), "--folds", "2", "--epochs", "1", "--seed", "3",
                                  "--quiet", "--metrics-out", str(out / "m.json"), "--save-model", str(out / "model")])
    return types.SimpleNamespace(metrics=metrics, calls=calls, out=out, data=sentiment.load_data(tiny_dir))


# ------------------------------------------------------------------------- features and layer

def test_word_sequences_keep_the_end_and_send_rare_words_to_oov():
    words = sentiment.WordSequences(max_len=3, min_count=2).fit(["a b a", "b c"])
    assert words.vocab_size == 4                       # padding, OOV, 'a', 'b'
    assert words.transform(["c a", "x y a b"]).tolist() == [[0, 1, 2], [1, 2, 3]]


def test_ngram_bags_are_distinct_sorted_known_ids():
    bags = sentiment.NgramBags(ngrams=2).fit(["good film", "bad film"])
    ids = bags.transform(["film film good unseen"])[0]
    index = bags.tokenizer.word_index
    assert ids[ids != 0].tolist() == sorted([index["film"], index["good"]])
    assert bags.max_len == 3                           # 'good', 'film', 'good film'


def test_log_count_ratios_match_naive_bayes_by_hand():
    bags = sentiment.NgramBags(ngrams=1).fit(["good good", "bad", "good bad"])
    ratios = bags.log_count_ratios(["good good", "bad", "good bad"], [1, 0, 0], 2, alpha=1.0)
    index = bags.tokenizer.word_index
    # Binarised counts + 1: positive {good: 2, bad: 1}, negative {good: 2, bad: 3}.
    positive, negative = np.array([2.0, 1.0]), np.array([2.0, 3.0])
    expected = np.log(positive / positive.sum()) - np.log(negative / negative.sum())
    assert ratios.shape == (3, 1) and ratios[0, 0] == 0.0
    np.testing.assert_allclose(ratios[[index["good"], index["bad"]], 0], expected, rtol=1e-6)


def test_naive_bayes_bag_sums_weight_times_ratio_over_real_ids():
    layer = sentiment.NaiveBayesBag(5, units=1)
    shape, params = layer.init(jax.random.PRNGKey(0), (-1, 3))
    params = {"weight": jnp.arange(5.0)[:, None], "ratio": jnp.full((5, 1), 2.0)}
    out = layer.apply(params, jnp.array([[1, 3, 0], [0, 0, 0]]))
    assert shape == (-1, 1)
    assert out.tolist() == [[8.0], [0.0]]             # 2 * (1 + 3); padding contributes nothing


def test_choose_weight_prefers_the_branch_that_is_right():
    labels = np.array([0, 1, 0, 1])
    right = np.eye(2)[labels] * 4.0
    wrong = np.eye(2)[1 - labels] * 4.0
    assert sentiment.choose_weight(right, wrong, labels) == 1.0
    assert sentiment.choose_weight(wrong, right, labels) == 0.0


# ------------------------------------------------------------------------- command line, CV, saving

def tags(texts):
    return {word for text in texts for word in text.split() if word.startswith("tag")}


def test_each_fold_learns_its_vocabularies_from_its_training_rows_only(cli_run):
    data, fold_calls = cli_run.data, cli_run.calls[:2]
    for (train_rows, test_rows), (texts_given, trained) in zip(sentiment.splits(data, 2, seed=3), fold_calls):
        assert texts_given == [data.texts[i] for i in train_rows]
        test_only = tags(data.texts[i] for i in test_rows)
        words, bags = trained.words.tokenizer, trained.bags.tokenizer
        assert tags(words.word_index) and tags(words.word_index) <= tags(texts_given)
        assert not test_only & set(words.word_index)
        assert not test_only & {w for gram in bags.word_index for w in gram.split()}
        oov = words.word_index[words.oov_token]
        assert set(trained.words.transform(sorted(test_only)).ravel()) == {0, oov}


def test_cli_writes_cross_validation_metrics(cli_run):
    metrics = json.loads((cli_run.out / "m.json").read_text())
    assert {"accuracy", "std", "fold_accuracies", "train_seconds", "config"} <= set(metrics)
    assert len(metrics["fold_accuracies"]) == 2 and metrics["seed"] == 3
    assert metrics["accuracy"] == pytest.approx(np.mean(metrics["fold_accuracies"]))
    assert metrics["accuracy"] > 0.8                   # the polarity words give the labels away
    assert set(metrics["branch_accuracies"]) == {"lstm", "bag"}
    assert all(0.0 <= w <= 1.0 for w in metrics["lstm_weights"])
    assert metrics["data"]["texts"] == 81 and metrics["saved_model"].endswith("model")


def test_saved_model_loads_and_predicts_like_the_trained_one(cli_run):
    texts_given, trained = cli_run.calls[-1]
    assert len(texts_given) == 81                      # --save-model trains on all the data
    loaded = sentiment.load(cli_run.out / "model")
    texts = ["a superb and moving film", "dull, boring mess", "zzz never seen"]
    np.testing.assert_allclose(loaded.predict_proba(texts), trained.predict_proba(texts), rtol=1e-5, atol=1e-6)
    assert loaded.class_names == ("negative", "positive")
    assert loaded.words.tokenizer.word_index == trained.words.tokenizer.word_index
    assert loaded.config == trained.config


def test_cli_predicts_one_row_per_line(cli_run, tmp_path):
    texts = ["a great , charming and brilliant film", "", 'boring , "awful" mess']
    (tmp_path / "texts.txt").write_bytes("\n".join(texts).encode() + b"\ntedious clich\xe9 \n")
    result = sentiment.main(["--model", str(cli_run.out / "model"), "--predict", str(tmp_path / "texts.txt"),
                             "--out", str(tmp_path / "pred.csv")])
    with open(tmp_path / "pred.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert result == {"predictions": 4}
    assert [r["text"] for r in rows] == texts + ["tedious cliché "]
    assert [r["label"] for r in (rows[0], rows[2], rows[3])] == ["1", "0", "0"]
    assert float(rows[0]["probability"]) > 0.5 > float(rows[2]["probability"])


def test_cli_errors_are_clear(tmp_path, capsys):
    (tmp_path / "notes.md").write_text("hi")
    with pytest.raises(SystemExit, match="not a data layout.*rt-polarity"):
        sentiment.main(["--data", str(tmp_path), "--quiet"])
    (tmp_path / "empty.csv").write_text("text,label\n")
    with pytest.raises(SystemExit, match="empty"):
        sentiment.main(["--data", str(tmp_path / "empty.csv"), "--quiet"])
    with pytest.raises(SystemExit, match="not an fnnet model"):
        sentiment.main(["--model", str(tmp_path), "--predict", str(tmp_path / "notes.md")])
    with pytest.raises(SystemExit):
        sentiment.main(["--model", str(tmp_path)])
    assert "--model and --predict go together" in capsys.readouterr().err


def test_one_class_is_an_error(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\ngood,pos\nfine,pos\n")
    with pytest.raises(SystemExit, match="two classes"):
        sentiment.load_data(tmp_path / "d.csv")


# ------------------------------------------------------------------------- real data

def test_mr_loads_whole_and_the_bag_branch_learns_it(rt_polarity_dir):
    data = sentiment.load_data(rt_polarity_dir)
    assert len(data) == 10662 and np.bincount(data.labels).tolist() == [5331, 5331]
    rows = np.random.default_rng(0).permutation(len(data))
    train, test = rows[:3000], rows[3000:4000]
    cfg = sentiment.SentimentConfig(branches="bag", embed_dim=4, lstm_units=4, epochs=1)
    trained = sentiment.train_model([data.texts[i] for i in train], data.labels[train], data.class_names, cfg)
    accuracy = np.mean(trained.predict_proba([data.texts[i] for i in test]).argmax(1) == data.labels[test])
    assert accuracy > 0.7                              # chance is 0.5; trained on all MR it is about 0.80


def test_more_than_two_classes_get_one_ratio_column_each():
    texts = ["good fun", "bad mess", "odd fun", "odd mess"]
    bags = sentiment.NgramBags(ngrams=1).fit(texts)
    ratios = bags.log_count_ratios(texts, [1, 0, 2, 2], 3, alpha=1.0)
    odd, fun = bags.tokenizer.word_index["odd"], bags.tokenizer.word_index["fun"]
    # Class 2 has 4 n-gram occurrences, the other classes together 4; +1 smoothing for each of
    # the 5 n-grams gives totals of 9. 'odd': 2 + 1 in class 2, 0 + 1 elsewhere; 'fun': 1 + 1 in both.
    assert ratios.shape == (bags.vocab_size, 3)
    assert ratios[odd, 2] == pytest.approx(np.log((3 / 9) / (1 / 9)))
    assert ratios[fun, 2] == pytest.approx(0.0, abs=1e-6)
    layer = sentiment.bag_branch(bags.vocab_size, 3)
    shape, _ = layer.init(jax.random.PRNGKey(0), (-1, 2))
    assert shape == (-1, 3)
