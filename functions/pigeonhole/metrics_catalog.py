"""Every CloudWatch metric the functions emit: name, unit and dimension set.

Alarms (in infra/ and in the local runtime) are built from these definitions only, and a contract
test checks that the functions really emit them, so an alarm can never watch a metric nobody sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

NAMESPACE: Final = "Pigeonhole"

# Dimension names. Powertools adds `service` to every metric it emits.
DIM_SERVICE: Final = "service"
DIM_MODEL_VERSION: Final = "ModelVersion"
DIM_LABEL: Final = "Label"
# The Lambda version that emitted a datapoint (AWS_LAMBDA_FUNCTION_VERSION): separates a canary's new
# version from the old one where the model version cannot (a failure before the model is loaded).
DIM_FUNCTION_VERSION: Final = "FunctionVersion"

SERVICE_CLASSIFIER: Final = "classifier"


@dataclass(frozen=True)
class MetricDef:
    name: str
    unit: str  # a CloudWatch / Powertools MetricUnit value
    dimensions: tuple[str, ...]
    service: str
    description: str


_CLS = (DIM_SERVICE, DIM_MODEL_VERSION)

EVENTS_RECEIVED = MetricDef("EventsReceived", "Count", _CLS, SERVICE_CLASSIFIER, "records handed to the classifier")
EVENTS_CLASSIFIED = MetricDef("EventsClassified", "Count", _CLS, SERVICE_CLASSIFIER, "valid events the model labelled")
EVENTS_AUTO = MetricDef("EventsRoutedAuto", "Count", _CLS, SERVICE_CLASSIFIER, "confident results on the output bus")
EVENTS_REVIEW = MetricDef("EventsRoutedToReview", "Count", _CLS, SERVICE_CLASSIFIER, "low-confidence results to review")
EVENTS_QUARANTINED = MetricDef("EventsQuarantined", "Count", _CLS, SERVICE_CLASSIFIER, "invalid events quarantined")
LOW_CONFIDENCE_RATE = MetricDef("LowConfidenceRate", "Percent", _CLS, SERVICE_CLASSIFIER, "share to review, per batch")
QUARANTINE_RATE = MetricDef("QuarantineRate", "Percent", _CLS, SERVICE_CLASSIFIER, "share quarantined, per batch")
CONFIDENCE = MetricDef("Confidence", "None", _CLS, SERVICE_CLASSIFIER, "top-1 probability of each event")
PUBLISH_FAILURES = MetricDef("PublishFailures", "Count", _CLS, SERVICE_CLASSIFIER, "records failed for retry by SQS")
INFERENCE_TIME = MetricDef("InferenceTime", "Milliseconds", _CLS, SERVICE_CLASSIFIER, "one ONNX run over a batch")
EVENTS_CONFIDENT = MetricDef(
    "EventsRouteConfident", "Count", _CLS, SERVICE_CLASSIFIER, "route reason confident (auto, at or above threshold)"
)
EVENTS_LOW_CONFIDENCE = MetricDef(
    "EventsRouteLowConfidence", "Count", _CLS, SERVICE_CLASSIFIER, "route reason low_confidence (below its threshold)"
)
EVENTS_UNKNOWN = MetricDef(
    "EventsRouteUnknown", "Count", _CLS, SERVICE_CLASSIFIER, "route reason unknown (score at or above threshold)"
)
UNKNOWN_RATE = MetricDef(
    "UnknownRate", "Percent", _CLS, SERVICE_CLASSIFIER, "share routed as unknown, per batch (models with the score)"
)
CLASS_PREDICTED = MetricDef(
    "ClassPredicted", "Count", (DIM_SERVICE, DIM_MODEL_VERSION, DIM_LABEL), SERVICE_CLASSIFIER, "events per label"
)
MODEL_LOAD_FAILURES = MetricDef(
    "ModelLoadFailures", "Count", (DIM_SERVICE,), SERVICE_CLASSIFIER, "containers that could not load the model"
)
MODEL_LOAD_FAILURES_BY_VERSION = MetricDef(
    "ModelLoadFailures",
    "Count",
    (DIM_SERVICE, DIM_FUNCTION_VERSION),
    SERVICE_CLASSIFIER,
    "the same failures by Lambda version, for the canary",
)

CLASSIFIER_METRICS: Final = (
    EVENTS_RECEIVED,
    EVENTS_CLASSIFIED,
    EVENTS_AUTO,
    EVENTS_REVIEW,
    EVENTS_QUARANTINED,
    EVENTS_CONFIDENT,
    EVENTS_LOW_CONFIDENCE,
    EVENTS_UNKNOWN,
    UNKNOWN_RATE,
    LOW_CONFIDENCE_RATE,
    QUARANTINE_RATE,
    CONFIDENCE,
    PUBLISH_FAILURES,
    INFERENCE_TIME,
    CLASS_PREDICTED,
    MODEL_LOAD_FAILURES,
    MODEL_LOAD_FAILURES_BY_VERSION,
)

# --- Drift and feedback (emitted by the drift and feedback functions) ---------------------------
SERVICE_DRIFT: Final = "drift"
SERVICE_FEEDBACK: Final = "feedback"
DIM_SIGNAL: Final = "Signal"  # class_mix, confidence, feature:<name>, accuracy

_DRIFT = (DIM_SERVICE, DIM_MODEL_VERSION)
_FEEDBACK = (DIM_SERVICE, DIM_MODEL_VERSION)

DRIFT_SEVERITY = MetricDef(
    "DriftSeverity", "None", _DRIFT, SERVICE_DRIFT, "worst verdict of a closed window: 0 ok, 1 warn, 2 page"
)
DRIFT_PSI = MetricDef(
    "DriftPSI", "None", (DIM_SERVICE, DIM_MODEL_VERSION, DIM_SIGNAL), SERVICE_DRIFT, "PSI of one signal vs baseline"
)
DRIFT_JS = MetricDef(
    "DriftJS", "None", (DIM_SERVICE, DIM_MODEL_VERSION, DIM_SIGNAL), SERVICE_DRIFT, "Jensen-Shannon distance"
)
EXPECTED_ACCURACY = MetricDef(
    "ExpectedAccuracy", "None", _DRIFT, SERVICE_DRIFT, "mean top-1 probability of a closed window (label-free)"
)
WINDOW_EVENTS = MetricDef("WindowEvents", "Count", _DRIFT, SERVICE_DRIFT, "events counted in a closed window")
LABELLED_EVENTS = MetricDef("LabelledEvents", "Count", _FEEDBACK, SERVICE_FEEDBACK, "labels joined to a prediction")
MISCLASSIFIED_EVENTS = MetricDef(
    "MisclassifiedEvents", "Count", _FEEDBACK, SERVICE_FEEDBACK, "joined labels that disagree with the prediction"
)
# Σ sampling weight (1 / capture rate) of those labels: the accuracy SLO weighs each label by how many
# classified events it stands for, so the capture policy's over-sampling of review-routed events does
# not bias it (pigeonhole.feedback.estimates).
LABELLED_WEIGHT = MetricDef(
    "LabelledWeight", "Count", _FEEDBACK, SERVICE_FEEDBACK, "Σ sampling weight of the labels joined"
)
MISCLASSIFIED_WEIGHT = MetricDef(
    "MisclassifiedWeight", "Count", _FEEDBACK, SERVICE_FEEDBACK, "Σ sampling weight of the misclassified labels"
)
FEEDBACK_UNMATCHED = MetricDef(
    "FeedbackUnmatched", "Count", (DIM_SERVICE,), SERVICE_FEEDBACK, "labels with an unknown event id or label"
)

# Emitted only when a container cannot read its model package (pigeonhole.entry.telemetry.model_load):
# the classifier's MODEL_LOAD_FAILURES under the drift and feedback services' own dimension.
DRIFT_MODEL_LOAD_FAILURES = MetricDef(
    "ModelLoadFailures", "Count", (DIM_SERVICE,), SERVICE_DRIFT, "drift containers that could not read the manifest"
)
FEEDBACK_MODEL_LOAD_FAILURES = MetricDef(
    "ModelLoadFailures",
    "Count",
    (DIM_SERVICE,),
    SERVICE_FEEDBACK,
    "feedback containers that could not read the manifest",
)

DRIFT_METRICS: Final = (DRIFT_SEVERITY, DRIFT_PSI, DRIFT_JS, EXPECTED_ACCURACY, WINDOW_EVENTS)
FEEDBACK_METRICS: Final = (
    LABELLED_EVENTS,
    MISCLASSIFIED_EVENTS,
    LABELLED_WEIGHT,
    MISCLASSIFIED_WEIGHT,
    FEEDBACK_UNMATCHED,
)
MONITOR_LOAD_METRICS: Final = (DRIFT_MODEL_LOAD_FAILURES, FEEDBACK_MODEL_LOAD_FAILURES)
ALL_METRICS: Final = CLASSIFIER_METRICS + DRIFT_METRICS + FEEDBACK_METRICS + MONITOR_LOAD_METRICS
