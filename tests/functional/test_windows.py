"""Window counters written by the classifier: exact under duplicates, redelivery, crashes and concurrency.

Every test checks the final DynamoDB state against counts computed independently from the distinct
events, so "exactly once" means: each distinct event id contributes once, whatever happened on the way.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest

from pigeonhole import constants as c
from pigeonhole.adapters.dynamodb import DynamoDBAdapter
from pigeonhole.capture import CapturePolicy, sampled
from pigeonhole.classify import handler as handler_module
from pigeonhole.classify.routing import Classification
from pigeonhole.config import Settings
from pigeonhole.drift import batches
from pigeonhole.drift import layout as keys
from pigeonhole.drift.counters import CounterLayout, WindowCounters
from pigeonhole.drift.recorder import WindowRecorder
from pigeonhole.exceptions import ConfigurationError
from pigeonhole.model.features import input_features, normalize_text

from .conftest import NAMES, Context, Stack
from .monitoring_support import (
    CLASSES,
    PREDICTIONS,
    VERSION,
    VOCABULARY,
    WINDOWS,
    CrashError,
    FaultyClient,
    at,
    classification,
    create_tables,
    get_window,
    manifest,
    moto_dynamodb,
    quarantine_reason,
    runtime,
    scan,
    serialize_moto,
    write_tiny_model,
)

NOW = at("2026-11-29T07:03:30Z").timestamp()
W0700 = "2026-11-29T07:00:00Z"
TEXTS = ["when will my card arrive", "what is the exchange rate", "lost card", "zzz qqq unknown words here"]


@pytest.fixture
def ddb() -> Iterator[Any]:
    with moto_dynamodb() as client:
        yield client


def recorder(client: Any, **kwargs: Any) -> WindowRecorder:
    store_kwargs = {k: kwargs.pop(k) for k in ("markers_per_transaction", "sleep", "max_attempts") if k in kwargs}
    store = DynamoDBAdapter(client, rng=random.Random(0), **store_kwargs)
    return WindowRecorder(store, WINDOWS, PREDICTIONS, clock=lambda: NOW, **kwargs)


def make_events(n: int, seed: int = 0, prefix: str = "evt", when: str = "2026-11-29T07:01:00Z") -> list[Classification]:
    rng = random.Random(seed)
    return [
        classification(
            f"{prefix}-{i}",
            rng.randrange(len(CLASSES)),
            round(rng.uniform(0.3, 1.0), 6),
            when=when,
            text=rng.choice(TEXTS),
        )
        for i in range(n)
    ]


def batch(events: list[Classification], tag: str = "m") -> list[tuple[str, Classification]]:
    """SQS records: each delivery of an event has its own message id."""
    return [(f"{tag}-{e.event.id}", e) for e in events]


def expected(events: list[Classification], quarantined: int = 0) -> dict[str, int | float]:
    """Counters of the distinct events, computed without the recorder."""
    distinct = list({e.event.id: e for e in events}.values())
    layout = CounterLayout.from_baseline(manifest().drift_baseline)
    features = input_features([normalize_text(e.event.model_input) for e in distinct], VOCABULARY)
    counters = WindowCounters.from_batch(
        layout,
        predicted=[e.label_index for e in distinct],
        confidence=[e.confidence for e in distinct],
        features=features,
        review=[e.route == "review" for e in distinct],
        quarantined=quarantined,
    )
    return counters.to_item_updates()


def assert_window(client: Any, start: str, want: dict[str, int | float]) -> None:
    got = get_window(client, start)
    for name, value in want.items():
        assert got.get(name, 0) == pytest.approx(value, rel=1e-9), name
    extra = {k for k in got if k not in want and k not in ("pk", "sk", "model_version", "window_start", "expires_at")}
    assert not {k for k in extra if got[k] != 0}, f"unexpected counters {extra}"


# -- counting and layout ------------------------------------------------------------------------


def test_a_batch_writes_one_item_per_window_with_mergeable_counters(ddb: Any) -> None:
    late = make_events(3, seed=2, prefix="late", when="2026-11-29T06:52:00Z")  # late: counted in its own window
    current = make_events(6, seed=1)
    faulty = FaultyClient(ddb)
    rec = recorder(faulty)
    failures = rec.observe(batch(current + late), [("m-bad", quarantine_reason())], runtime())
    assert failures == {}
    assert faulty.transactions == []  # no transaction, no condition: nothing to conflict
    puts = [kw["Item"] for op, kw in faulty.writes if op == "put_item" and kw["TableName"] == WINDOWS]
    batch_items = [i for i in puts if not i["pk"]["S"].endswith("#late")]
    assert {i["pk"]["S"] for i in batch_items} == {f"E#{VERSION}#000"}  # the shard in the partition key
    assert sorted(i["sk"]["S"].split("#")[0] for i in batch_items) == ["2026-11-29T06:50:00Z", W0700]  # one per window
    # The 06:50 window had ended when the batch was counted: a late pointer tells the drift function.
    assert [i["sk"]["S"].split("#")[0] for i in puts if i["pk"]["S"].endswith("#late")] == ["2026-11-29T06:50:00Z"]
    assert all(int(i["expires_at"]["N"]) == keys.expires_at(NOW, 14) for i in batch_items)  # = capture TTL
    # Quarantined events count in the window of their arrival (NOW), not classified ones.
    assert_window(ddb, W0700, expected(current, quarantined=1))
    assert_window(ddb, "2026-11-29T06:50:00Z", expected(late))
    item = get_window(ddb, W0700)
    # Histograms use the baseline's bin edges: 2 features in the baseline -> only those are counted.
    assert any(k.startswith("f_length_chars_") for k in item)
    assert any(k.startswith("f_oov_share_") for k in item)
    assert not any(k.startswith("f_tokens_") for k in item)


def test_counters_read_back_into_window_counters(ddb: Any) -> None:
    events = make_events(12, seed=3)
    recorder(ddb).observe(batch(events), [], runtime())
    layout = keys.counter_layout(manifest())
    (raw,) = ddb.query(
        TableName=WINDOWS,
        KeyConditionExpression="pk = :p AND begins_with(sk, :w)",
        ExpressionAttributeValues={":p": {"S": f"E#{VERSION}#000"}, ":w": {"S": W0700}},
    )["Items"]
    records = batches.decode(raw["r"]["B"], int(raw["nf"]["N"]))
    assert len(records) == 12
    counters = batches.counters_from_records(
        layout, batches.merged_records([{"pk": "p", "sk": "s", "r": raw["r"]["B"], "nf": 2}])
    )
    assert counters.events == 12
    assert counters.class_counts.tolist() == np.bincount([e.label_index for e in events], minlength=3).tolist()
    assert counters.confidence_sum == pytest.approx(sum(e.confidence for e in events))


def test_window_length_is_configurable(ddb: Any) -> None:
    events = [classification("e1", 0, 0.9, when="2026-11-29T07:59:00Z", window_seconds=3600)]
    recorder(ddb, window_seconds=3600).observe(batch(events), [], runtime())
    assert get_window(ddb, "2026-11-29T07:00:00Z")["n"] == 1


# -- exactly once ---------------------------------------------------------------------------------


def test_duplicates_within_a_batch_count_once_and_all_succeed(ddb: Any) -> None:
    events = make_events(4)
    records = batch(events, "a") + batch(events[:2], "b")  # the same event ids as two more SQS messages
    assert recorder(ddb).observe(records, [], runtime()) == {}
    assert_window(ddb, W0700, expected(events))


def test_redelivered_batch_is_not_counted_again(ddb: Any) -> None:
    events = make_events(8)
    rec = recorder(ddb)
    assert rec.observe(batch(events), [], runtime()) == {}
    assert rec.observe(batch(events), [], runtime()) == {}  # SQS delivers the whole batch again
    assert_window(ddb, W0700, expected(events))


def test_overlapping_batches_count_each_event_once_when_merged(ddb: Any) -> None:
    """A redelivery in a different composition (SQS retried some records with new ones) writes a second
    item; the merge counts the events both items hold once."""
    events = make_events(10)
    rec = recorder(ddb)
    assert rec.observe(batch(events[:6]), [], runtime()) == {}
    assert rec.observe(batch(events[3:], "x"), [], runtime()) == {}
    assert len([i for i in scan(ddb, WINDOWS) if i["pk"].startswith("E#")]) == 2
    assert_window(ddb, W0700, expected(events))


def test_a_redelivery_of_the_same_batch_overwrites_its_item(ddb: Any) -> None:
    events = make_events(5)
    rec = recorder(ddb)
    for tag in ("m", "again", "third"):  # new message ids (EventBridge duplicates), the same event ids
        assert rec.observe(batch(events, tag), [], runtime()) == {}
    assert len([i for i in scan(ddb, WINDOWS) if i["pk"].startswith("E#")]) == 1
    assert_window(ddb, W0700, expected(events))


def test_crash_after_the_write_before_returning(ddb: Any) -> None:
    events = make_events(7)
    faulty = FaultyClient(ddb)
    faulty.write_crash_after = {1}
    rec = recorder(faulty)
    with pytest.raises(CrashError):
        rec.observe(batch(events), [], runtime())
    assert rec.observe(batch(events), [], runtime()) == {}  # redelivery after the crash
    assert_window(ddb, W0700, expected(events))


def test_crash_before_the_write(ddb: Any) -> None:
    events = make_events(7)
    faulty = FaultyClient(ddb)
    faulty.write_crash_before = {1}
    rec = recorder(faulty)
    with pytest.raises(CrashError):
        rec.observe(batch(events), [], runtime())
    assert get_window(ddb, W0700).get("n", 0) == 0
    assert rec.observe(batch(events), [], runtime()) == {}
    assert_window(ddb, W0700, expected(events))


@pytest.mark.parametrize(("crash_after", "counted_early"), [(2, 0), (3, 4)])
def test_crash_between_the_windows_of_a_batch(ddb: Any, crash_after: int, counted_early: int) -> None:
    """A batch spanning two windows writes its captures, then per window (the ended one first) its late
    pointer and its item: a crash after the pointer (2) or after the first item (3) leaves the windows
    partly written; the redelivery, whole or in another composition, completes them without double counts."""
    early = make_events(4, seed=4, prefix="early", when="2026-11-29T06:58:00Z")
    current = make_events(6, seed=5)
    faulty = FaultyClient(ddb)
    faulty.write_crash_after = {crash_after}
    rec = recorder(faulty)
    with pytest.raises(CrashError):
        rec.observe(batch(early + current), [], runtime())
    assert get_window(ddb, "2026-11-29T06:55:00Z").get("n", 0) == counted_early
    assert get_window(ddb, W0700).get("n", 0) == 0
    retry = recorder(ddb)
    assert retry.observe(batch(early[1:] + current[2:], "r"), [], runtime()) == {}  # another composition
    assert retry.observe(batch(early[:1] + current[:2], "s"), [], runtime()) == {}
    assert_window(ddb, "2026-11-29T06:55:00Z", expected(early))
    assert_window(ddb, W0700, expected(current))


def test_a_failed_write_fails_its_records_for_sqs_to_retry(ddb: Any) -> None:
    from botocore.exceptions import ClientError

    events = make_events(5)
    faulty = FaultyClient(ddb)
    faulty.write_errors = {1: ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "PutItem")}
    rec = recorder(faulty)
    records = batch(events) + batch(events[:1], "dup")
    failures = rec.observe(records, [], runtime())
    assert set(failures) == {m for m, _ in records}  # the in-batch duplicate shares its original's fate
    assert "AccessDeniedException" in next(iter(failures.values()))
    assert get_window(ddb, W0700).get("n", 0) == 0
    assert scan(ddb, PREDICTIONS) == []  # no capture for an event whose window was not written
    assert rec.observe(records, [], runtime()) == {}
    assert_window(ddb, W0700, expected(events))


def test_throttled_writes_are_retried_with_backoff(ddb: Any) -> None:
    from botocore.exceptions import ClientError

    events = make_events(3)
    faulty = FaultyClient(ddb)
    throttled = ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow"}}, "Put")
    faulty.write_errors = {1: throttled, 2: throttled}
    sleeps: list[float] = []
    rec = recorder(faulty, sleep=sleeps.append)
    assert rec.observe(batch(events), [], runtime()) == {}
    assert len(sleeps) == 2
    assert_window(ddb, W0700, expected(events))


def test_persistent_throttling_fails_the_records(ddb: Any) -> None:
    from botocore.exceptions import ClientError

    events = make_events(3)
    faulty = FaultyClient(ddb)
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow"}}, "PutItem")
    faulty.write_errors = dict.fromkeys(range(1, 10), throttled)
    rec = recorder(faulty, sleep=lambda _: None, max_attempts=3)
    failures = rec.observe(batch(events), [], runtime())
    assert len(failures) == 3
    assert "ThrottlingException" in next(iter(failures.values()))
    assert faulty.write_calls == 3
    assert get_window(ddb, W0700).get("n", 0) == 0


def test_quarantined_events_are_counted_exactly_once(ddb: Any) -> None:
    rec = recorder(ddb)
    # By event id: an EventBridge duplicate arrives as a new SQS message with the same event id.
    assert rec.observe([], [("m1", quarantine_reason("bad-1")), ("m2", quarantine_reason("bad-1"))], runtime()) == {}
    assert rec.observe([], [("m3", quarantine_reason("bad-1"))], runtime()) == {}
    # Without a usable id: by SQS message id, which a redelivery keeps.
    assert rec.observe([], [("m4", quarantine_reason(None))], runtime()) == {}
    assert rec.observe([], [("m4", quarantine_reason(None))], runtime()) == {}
    item = get_window(ddb, W0700)
    assert item["q"] == 2
    assert item.get("n", 0) == 0
    assert scan(ddb, PREDICTIONS) == []  # counted in the batch items; nothing is captured


def test_a_quarantined_redelivery_after_its_window_ended_counts_once_where_it_arrived(ddb: Any) -> None:
    """A quarantined record has no trustworthy time: it is counted in the window of its arrival. A
    redelivery (its first write landed but the answer was lost) comes after the window ended; counted by
    the clock it would land in the next window too, so the arrival is SQS's SentTimestamp, kept by SQS."""
    sent = at("2026-11-29T07:04:59Z").timestamp()
    clock = [sent + 0.5]
    store = DynamoDBAdapter(ddb, rng=random.Random(0))
    rec = WindowRecorder(store, WINDOWS, PREDICTIONS, clock=lambda: clock[0])
    arrivals = {"m1": sent, "m2": sent}
    reasons = [("m1", quarantine_reason("bad-1")), ("m2", quarantine_reason(None))]
    assert rec.observe([], reasons, runtime(), arrivals=arrivals) == {}
    clock[0] = sent + 2.0  # the redelivery, in the next window
    assert rec.observe([], reasons, runtime(), arrivals=arrivals) == {}
    assert get_window(ddb, W0700)["q"] == 2
    assert get_window(ddb, "2026-11-29T07:05:00Z").get("q", 0) == 0
    # Without an arrival (no SentTimestamp) the clock places it: the only case where the window can move.
    assert rec.observe([], [("m3", quarantine_reason("bad-3"))], runtime()) == {}
    assert get_window(ddb, "2026-11-29T07:05:00Z")["q"] == 1


