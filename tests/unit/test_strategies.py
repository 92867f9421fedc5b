"""Query strategies: one contract suite for every registered strategy, then each."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.sampler.errors import (
    BatchTooLargeError,
    EmptyPoolError,
    UnknownStrategyError,
)
from services.sampler.strategies import (
    STRATEGIES,
    QueryStrategy,
    UncertaintyStrategy,
    UnlabeledPool,
    get_strategy,
    register,
    strategy_names,
)
from services.sampler.strategies import base as strategies_base

N_ROWS = 300
N_FEATURES = 8
N_CLASSES = 4

MODEL_STRATEGIES = [name for name in strategy_names() if STRATEGIES[name].needs_model]
UNCERTAINTY_STRATEGIES = [
    name
    for name in strategy_names()
    if issubclass(STRATEGIES[name], UncertaintyStrategy)
]


class LinearSoftmaxScorer:
    """Softmax of a fixed random linear map of the features."""

    def __init__(self, n_features: int = N_FEATURES, n_classes: int = N_CLASSES):
        self.weights = np.random.default_rng(7).normal(size=(n_features, n_classes))

    def predict_proba(self, X: np.ndarray, /) -> np.ndarray:
        # An elementwise product and sum, not a BLAS matmul, so each row's
        # probabilities are bit-identical whatever rows share its chunk.
        logits = (X[:, :, None] * self.weights[None, :, :]).sum(axis=1)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


class ConstantScorer:
    """The same probabilities for every row: every score ties."""

    def predict_proba(self, X: np.ndarray, /) -> np.ndarray:
        return np.tile([0.4, 0.3, 0.2, 0.1], (X.shape[0], 1))


class TableScorer:
    """Look each row's probabilities up in a table by the row id in feature 0."""

    def __init__(self, table: np.ndarray):
        self.table = table

    def predict_proba(self, X: np.ndarray, /) -> np.ndarray:
        return self.table[X[:, 0].astype(np.int64)]


def make_pool(
    model: object | None = None,
    chunk_rows: int = 50_000,
    n_rows: int = N_ROWS,
    features: np.ndarray | None = None,
) -> UnlabeledPool:
    """Return a pool of ``n_rows`` random rows of which every fifth is labeled."""
    if features is None:
        features = np.random.default_rng(3).normal(size=(n_rows, N_FEATURES))
    rows = np.array([r for r in range(features.shape[0]) if r % 5 != 0])
    return UnlabeledPool(
        rows=rows,
        features=features,
        model=LinearSoftmaxScorer() if model is None else model,  # type: ignore[arg-type]
        chunk_rows=chunk_rows,
    )


def labeled_rows(pool: UnlabeledPool) -> np.ndarray:
    """Return the dataset rows that are not in the pool."""
    return np.setdiff1d(np.arange(pool.total_rows), pool.rows)


# -- contract shared by every strategy ---------------------------------------


@pytest.fixture(params=strategy_names())
def strategy(request: pytest.FixtureRequest) -> QueryStrategy:
    return get_strategy(request.param)


def test_select_returns_exactly_the_batch_size(strategy: QueryStrategy) -> None:
    for batch_size in (1, 17, 60):
        assert strategy.select(make_pool(), batch_size, seed=0).shape == (batch_size,)


def test_select_returns_no_row_twice(strategy: QueryStrategy) -> None:
    selection = strategy.select(make_pool(), 60, seed=0)

    assert np.unique(selection).size == selection.size


def test_select_returns_only_unlabeled_rows_as_int64(strategy: QueryStrategy) -> None:
    pool = make_pool()

    selection = strategy.select(pool, 100, seed=0)

    assert selection.dtype == np.int64
    assert np.isin(selection, pool.rows).all()
    assert not np.isin(selection, labeled_rows(pool)).any()


def test_select_repeats_its_selection_for_the_same_seed(
    strategy: QueryStrategy,
) -> None:
    first = strategy.select(make_pool(), 30, seed=11)
    again = get_strategy(strategy.name).select(make_pool(), 30, seed=11)

    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("model", [LinearSoftmaxScorer(), ConstantScorer()])
def test_select_returns_the_same_rows_whatever_the_chunk_size(
    strategy: QueryStrategy, model: object
) -> None:
    small_chunks = strategy.select(make_pool(model, chunk_rows=7), 30, seed=5)
    one_chunk = strategy.select(make_pool(model, chunk_rows=10_000), 30, seed=5)

    np.testing.assert_array_equal(small_chunks, one_chunk)


def test_select_reads_a_memory_mapped_pool_like_an_in_memory_one(
    strategy: QueryStrategy, tmp_path
) -> None:
    in_memory = make_pool()
    path = tmp_path / "features.npy"
    np.save(path, in_memory.features.astype(np.float32))
    mapped = make_pool(features=np.load(path, mmap_mode="r"), chunk_rows=13)
    loaded = make_pool(features=np.load(path))

    np.testing.assert_array_equal(
        strategy.select(mapped, 25, seed=2), strategy.select(loaded, 25, seed=2)
    )


