"""The committed default package (layers/model): integrity, contract and a few sentences it must get right."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from pigeonhole.constants import MANIFEST_FILE, MODEL_FILE
from pigeonhole.exceptions import ModelIntegrityError
from pigeonhole.model.manifest import Manifest, load_manifest, sha256_file
from pigeonhole.model.runtime import ModelRuntime
from pigeonhole_tools.training.evaluate import expected_calibration_error, score_in_batches
from pigeonhole_tools.training.offdomain import routed_shares, sms_texts

# Written for this test (not from the data set), one per intent, in a customer's own words.
SENTENCES = {
    "I ordered a card two weeks ago and it still hasn't arrived": "card_arrival",
    "I think my card has been stolen": "lost_or_stolen_card",
    "My PIN got blocked after too many wrong attempts": "pin_blocked",
    "How old do you need to be to open an account?": "age_limit",
    "Contactless payments stopped working on my card": "contactless_not_working",
    "Please cancel the transfer I just sent": "cancel_transfer",
    "How can I change my PIN?": "change_pin",
    "The ATM kept my card and did not give it back": "card_swallowed",
    "I was charged twice for the same purchase": "transaction_charged_twice",
    "Can I use Apple Pay with your card?": "apple_pay_or_google_pay",
}

# Written the same way, but the model gets it wrong (lost_or_stolen_phone, 0.55): it must then at
# least be unsure enough to go to human review, with the right intent among the top 3 scores.
HARD = {"Someone stole my card yesterday, what should I do?": "lost_or_stolen_card"}

# Measured on the committed package: see docs/model.md ("Off-domain text"); the bar leaves room for
# a rebuild on another CPU.
OFF_DOMAIN_UNKNOWN_SHARE = 0.5


@pytest.fixture(scope="module")
def runtime(model_dir: Path) -> ModelRuntime:
    return ModelRuntime.load(model_dir)


@pytest.fixture(scope="module")
def manifest(model_dir: Path) -> Manifest:
    return load_manifest(model_dir)


def test_the_package_files_match_the_manifest(model_dir: Path, manifest: Manifest) -> None:
    assert manifest.model.file == MODEL_FILE
    assert sha256_file(model_dir / MODEL_FILE) == manifest.model.sha256
    assert (model_dir / MODEL_FILE).stat().st_size == manifest.model.size_bytes
    assert manifest.vocabulary is not None
    assert sha256_file(model_dir / manifest.vocabulary.file) == manifest.vocabulary.sha256


def test_it_classifies_hand_written_banking_sentences(runtime: ModelRuntime) -> None:
    probs = runtime.predict_proba(list(SENTENCES))
    predicted = {text: runtime.classes[i] for text, i in zip(SENTENCES, probs.argmax(axis=1), strict=True)}
    assert predicted == SENTENCES


def test_a_sentence_it_gets_wrong_goes_to_review(runtime: ModelRuntime, manifest: Manifest) -> None:
    prediction = runtime.predict(list(HARD))
    scores = runtime.unknown_scores(list(HARD), prediction.probabilities, prediction.hidden_distance)
    for i, ((text, label), p) in enumerate(zip(HARD.items(), prediction.probabilities, strict=True)):
        top3 = [runtime.classes[j] for j in p.argsort()[::-1][:3]]
        assert label in top3, text
        if top3[0] != label:  # review: below its class's threshold, or scored unknown
            unknown = manifest.unknown is not None and scores is not None and scores[i] >= manifest.unknown.threshold
            assert unknown or p.max() < manifest.thresholds.for_label(top3[0]), text


def test_off_domain_text_goes_to_review_as_unknown(
    runtime: ModelRuntime, sms_spam_file: Path, banking77_dir: Path
) -> None:
    """Text from another domain (SMS messages, ham and spam) is routed `unknown` far more often than banking
    questions of known intents (the build's target for those: at most 5 %, chosen on validation)."""
    sms = sms_texts(sms_spam_file)[:1000]
    with (banking77_dir / "test.csv").open(newline="", encoding="utf-8") as handle:
        banking = [row["text"] for row in csv.DictReader(handle)][::3]
    off_domain = routed_shares(runtime, sms)
    assert off_domain.unknown >= OFF_DOMAIN_UNKNOWN_SHARE, off_domain
    assert off_domain.away >= 0.95, off_domain
    assert routed_shares(runtime, banking).unknown <= 0.08


def test_the_package_is_calibrated_on_the_test_set(runtime: ModelRuntime, banking77_dir: Path) -> None:
    """Measured here, through the runtime: ECE <= 0.03 (it was 0.044 before calibration), labels unchanged."""
    with (banking77_dir / "test.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    texts, labels = [r["text"] for r in rows], [r["category"] for r in rows]
    io = (runtime.manifest.input.onnx_input, runtime.manifest.input.onnx_probabilities_output)
    probs = score_in_batches(runtime.session, texts, *io)
    truth = np.array([runtime.classes.index(label) for label in labels])
    correct = probs.argmax(axis=1) == truth
    assert expected_calibration_error(probs.max(axis=1), correct) <= 0.03
    assert correct.mean() >= 0.92


def test_the_graph_divides_the_logits_by_the_recorded_temperature(model_dir: Path, manifest: Manifest) -> None:
    graph = onnx.load(str(model_dir / MODEL_FILE))
    (mul,) = [n for n in graph.graph.node if n.name == "pigeonhole_temperature"]
    inverse = next(i for i in graph.graph.initializer if i.name == mul.input[1])
    calibration = manifest.metrics["calibration"]
    assert isinstance(calibration, dict)
    assert float(numpy_helper.to_array(inverse)) == pytest.approx(1.0 / calibration["temperature"], rel=1e-6)


def test_raw_text_is_normalized_like_training_text(runtime: ModelRuntime) -> None:
    """Case and whitespace do not change the answer: normalize_text runs before the graph."""
    a, b = runtime.predict_proba(["my card hasn't ARRIVED   yet", "My card hasn't arrived yet"])
    assert a.tolist() == b.tolist()


def test_the_manifest_describes_the_default_model(manifest: Manifest) -> None:
    assert manifest.name == "banking77-intents"
    assert manifest.version == "1.0.0"
    assert len(manifest.classes) == 77
    assert manifest.input.onnx_input == "text"
    assert manifest.input.onnx_probabilities_output == "probabilities"
    assert manifest.training_data.source == "../shared/datasets/banking77/train.csv"
    assert manifest.training_data.train_rows == 10003
    assert manifest.training_data.eval_rows == 3080
    int8 = manifest.metrics["int8"]
    assert isinstance(int8, dict)
    assert int8["accuracy"] >= 0.92
    agreement = manifest.metrics["fp32_vs_int8"]
    assert isinstance(agreement, dict)
    assert agreement["top1_agreement"] >= 0.99
    assert manifest.drift_baseline.n_events == 3080
    assert 0.0 < manifest.thresholds.review_confidence < 1.0


def test_the_readme_gives_the_command_that_built_it(model_dir: Path, manifest: Manifest) -> None:
    readme = (model_dir / "README.md").read_text(encoding="utf-8")
    assert str(manifest.build["command"]) in readme


def test_a_tampered_copy_is_refused(model_dir: Path, tmp_path: Path) -> None:
    for name in (MODEL_FILE, MANIFEST_FILE, "vocab.txt"):
        (tmp_path / name).write_bytes((model_dir / name).read_bytes())
    blob = bytearray((tmp_path / MODEL_FILE).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (tmp_path / MODEL_FILE).write_bytes(bytes(blob))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        ModelRuntime.load(tmp_path)
