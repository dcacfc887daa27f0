"""Random ``adjective_noun`` container names, the way Docker names unnamed containers.

Names only need to be memorable and usually unique: the database's UNIQUE constraint is
the real guard, and the caller retries with another pick on a collision (20 concurrent
``run -d`` on one store must all succeed). Word lists are our own: moods and traits for
the adjective, birds, trees and mountains for the noun (~70 x 80 = 5,600 pairs).
"""

from __future__ import annotations

import os
import re

ADJECTIVES = (
    "agile", "amber", "ancient", "bold", "brave", "bright", "brisk", "calm", "candid",
    "careful", "cheerful", "clever", "cosy", "crisp", "curious", "daring", "dazzling",
    "eager", "earnest", "elated", "elegant", "fearless", "fervent", "festive", "fond",
    "frosty", "gallant", "gentle", "gifted", "glad", "golden", "graceful", "happy",
    "hardy", "honest", "hopeful", "humble", "jolly", "jovial", "keen", "kind", "lively",
    "loyal", "lucid", "mellow", "merry", "mighty", "modest", "nimble", "noble", "patient",
    "placid", "plucky", "polite", "proud", "quiet", "quirky", "radiant", "rapid", "serene",
    "sharp", "shy", "silent", "sleepy", "snappy", "spry", "steady", "stoic", "sunny",
    "swift", "tender", "tidy", "upbeat", "vivid", "wise", "witty", "zealous",
)

NOUNS = (
    "acacia", "albatross", "alder", "annapurna", "aspen", "auk", "baobab", "bittern",
    "blackbird", "bunting", "buzzard", "cedar", "chestnut", "condor", "cormorant",
    "crane", "cuckoo", "cypress", "denali", "dipper", "dunlin", "eagle", "egret", "elbrus",
    "elm", "falcon", "finch", "fir", "fuji", "gannet", "godwit", "grebe", "hawthorn",
    "hazel", "heron", "hornbill", "ibis", "juniper", "kestrel", "kilimanjaro", "kingfisher",
    "kite", "lapwing", "larch", "linden", "lark", "magnolia", "makalu", "maple", "martin",
    "matterhorn", "merlin", "myrtle", "nightjar", "oak", "olympus", "oriole", "osprey",
    "owl", "pelican", "petrel", "pine", "plover", "puffin", "redwood", "robin", "rowan",
    "sequoia", "shrike", "siskin", "sparrow", "spruce", "starling", "swift", "sycamore",
    "teal", "tern", "vesuvius", "warbler", "willow", "wren", "yew",
)

_VALID = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")


def random_name(attempt: int = 0) -> str:
    """A fresh ``adjective_noun``; after a few collisions a digit is added, as Docker does."""
    name = f"{_pick(ADJECTIVES)}_{_pick(NOUNS)}"
    return f"{name}{_pick(range(100))}" if attempt >= 3 else name


def _pick(seq):  # type: ignore[no-untyped-def]
    """A uniform-enough choice from os.urandom: the ``random`` module costs ms to import."""
    return seq[int.from_bytes(os.urandom(4), "little") % len(seq)]


def validate(name: str) -> str:
    """The name without its leading ``/``; Docker's rule for user-given names."""
    from ..errors import InvalidArgument

    if not _VALID.match(name):
        raise InvalidArgument(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] '
                              "are allowed")
    return name.lstrip("/")