def test_select_of_the_whole_pool_returns_every_unlabeled_row(
    strategy: QueryStrategy,
) -> None:
    pool = make_pool()

    selection = strategy.select(pool, len(pool), seed=0)

    np.testing.assert_array_equal(np.sort(selection), pool.rows)


def test_select_from_an_empty_pool_raises_and_names_the_counts(
    strategy: QueryStrategy,
) -> None:
    features = np.zeros((1149, N_FEATURES))
    pool = UnlabeledPool(
        rows=np.empty(0, dtype=np.int64), features=features, model=ConstantScorer()
    )

    with pytest.raises(EmptyPoolError) as caught:
        strategy.select(pool, 10, seed=0)

    assert str(caught.value) == (
        "the unlabeled pool is empty (1149 rows, all 1149 labeled); nothing to select"
    )
    assert caught.value.total_rows == 1149


def test_select_of_more_rows_than_the_pool_raises_and_names_the_counts(
    strategy: QueryStrategy,
) -> None:
    pool = make_pool()

    with pytest.raises(BatchTooLargeError) as caught:
        strategy.select(pool, 241, seed=0)

    assert (
        str(caught.value) == "batch of 241 rows asked from a pool of 240 unlabeled rows"
    )
    assert (caught.value.batch_size, caught.value.pool_size) == (241, 240)


@pytest.mark.parametrize("batch_size", [0, -3])
def test_select_of_no_rows_raises_value_error(
    strategy: QueryStrategy, batch_size: int
) -> None:
    with pytest.raises(
        ValueError, match=f"batch_size must be at least 1, got {batch_size}"
    ):
        strategy.select(make_pool(), batch_size, seed=0)


def test_select_with_a_negative_seed_raises_value_error(
    strategy: QueryStrategy,
) -> None:
    with pytest.raises(ValueError, match="seed must be non-negative, got -1"):
        strategy.select(make_pool(), 5, seed=-1)


@pytest.mark.parametrize("name", strategy_names())
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_select_from_any_pool_returns_distinct_pool_rows(
    name: str, data: st.DataObject
) -> None:
    n_rows = data.draw(st.integers(1, 200), label="n_rows")
    unlabeled = data.draw(
        st.lists(st.integers(0, n_rows - 1), min_size=1, unique=True),
        label="unlabeled",
    )
    batch_size = data.draw(
        st.integers(1, min(len(unlabeled), 12)) | st.integers(1, len(unlabeled)),
        label="batch_size",
    )
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    chunk_rows = data.draw(st.integers(1, 100), label="chunk_rows")
    features = np.random.default_rng(seed).normal(size=(n_rows, N_FEATURES))
    pool = UnlabeledPool(
        rows=np.array(sorted(unlabeled)),
        features=features,
        model=LinearSoftmaxScorer(),
        chunk_rows=chunk_rows,
    )

    selection = get_strategy(name).select(pool, batch_size, seed)

    assert selection.shape == (batch_size,)
    assert np.unique(selection).size == batch_size
    assert np.isin(selection, pool.rows).all()


@pytest.mark.parametrize("name", MODEL_STRATEGIES)
def test_select_without_a_model_raises_value_error_naming_the_strategy(
    name: str,
) -> None:
    pool = UnlabeledPool(rows=np.arange(10), features=np.zeros((10, 2)))

    with pytest.raises(
        ValueError,
        match=f"strategy '{name}' scores rows with a model, but the pool has none",
    ):
        get_strategy(name).select(pool, 3, seed=0)


# -- uncertainty strategies ---------------------------------------------------

# Row 1 has the tied top two, row 4 the flattest distribution, row 5 a small gap
# over two classes only; the others are confident.
PROBABILITY_TABLE = np.array(
    [
        [0.97, 0.01, 0.01, 0.01],
        [0.40, 0.40, 0.10, 0.10],
        [0.50, 0.20, 0.15, 0.15],
        [0.85, 0.05, 0.05, 0.05],
        [0.45, 0.15, 0.20, 0.20],
        [0.52, 0.48, 0.00, 0.00],
        [0.91, 0.03, 0.03, 0.03],
        [0.01, 0.97, 0.01, 0.01],
    ]
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("entropy", [4, 2, 1]),
        ("least_confident", [1, 4, 2]),
        ("margin", [1, 5, 4]),
    ],
)
def test_uncertainty_strategy_picks_the_most_uncertain_rows_in_order(
    name: str, expected: list[int]
) -> None:
    rows = np.arange(len(PROBABILITY_TABLE))
    pool = UnlabeledPool(
        rows=rows,
        features=rows[:, None].astype(np.float64),
        model=TableScorer(PROBABILITY_TABLE),
        chunk_rows=3,
    )

    selection = get_strategy(name).select(pool, 3, seed=0)

    assert selection.tolist() == expected


def test_entropy_scores_a_zero_probability_without_nan() -> None:
    scores = get_strategy("entropy").score(np.array([[1.0, 0.0], [0.5, 0.5]]))  # type: ignore[attr-defined]

    np.testing.assert_allclose(scores, [0.0, np.log(2)])


