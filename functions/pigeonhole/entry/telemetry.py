"""Model tagging of logs and metrics, and the model-load-failure metric, the same in every function."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from pigeonhole import metrics_catalog as mc
from pigeonhole.constants import ENV_LAMBDA_FUNCTION_VERSION
from pigeonhole.model.manifest import Manifest


def tag_model(manifest: Manifest, logger: Logger, metrics: Metrics | None = None) -> None:
    """Name the model on every later log line, and make its version a default metric dimension.

    A log line or a data point that cannot be tied to the model package that produced it is of little
    use during a canary, when two versions serve at once.
    """
    logger.append_keys(model_name=manifest.name, model_version=manifest.version, model_sha256=manifest.model.sha256)
    if metrics is not None:
        metrics.set_default_dimensions(**{mc.DIM_MODEL_VERSION: manifest.version})


@contextmanager
def model_load(
    metric: mc.MetricDef,
    logger: Logger,
    model_dir: Path,
    by_version: mc.MetricDef | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[None]:
    """Around loading a model package: on failure log it, count ``metric`` (its alarm pages), re-raise.

    ``by_version`` counts the same failure once more under the Lambda version running (from Lambda's
    AWS_LAMBDA_FUNCTION_VERSION), so a canary can judge its new version alone: the model version is
    unknown when the package fails to load. The metrics are flushed at once (``single_metric``): the
    container is about to fail its init, and the handler's ``log_metrics`` flush would never run.
    """
    if metric.dimensions != (mc.DIM_SERVICE,) or metric.unit != MetricUnit.Count.value:
        raise ValueError(f"{metric.name}: a model-load metric is a Count with the service dimension only")
    if by_version is not None and by_version.dimensions != (mc.DIM_SERVICE, mc.DIM_FUNCTION_VERSION):
        raise ValueError(f"{by_version.name}: a per-version model-load metric has service and function version")
    try:
        yield
    except Exception:
        logger.exception("model failed to load", extra={"model_dir": str(model_dir)})
        dimension_sets = [{mc.DIM_SERVICE: metric.service}]
        version = (os.environ if env is None else env).get(ENV_LAMBDA_FUNCTION_VERSION)
        if by_version is not None and version:
            dimension_sets.append({mc.DIM_SERVICE: by_version.service, mc.DIM_FUNCTION_VERSION: version})
        for dimensions in dimension_sets:
            with single_metric(
                name=metric.name,
                unit=MetricUnit.Count,
                value=1,
                namespace=mc.NAMESPACE,
                default_dimensions=dimensions,
            ):
                pass
        raise
