"""Flow parameters, stopping rules and the comparison, without servers."""

from __future__ import annotations

import uuid

import pytest

from contracts import DatasetRef, ObjectRef, SplitMetrics
from services.orchestrator.experiment import RoundResult, RunState, stop_reason
from services.orchestrator.parameters import (
    ActiveLearningParameters,
    BaselineParameters,
    ParameterError,
    validated,
)
from services.orchestrator.report import Report, area_under_curve, summarise

REF = ObjectRef(uri="s3://reports/x/y.json", sha256="0" * 64, size_bytes=1)
DIGITS_POOL = 1149


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"initial_fraction": 0}, "initial_fraction: Input should be greater than 0"),
        ({"step_fraction": 1.5}, "step_fraction: Input should be less than or equal"),
        ({"rounds": 0}, "rounds: Input should be greater than or equal to 1"),
        ({"strategy": "oracle"}, "strategy: unknown strategy 'oracle'; known: entropy"),
        ({"params": {"depth": 40}}, "params.depth: Input should be less than"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
    ],
)
def test_bad_parameters_are_refused_naming_the_field(
    values: dict, message: str
) -> None:
    with pytest.raises(ParameterError, match=message):
        validated(ActiveLearningParameters, values)


def test_reference_plan_labels_57_rows_at_first_and_855_at_round_15() -> None:
    parameters = ActiveLearningParameters()

    assert parameters.initial_size(DIGITS_POOL) == 57
    assert parameters.step_size(DIGITS_POOL) == 57
    parameters.check_pool(DIGITS_POOL)
    assert parameters.initial_size(DIGITS_POOL) + 14 * 57 == 855


def test_plan_needing_more_labels_than_the_pool_is_refused_with_counts() -> None:
    parameters = ActiveLearningParameters(rounds=25, step_fraction=0.05)

    with pytest.raises(ParameterError, match="need 1425 labels; the pool has 1149"):
        parameters.check_pool(DIGITS_POOL)


def test_baseline_refuses_an_unsafe_run_key() -> None:
    with pytest.raises(ParameterError, match="run_key: String should match"):
        validated(BaselineParameters, {"run_key": "../../etc"})


def _metrics(accuracy: float) -> SplitMetrics:
    return SplitMetrics(
        n_rows=100,
        accuracy=accuracy,
        f1_macro=accuracy,
        f1_weighted=accuracy,
        precision_macro=accuracy,
        recall_macro=accuracy,
    )


def _state(
    kind: str, seed: int, accuracies: list[float], strategy: str = "margin"
) -> RunState:
    parameters = (
        {"seed": seed, "strategy": strategy} if kind != "baseline" else {"seed": seed}
    )
    state = RunState(
        run_key=f"{kind}-{strategy}-{seed}",
        kind=kind,  # type: ignore[arg-type]
        parameters=parameters,
        dataset=DatasetRef(dataset_id="digits-abc", manifest=REF),
        pool_size=1149,
        parent_run_id=uuid.uuid4().hex,
        stopped_reason="completed all rounds",
    )
    for index, accuracy in enumerate(accuracies):
        state.rounds.append(
            RoundResult(
                round=index,
                n_labeled=(index + 1) * 57 if kind != "baseline" else 1149,
                labeled=REF,
                model=REF,
                mlflow_run_id="0" * 32,
                fit_seconds=1.0,
                validation=_metrics(accuracy),
                test=_metrics(accuracy),
                report=REF,
            )
        )
    return state


def test_patience_stops_a_run_whose_validation_accuracy_stalls() -> None:
    parameters = ActiveLearningParameters(patience=2, min_improvement=0.01)
    state = _state("active_learning", 0, [0.80, 0.90, 0.905, 0.909])

    reason = stop_reason(parameters, state, next_size=5 * 57)

    assert reason is not None
    assert "did not improve by more than 0.01 in 2 round(s)" in reason


def test_label_budget_stops_before_labeling_past_it() -> None:
    parameters = ActiveLearningParameters(label_budget=150)
    state = _state("active_learning", 0, [0.8, 0.85])

    assert stop_reason(parameters, state, next_size=171) == (
        "label budget of 150 reached (114 labeled)"
    )


def test_run_goes_on_until_its_rounds_are_done() -> None:
    parameters = ActiveLearningParameters(rounds=3)

    assert (
        stop_reason(parameters, _state("active_learning", 0, [0.8, 0.9]), 171) is None
    )
    assert stop_reason(parameters, _state("active_learning", 0, [0.8] * 3), 228) == (
        "completed all 3 rounds"
    )


def test_area_under_curve_is_the_mean_accuracy_over_the_labeled_range() -> None:
    assert area_under_curve([0, 10], [0.5, 1.0]) == pytest.approx(0.75)
    assert area_under_curve([57, 114, 171], [0.6, 0.6, 0.6]) == pytest.approx(0.6)


def test_comparison_reports_baseline_spread_and_wins_against_random() -> None:
    states = [
        _state("baseline", 0, [0.97]),
        _state("baseline", 1, [0.98]),
        _state("active_learning", 0, [0.70, 0.90, 0.98], "margin"),
        _state("active_learning", 1, [0.72, 0.92, 0.985], "margin"),
        _state("active_learning", 0, [0.70, 0.80, 0.85], "random"),
        _state("active_learning", 1, [0.71, 0.79, 0.86], "random"),
    ]

    baseline, strategies = summarise(states)
    rows = {r["strategy"]: r for r in Report("k", baseline, strategies).rows()}

    assert baseline == pytest.approx((0.975, 0.00707, 2), abs=1e-4)
    assert strategies["margin"].labels_to_baseline == {0: 171, 1: 171}
    assert rows["margin"]["labels to baseline"] == "171 (2/2)"
    assert rows["random"]["labels to baseline"] == "not reached (0/2)"
    assert "beyond spread; wins 2/2" in rows["margin"]["vs random"]
    assert rows["random"]["vs random"] == "-"


def test_report_renders_markdown_and_html_with_the_table() -> None:
    baseline, strategies = summarise(
        [_state("baseline", 0, [0.97]), _state("active_learning", 0, [0.7, 0.9])]
    )
    report = Report("demo", baseline, strategies, files={"learning_curves.png": b""})

    markdown, page = report.markdown(), report.html()

    assert "| margin | 1 | 114 | 0.9000 |" in markdown
    assert "- margin, seed 0: completed all rounds" in markdown
    assert "<th>strategy</th>" in page and "<td>margin</td>" in page
    assert page.count("<table>") == page.count("</table>") == 1


def test_warm_round_adds_half_the_trees_unless_told_how_many() -> None:
    half = ActiveLearningParameters(warm_start=True, params={"iterations": 200})
    told = ActiveLearningParameters(
        warm_start=True, warm_start_iterations=30, params={"iterations": 200}
    )

    assert half.round_params(warm=False).iterations == 200
    assert half.round_params(warm=True).iterations == 100
    assert told.round_params(warm=True).iterations == 30
    assert told.round_params(warm=True).depth == told.params.depth