@pytest.mark.parametrize("name", UNCERTAINTY_STRATEGIES)
def test_uncertainty_strategy_breaks_ties_by_seed(name: str) -> None:
    pool = make_pool(ConstantScorer())
    strategy = get_strategy(name)

    first = strategy.select(pool, 20, seed=1)
    again = strategy.select(pool, 20, seed=1)
    other_seed = strategy.select(pool, 20, seed=2)

    np.testing.assert_array_equal(first, again)
    assert set(first.tolist()) != set(other_seed.tolist())


# -- random ------------------------------------------------------------------


def test_random_selects_different_rows_for_different_seeds() -> None:
    pool = make_pool()
    strategy = get_strategy("random")

    assert set(strategy.select(pool, 20, seed=1).tolist()) != set(
        strategy.select(pool, 20, seed=2).tolist()
    )


def test_random_selects_without_a_model() -> None:
    pool = UnlabeledPool(rows=np.arange(5, 50), features=np.zeros((50, 2)))

    selection = get_strategy("random").select(pool, 10, seed=0)

    assert np.isin(selection, pool.rows).all()


# -- margin_kmeans -----------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_margin_kmeans_takes_one_row_per_blob_when_margins_tie(seed: int) -> None:
    rng = np.random.default_rng(seed)
    blob = np.repeat(np.arange(5), 60)
    centers = 100.0 * np.eye(5, N_FEATURES)
    features = centers[blob] + rng.normal(size=(blob.size, N_FEATURES))
    pool = make_pool(ConstantScorer(), features=features)

    selection = get_strategy("margin_kmeans").select(pool, 5, seed=seed)

    assert sorted(blob[selection].tolist()) == [0, 1, 2, 3, 4]


def test_margin_kmeans_fills_the_batch_when_rows_repeat() -> None:
    # Two distinct feature vectors can make only two non-empty clusters.
    features = np.repeat(np.array([[0.0, 0.0], [9.0, 9.0]]), 20, axis=0)
    pool = UnlabeledPool(rows=np.arange(40), features=features, model=ConstantScorer())

    selection = get_strategy("margin_kmeans").select(pool, 6, seed=0)

    assert selection.size == 6
    assert np.unique(selection).size == 6


# -- registry ----------------------------------------------------------------


def test_registry_holds_the_five_strategies_sorted() -> None:
    assert strategy_names() == [
        "entropy",
        "least_confident",
        "margin",
        "margin_kmeans",
        "random",
    ]


def test_get_strategy_of_an_unknown_name_raises_and_lists_the_known_names() -> None:
    with pytest.raises(UnknownStrategyError) as caught:
        get_strategy("foo")

    assert str(caught.value) == (
        "unknown strategy 'foo'; known: "
        "entropy, least_confident, margin, margin_kmeans, random"
    )
    assert caught.value.name == "foo"


def test_register_of_a_taken_name_raises_and_keeps_the_first_class() -> None:
    original = STRATEGIES["entropy"]

    with pytest.raises(
        ValueError,
        match=re.escape(
            "strategy name 'entropy' is already registered by "
            "services.sampler.strategies.uncertainty.EntropyStrategy"
        ),
    ):

        @register
        class OtherEntropyStrategy(QueryStrategy):
            name = "entropy"

            def _select(
                self, pool: UnlabeledPool, batch_size: int, seed: int
            ) -> np.ndarray:
                return pool.rows[:batch_size]

    assert STRATEGIES["entropy"] is original


def test_register_of_a_new_class_makes_it_selectable_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(strategies_base, "STRATEGIES", dict(STRATEGIES))

    @register
    class FirstRowsStrategy(QueryStrategy):
        name = "first_rows"
        needs_model = False

        def _select(
            self, pool: UnlabeledPool, batch_size: int, seed: int
        ) -> np.ndarray:
            return pool.rows[:batch_size]

    assert "first_rows" in strategies_base.strategy_names()
    assert isinstance(strategies_base.get_strategy("first_rows"), FirstRowsStrategy)
    assert "first_rows" not in STRATEGIES


# -- pool --------------------------------------------------------------------


def test_pool_of_unsorted_rows_raises_value_error() -> None:
    with pytest.raises(ValueError, match="rows must be unique and ascending"):
        UnlabeledPool(rows=np.array([3, 1, 2]), features=np.zeros((5, 2)))


def test_pool_of_rows_outside_the_features_raises_value_error() -> None:
    with pytest.raises(
        ValueError, match=r"rows must index the 5 dataset rows, got 1\.\.5"
    ):
        UnlabeledPool(rows=np.array([1, 5]), features=np.zeros((5, 2)))


def test_pool_chunks_cover_every_row_once_as_contiguous_floats() -> None:
    features = np.arange(40, dtype=np.int32).reshape(20, 2)
    pool = UnlabeledPool(rows=np.arange(1, 20, 2), features=features, chunk_rows=4)

    chunks = list(pool.chunks())

    assert [rows.size for rows, _ in chunks] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([r for r, _ in chunks]), pool.rows)
    for rows, block in chunks:
        assert block.flags.c_contiguous
        assert block.dtype == np.float64
        np.testing.assert_array_equal(block, features[rows])
