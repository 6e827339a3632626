"""Text the model was never meant to see, generated here (no external data): off-domain and garbled.

* Off-domain: templated everyday requests (weather, cooking, devices, travel, pets, ...) that share
  no intent with a bank's support queue, as when a chatbot is opened to the wrong audience.
* Garbled: real in-domain messages with their word order shuffled and characters substituted,
  deleted, duplicated or swapped, as from a broken speech-to-text or OCR stage upstream.

Both are seeded and deterministic, so a harness run can be repeated exactly.
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence

OFF_DOMAIN_TEMPLATES: tuple[str, ...] = (
    "what's the weather going to be like in {city} {when}?",
    "can you recommend a good recipe for {dish}?",
    "how long should i boil {food} for?",
    "my {device} keeps {problem}, how do i fix it?",
    "who won the {sport} game {when}?",
    "what time does the {place} open {when}?",
    "is it safe to give my {pet} {food}?",
    "how do i get rid of {pest} in my {room}?",
    "any good {genre} movies to watch {when}?",
    "my {device} won't connect to the wifi after the update",
    "what are some fun things to do in {city} with kids?",
    "how many calories are in {dish}?",
    "the {appliance} in my {room} is making a weird noise",
    "tell me a joke about {topic}",
    "remind me to call {person} {when}",
    "how do you say '{phrase}' in {language}?",
    "what's a good stretch for {body} pain?",
    "how often should i water a {plant}?",
    "which train goes from {city} to the airport?",
    "can you suggest a name for my new {pet}?",
    "how do i reset my {device} to factory settings?",
    "is {dish} better with {food} or without?",
)
SLOTS: dict[str, tuple[str, ...]] = {
    "city": ("paris", "lisbon", "tokyo", "denver", "cairo", "oslo", "lima", "glasgow", "hanoi", "perth"),
    "when": ("tomorrow", "this weekend", "tonight", "on friday", "next week", "later today"),
    "dish": ("lasagna", "a vegan curry", "banana bread", "pad thai", "risotto", "a caesar salad", "pancakes"),
    "food": ("eggs", "broccoli", "rice", "chicken", "potatoes", "pasta", "carrots", "grapes", "cheese"),
    "device": ("laptop", "printer", "smart tv", "headphones", "router", "tablet", "smartwatch", "game console"),
    "problem": ("freezing", "overheating", "restarting", "losing sound", "dropping the bluetooth connection"),
    "sport": ("football", "basketball", "tennis", "cricket", "rugby", "hockey"),
    "place": ("library", "museum", "swimming pool", "pharmacy", "farmers market", "zoo", "gym"),
    "pet": ("dog", "cat", "hamster", "parrot", "rabbit", "goldfish"),
    "pest": ("ants", "mice", "fruit flies", "moths", "spiders"),
    "room": ("kitchen", "garage", "bathroom", "attic", "garden shed", "basement"),
    "genre": ("horror", "comedy", "sci-fi", "romantic", "documentary", "animated"),
    "appliance": ("fridge", "washing machine", "dishwasher", "boiler", "microwave", "ceiling fan"),
    "topic": ("penguins", "pirates", "programmers", "dinosaurs", "cheese", "the moon"),
    "person": ("mum", "the dentist", "my landlord", "grandpa", "the plumber", "sarah"),
    "phrase": ("good morning", "where is the beach", "thank you very much", "i am lost", "how much is this"),
    "language": ("italian", "japanese", "german", "swahili", "portuguese", "korean"),
    "body": ("lower back", "neck", "knee", "shoulder", "wrist"),
    "plant": ("cactus", "fern", "monstera", "bonsai", "orchid", "basil plant"),
}
_LETTERS = string.ascii_lowercase


def off_domain_texts(n: int, seed: int) -> list[str]:
    """Up to ``n`` distinct off-domain messages (template × slot values: about 580 exist)."""
    rng = random.Random(seed)
    fields = {t: [name for _, name, _, _ in string.Formatter().parse(t) if name] for t in OFF_DOMAIN_TEMPLATES}
    out: list[str] = []
    seen: set[str] = set()
    for _ in range(20 * n):
        if len(out) >= n:
            break
        template = rng.choice(OFF_DOMAIN_TEMPLATES)
        text = template.format(**{name: rng.choice(SLOTS[name]) for name in fields[template]})
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def garble(text: str, rng: random.Random, char_rate: float = 0.2, shuffle_words: bool = True) -> str:
    """Shuffle the word order, then substitute / delete / duplicate / swap ``char_rate`` of the characters."""
    words = text.split()
    if shuffle_words and len(words) > 1:
        rng.shuffle(words)
    chars = list(" ".join(words))
    out: list[str] = []
    i = 0
    while i < len(chars):
        ch = chars[i]
        if ch != " " and rng.random() < char_rate:
            op = rng.randrange(4)
            if op == 0:
                out.append(rng.choice(_LETTERS))
            elif op == 1:
                pass  # deleted
            elif op == 2:
                out.extend((ch, ch))
            elif i + 1 < len(chars):
                out.extend((chars[i + 1], ch))
                i += 1
            else:
                out.append(ch)
        else:
            out.append(ch)
        i += 1
    garbled = "".join(out).strip()
    return garbled or text


def garbled_texts(texts: Sequence[str], seed: int, char_rate: float = 0.2) -> list[str]:
    """One garbled variant of each text (same order, so the true labels carry over)."""
    rng = random.Random(seed)
    return [garble(t, rng, char_rate) for t in texts]
