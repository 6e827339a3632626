"""What a harness run depends on: its configuration and the fixed shifts it simulates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pigeonhole.naming import MAX_BATCH_SIZE

Mode = Literal["fast", "full"]
ModelKey = Literal["default", "heldout"]
T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # simulated time starts here (any fixed instant works)
SURGE_INTENTS = ("lost_or_stolen_card", "card_payment_not_recognised", "compromised_card")  # a fraud wave
HELDOUT_INTENTS = (  # a product launch the model was trained before: virtual cards and wallets
    "apple_pay_or_google_pay",
    "get_disposable_virtual_card",
    "virtual_card_not_working",
    "getting_virtual_card",
    "disposable_card_limits",
)
CONCEPT_FLIPS: tuple[tuple[str, str], ...] = (  # first = the one-intent concept shift
    ("card_arrival", "card_delivery_estimate"),
    ("exchange_rate", "exchange_charge"),
    ("pending_transfer", "transfer_timing"),
    ("pin_blocked", "change_pin"),
    ("top_up_failed", "top_up_reverted"),
    ("declined_card_payment", "card_not_working"),
    ("request_refund", "Refund_not_showing_up"),
    ("cash_withdrawal_charge", "atm_support"),
    ("card_linking", "activate_my_card"),
    ("passcode_forgotten", "change_pin"),
    ("country_support", "fiat_currency_support"),
    ("terminate_account", "edit_personal_details"),
)


@dataclass(frozen=True)
class HarnessConfig:
    """Everything a harness run depends on; printed into the results so the run can be repeated."""

    data_dir: Path
    model_dir: Path
    work_dir: Path
    seed: int = 7
    events_per_window: int = 500
    stationary_windows: int = 200
    repeats: int = 5
    warmup_windows: int = 4  # stationary windows before the shift starts (the shift starts at window k)
    shift_windows: int = 3  # shifted windows per run (delay is measured within these)
    label_coverage: float = 0.4  # share of events that get a label, within their window
    window_seconds: int = 300
    grace_seconds: int = 120
    reference_windows: int = 12
    mode: Mode = "fast"
    recorder_batch: int = 99  # fast mode; full mode uses the event source mapping's 10
    feedback_batch: int = 99
    markers_per_transaction: int = 99  # the adapter's chunk (default 50): fewer, larger moto transactions
    monte_carlo_windows: int = 0  # extra counters-only stationary windows for the page false-alarm rate
    heldout_intents: tuple[str, ...] = HELDOUT_INTENTS
    heldout_epochs: int = 4
    heldout_model_dir: Path | None = None  # a package without the held-out intents; None: train one
    scenarios: tuple[str, ...] = ()  # empty: all
    threshold_overrides: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "events_per_window": self.events_per_window,
            "stationary_windows": self.stationary_windows,
            "repeats": self.repeats,
            "warmup_windows": self.warmup_windows,
            "shift_windows": self.shift_windows,
            "label_coverage": self.label_coverage,
            "window_seconds": self.window_seconds,
            "grace_seconds": self.grace_seconds,
            "reference_windows": self.reference_windows,
            "mode": self.mode,
            "recorder_batch": MAX_BATCH_SIZE if self.mode == "full" else self.recorder_batch,
            "feedback_batch": MAX_BATCH_SIZE if self.mode == "full" else self.feedback_batch,
            "markers_per_transaction": self.markers_per_transaction,
            "heldout_intents": list(self.heldout_intents),
            "heldout_epochs": self.heldout_epochs,
            "threshold_overrides": dict(self.threshold_overrides),
            "monte_carlo_windows": self.monte_carlo_windows,
        }


def with_overrides(cfg: HarnessConfig, **changes: Any) -> HarnessConfig:
    return replace(cfg, **changes)
