"""The MLflow tracking client the services share.

Calls through :attr:`Tracking.client` are retried with backoff while the
server is unreachable (connection refused or dropped, timeouts, 502-504
answers), with a WARNING naming it, for at most ``retry_timeout_s``
(default 60 s); then they fail with a
:class:`~services.platform.errors.ComponentUnavailableError` naming MLflow
and its address.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from services.platform.errors import retry_while_unavailable

if TYPE_CHECKING:
    from contracts import SplitMetrics

logger = logging.getLogger(__name__)

COMMAND_TAG = "platform.command_id"
CORRELATION_TAG = "platform.correlation_id"
ROUND_TAG = "platform.round"
TRAINED_TAG = "platform.trained"
BEST_ALIAS = "best"

DEFAULT_RETRY_TIMEOUT_S = 60.0
_UNAVAILABLE_STATUS = frozenset({502, 503, 504})


class Tracking:
    """Experiments, runs and registered models on one MLflow server.

    Warning:
        MLflow reads its own HTTP retry policy from the environment only, and
        its default (seven retries, about four minutes) would hide an outage
        from the bounded, logged retry here. Unless the variables are set
        already, this sets ``MLFLOW_HTTP_REQUEST_MAX_RETRIES=2`` and
        ``MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=1`` for the process, which also
        shortens the retries of calls made through ``mlflow``'s module
        functions rather than :attr:`client`.
    """

    def __init__(
        self, tracking_uri: str, retry_timeout_s: float = DEFAULT_RETRY_TIMEOUT_S
    ) -> None:
        import mlflow
        from mlflow import MlflowClient

        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        mlflow.set_tracking_uri(tracking_uri)
        self.client: Any = _RetryingClient(
            MlflowClient(tracking_uri), tracking_uri, retry_timeout_s
        )
        self._experiments: dict[str, str] = {}
        self._lock = threading.Lock()

    def experiment_id(self, name: str) -> str:
        """Return the id of experiment ``name``, creating it if needed."""
        from mlflow.exceptions import MlflowException

        with self._lock:
            if name in self._experiments:
                return self._experiments[name]
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                try:
                    experiment_id = self.client.create_experiment(name)
                except MlflowException:
                    # Another service created it between the lookup and here.
                    experiment_id = self.client.get_experiment_by_name(
                        name
                    ).experiment_id
            else:
                experiment_id = experiment.experiment_id
            self._experiments[name] = str(experiment_id)
            return str(experiment_id)

    def discard_partial_runs(self, experiment_id: str, command_id: str) -> int:
        """Delete runs an earlier, interrupted attempt at a command left behind.

        A command is answered once (the bus's ledger sees to that), but a
        handler killed mid-way may have created a run; removing it keeps one
        run per command in effect.
        """
        found = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`{COMMAND_TAG}` = '{command_id}'"
        )
        # A run marked trained is an attempt that finished, perhaps on a
        # replica that was answering while this one was handed the command.
        runs = [run for run in found if run.data.tags.get(TRAINED_TAG) != "true"]
        for run in runs:
            logger.warning(
                "deleting run_id=%s left by an interrupted attempt at command_id=%s",
                run.info.run_id,
                command_id,
            )
            self.client.delete_run(run.info.run_id)
        return len(runs)


class _RetryingClient:
    """An ``MlflowClient`` whose public methods retry while the server is down."""

    def __init__(self, client: Any, address: str, retry_timeout_s: float) -> None:
        self._client = client
        self._address = address
        self._retry_timeout_s = retry_timeout_s

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if name.startswith("_") or not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            return retry_while_unavailable(
                lambda: attribute(*args, **kwargs),
                component="MLflow",
                address=self._address,
                transient=_unreachable,
                timeout_s=self._retry_timeout_s,
                logger=logger,
            )

        return call


def _unreachable(error: BaseException) -> bool:
    """Return whether ``error`` says the server could not be reached or answer."""
    import requests
    from mlflow.exceptions import MlflowException

    for link in _chain(error):
        if isinstance(
            link,
            requests.ConnectionError
            | requests.Timeout
            | requests.exceptions.RetryError
            | ConnectionError
            | TimeoutError,
        ):
            return True
        if isinstance(link, requests.HTTPError) and link.response is not None:
            return link.response.status_code in _UNAVAILABLE_STATUS
        if (
            isinstance(link, MlflowException)
            # MLflow's exceptions carry no annotations.
            and link.get_http_status_code() in _UNAVAILABLE_STATUS  # type: ignore[no-untyped-call]
        ):
            return True
    return False


def _chain(error: BaseException) -> Iterator[BaseException]:
    """Yield ``error`` and the errors it was raised from or during."""
    seen: set[int] = set()
    link: BaseException | None = error
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        link = link.__cause__ or link.__context__


def split_metrics(
    validation: SplitMetrics,
    test: SplitMetrics,
    step: int,
    model_id: str | None = None,
) -> list[Any]:
    """Return MLflow metrics ``<split>_<score>`` for both splits at ``step``.

    With ``model_id`` (a logged model's id) the metrics are the model's too.
    """
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [
        Metric(f"{split}_{name}", float(value), now, step, model_id=model_id)
        for split, scores in (("validation", validation), ("test", test))
        for name, value in scores.model_dump().items()
        if name != "n_rows"
    ]