def test_sharded_windows_merge_to_the_same_counts(ddb: Any) -> None:
    events = make_events(30)
    rec = recorder(ddb, shards=4)
    for start in range(0, 30, 5):
        assert rec.observe(batch(events[start : start + 5]), [], runtime()) == {}
    partitions = {i["pk"] for i in scan(ddb, WINDOWS)}
    assert len(partitions) > 1  # six batches over four shards: the shard is in the partition key
    assert partitions <= {f"E#{VERSION}#{shard:03d}" for shard in range(4)}
    assert_window(ddb, W0700, expected(events))


def test_concurrent_writers_with_overlapping_duplicates_count_exactly(
    ddb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight threads (eight warm Lambda containers) feed overlapping batches drawn from one pool of events:
    every event is delivered 3 times on average, by different threads and in different batches."""
    serialize_moto(monkeypatch)
    pool = make_events(60, seed=7) + make_events(20, seed=8, prefix="late", when="2026-11-29T06:58:00Z")
    deliveries = [e for e in pool for _ in range(3)]
    random.Random(42).shuffle(deliveries)
    threads = 8
    per_thread = [deliveries[i::threads] for i in range(threads)]
    errors: list[BaseException] = []
    failures: dict[str, str] = {}
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        try:
            rec = recorder(ddb, shards=2)
            start.wait()
            mine = per_thread[n]
            for i in range(0, len(mine), 10):
                chunk = mine[i : i + 10]
                failures.update(rec.observe([(f"t{n}-{i}-{j}", e) for j, e in enumerate(chunk)], [], runtime()))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not errors
    assert failures == {}
    assert_window(ddb, W0700, expected([e for e in pool if e.window == W0700]))
    assert_window(ddb, "2026-11-29T06:55:00Z", expected([e for e in pool if e.window != W0700]))
    assert len(scan(ddb, PREDICTIONS)) == len(pool)


# -- prediction capture ---------------------------------------------------------------------------


def test_capture_share_is_deterministic_per_event_id(ddb: Any) -> None:
    events = make_events(200, seed=5)
    rec = recorder(ddb, capture=CapturePolicy(review_rate=0.25, auto_rate=0.25), capture_ttl_days=7)
    assert rec.observe(batch(events), [], runtime()) == {}  # a simulation-sized batch
    markers = {m["pk"]: m for m in scan(ddb, PREDICTIONS)}
    captured = {pk for pk, m in markers.items() if m["captured"]}
    assert captured == set(markers)  # only captures are written: counting needs no marker
    assert 0.15 < len(captured) / 200 < 0.35
    # The choice is a pure function of the id: a retry (or another container) makes the same one.
    assert captured == {keys.prediction_pk(VERSION, e.event.id) for e in events if sampled(e.event.id, 0.25)}
    some = markers[next(iter(sorted(captured)))]
    event = next(e for e in events if keys.prediction_pk(VERSION, e.event.id) == some["pk"])
    assert some["label"] == event.label
    assert float(some["weight"]) == 4.0  # 1 / rate: the label join weighs it for unbiased accuracy
    assert int(some["label_index"]) == event.label_index
    assert float(some["confidence"]) == pytest.approx(event.confidence)
    assert some["window"] == W0700
    assert some["event_time"] == "2026-11-29T07:01:00Z"
    assert int(some["expires_at"]) == keys.expires_at(NOW, 7)
    assert_window(ddb, W0700, expected(events))  # every event counted, captured or not


def test_a_unit_dynamodb_cannot_store_is_skipped_and_its_neighbours_counted(ddb: Any) -> None:
    """A NaN confidence is that unit's own content: skipped (and logged), never its batch's failure."""
    events = make_events(6, seed=7)
    bad = classification("evt-nan", 0, float("nan"))
    rec = recorder(ddb)
    assert rec.observe(batch([*events[:3], bad, *events[3:]]), [], runtime()) == {}
    assert_window(ddb, W0700, expected(events))
    assert keys.prediction_pk(VERSION, "evt-nan") not in {m["pk"] for m in scan(ddb, PREDICTIONS)}


def test_features_of_a_batch_equal_those_computed_one_event_at_a_time(ddb: Any, monkeypatch: Any) -> None:
    """The recorder featurizes a batch in one pass; when that pass fails, each unit computes its own."""
    events = make_events(8, seed=8)
    rec = recorder(ddb)
    units = rec._units(batch(events), [], runtime(), NOW, {})
    one_by_one = [input_features([normalize_text(e.event.model_input)], VOCABULARY) for e in events]
    assert [u.features for u in units] == [{k: float(v[0]) for k, v in f.items()} for f in one_by_one]
    monkeypatch.setattr(WindowRecorder, "_features", staticmethod(lambda items, runtime: {}))
    assert [u.features for u in rec._units(batch(events), [], runtime(), NOW, {})] == [u.features for u in units]


def test_full_capture_by_default(ddb: Any) -> None:
    events = make_events(20)
    recorder(ddb).observe(batch(events), [], runtime())
    assert all(m["captured"] for m in scan(ddb, PREDICTIONS))
    assert sampled("x", 1.0)
    assert not sampled("x", 0.0)


def test_a_baseline_the_runtime_cannot_compute_is_refused() -> None:
    m = manifest()
    weird = m.model_copy(
        update={
            "drift_baseline": m.drift_baseline.model_copy(
                update={"features": {**m.drift_baseline.features, "sentiment": m.drift_baseline.confidence}}
            )
        }
    )
    with pytest.raises(ConfigurationError, match="sentiment"):
        keys.counter_layout(weird)


# -- settings and wiring --------------------------------------------------------------------------

BASE_ENV = {
    c.ENV_REVIEW_QUEUE_URL: "http://q/review",
    c.ENV_QUARANTINE_QUEUE_URL: "http://q/quarantine",
    c.ENV_OUTPUT_BUS_NAME: "out",
}


def test_recorder_settings_from_the_environment() -> None:
    s = Settings.from_env(BASE_ENV)
    assert (s.windows_table, s.predictions_table, s.capture, s.capture_ttl_days) == (None, None, CapturePolicy(), 14)
    s = Settings.from_env(
        {
            **BASE_ENV,
            c.ENV_WINDOWS_TABLE: "w",
            c.ENV_PREDICTIONS_TABLE: "p",
            c.ENV_CAPTURE_AUTO_RATE: "0.1",
            c.ENV_CAPTURE_TTL_DAYS: "3",
            c.ENV_WINDOW_SHARDS: "4",
        }
    )
    assert (s.windows_table, s.predictions_table, s.capture, s.capture_ttl_days, s.window_shards) == (
        "w",
        "p",
        CapturePolicy(review_rate=1.0, auto_rate=0.1),
        3,
        4,
    )
    with pytest.raises(ConfigurationError, match=c.ENV_PREDICTIONS_TABLE):
        Settings.from_env({**BASE_ENV, c.ENV_WINDOWS_TABLE: "w"})
    with pytest.raises(ConfigurationError, match=c.ENV_CAPTURE_AUTO_RATE):
        Settings.from_env({**BASE_ENV, c.ENV_CAPTURE_AUTO_RATE: "2"})
    with pytest.raises(ConfigurationError, match="replaced"):  # the retired flat rate is not silently ignored
        Settings.from_env({**BASE_ENV, c.ENV_CAPTURE_RATE: "0.5"})


def test_the_classifier_counts_its_batches_through_the_handler(stack: Stack, tmp_path: Path, context: Context) -> None:
    """The real handler with a real (tiny) ONNX model: the recorder is attached when the windows table
    is set, and a redelivered batch (the handler crashed before answering) is not counted twice."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    create_tables(client)
    settings = Settings(
        model_dir=write_tiny_model(tmp_path / "model"),
        review_queue_url=stack.review_url,
        quarantine_queue_url=stack.quarantine_url,
        output_bus_name=NAMES.output_bus,
        windows_table=WINDOWS,
        predictions_table=PREDICTIONS,
        event_max_age_seconds=100 * 365 * 86_400,  # the events carry fixed times (2026-11-29)
        capture=CapturePolicy.everything(),  # the default keeps a tenth of the auto-routed: see below
    )
    service = handler_module.build_service(settings, session=boto3.Session(region_name="us-east-1"))
    assert isinstance(service.observer, WindowRecorder)
    handler_module.reset_for_tests(service)
    try:
        bodies = [
            json.dumps({"id": f"evt-{i}", "time": "2026-11-29T07:01:00Z", "text": t})
            for i, t in enumerate(["when will my new card arrive", "what is the exchange rate for euros"])
        ]
        bodies.append(json.dumps({"id": "evt-bad", "time": "2026-11-29T07:01:00Z"}))  # quarantined
        stack.send(bodies)
        event = stack.receive_event()
        assert handler_module.handler(event, context)["batchItemFailures"] == []
        assert handler_module.handler(event, context)["batchItemFailures"] == []  # redelivery
    finally:
        handler_module.reset_for_tests(None)
    assert get_window(client, W0700)["n"] == 2
    sent = int(next(r for r in event["Records"] if "evt-bad" in r["body"])["attributes"]["SentTimestamp"]) / 1000
    assert get_window(client, keys.window_of(sent, 300)).get("q", 0) == 1  # in its arrival window, once
    captures = {i["event_id"]: i for i in scan(client, PREDICTIONS) if i["pk"].startswith("P#")}
    assert set(captures) == {"evt-0", "evt-1"}
    assert captures["evt-0"]["label"] == "card_arrival"
    assert captures["evt-1"]["label"] == "exchange_rate"
    assert not [i for i in scan(client, PREDICTIONS) if i["pk"].startswith("Q#")]  # no marker: batch items count


def test_no_windows_table_no_recorder(stack: Stack, tmp_path: Path) -> None:
    settings = Settings(
        model_dir=write_tiny_model(tmp_path / "model"),
        review_queue_url=stack.review_url,
        quarantine_queue_url=stack.quarantine_url,
        output_bus_name=NAMES.output_bus,
    )
    assert handler_module.build_service(settings, session=boto3.Session(region_name="us-east-1")).observer is None
