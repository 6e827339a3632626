"""The scenarios: which pools a window draws from before and after the shift."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pigeonhole_tools.monitoring.harness.config import CONCEPT_FLIPS, SURGE_INTENTS, HarnessConfig, ModelKey


@dataclass(frozen=True)
class Component:
    pool: str
    weight: float
    intents: tuple[str, ...] | None = None  # None: every row (minus the model's unknown intents)


@dataclass(frozen=True)
class Scenario:
    key: str
    kind: Literal["stationary", "prior", "covariate", "unseen_class", "concept"]
    title: str
    model: ModelKey = "default"
    after: tuple[Component, ...] | None = None  # None: stationary throughout
    flips: tuple[tuple[str, str], ...] = ()  # concept shift: true label a is reported as b after the shift
    listed: bool = True  # one of the shifts the issue lists (vs. an extra intensity point)


def scenarios(cfg: HarnessConfig) -> list[Scenario]:
    base = Component("test", 1.0)
    out = [
        Scenario("stationary", "stationary", "stationary: BANKING77 test distribution, sampled with replacement"),
        Scenario(
            "prior-30",
            "prior",
            f"prior shift: {len(SURGE_INTENTS)} fraud intents surge to 30% of traffic",
            after=(Component("test", 0.7), Component("test", 0.3, SURGE_INTENTS)),
        ),
        Scenario(
            "prior-10",
            "prior",
            f"prior shift: {len(SURGE_INTENTS)} fraud intents surge to 10% of traffic",
            after=(Component("test", 0.9), Component("test", 0.1, SURGE_INTENTS)),
            listed=False,
        ),
        Scenario(
            "offdomain-50",
            "covariate",
            "covariate shift: 50% off-domain messages (generated templates)",
            after=(Component("test", 0.5), Component("offdomain", 0.5)),
        ),
        Scenario(
            "offdomain-20",
            "covariate",
            "covariate shift: 20% off-domain messages (generated templates)",
            after=(Component("test", 0.8), Component("offdomain", 0.2)),
            listed=False,
        ),
        Scenario(
            "garbled-100",
            "covariate",
            "covariate shift: every message garbled (word order shuffled, 20% of characters corrupted)",
            after=(Component("garbled", 1.0),),
        ),
        Scenario(
            "garbled-30",
            "covariate",
            "covariate shift: 30% of messages garbled",
            after=(Component("test", 0.7), Component("garbled", 0.3)),
            listed=False,
        ),
        Scenario(
            "unseen-25",
            "unseen_class",
            f"class never seen: {len(cfg.heldout_intents)} held-out intents arrive as 25% of traffic",
            model="heldout",
            after=(Component("test", 0.75), Component("unseen", 0.25)),
        ),
        Scenario(
            "unseen-natural",
            "unseen_class",
            f"class never seen: {len(cfg.heldout_intents)} held-out intents arrive at their natural share "
            f"({len(cfg.heldout_intents)}/77 = {len(cfg.heldout_intents) / 77:.1%})",
            model="heldout",
            after=(
                Component("test", 1.0 - len(cfg.heldout_intents) / 77),
                Component("unseen", len(cfg.heldout_intents) / 77),
            ),
            listed=False,
        ),
        Scenario(
            "concept-1",
            "concept",
            f"concept shift: labels of one intent flip ({CONCEPT_FLIPS[0][0]} → {CONCEPT_FLIPS[0][1]}), "
            "seen only through feedback",
            after=(base,),
            flips=CONCEPT_FLIPS[:1],
        ),
        Scenario(
            "concept-12",
            "concept",
            f"concept shift: labels of {len(CONCEPT_FLIPS)} intents flip, seen only through feedback",
            after=(base,),
            flips=CONCEPT_FLIPS,
            listed=False,
        ),
    ]
    if cfg.scenarios:
        wanted = set(cfg.scenarios)
        unknown = wanted - {s.key for s in out}
        if unknown:
            raise ValueError(f"unknown scenarios {sorted(unknown)}; known: {[s.key for s in out]}")
        out = [s for s in out if s.key in wanted]
    return out
