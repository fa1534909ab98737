"""The organelles EMViewer segments, with the one colour each is drawn in everywhere."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectKind:
    key: str  # used on the command line, in file and dataset names
    label: str  # shown to people
    colour: tuple[int, int, int]  # RGB 0-255, chosen to stand out on grey EM and from each other
    # Bounded size: a predicted object far longer than any labelled one is a false positive
    # (see length_filter). Not nuclei (training patches cut them) nor membranes (a network).
    compact: bool = False


OBJECTS: dict[str, ObjectKind] = {
    "mito": ObjectKind("mito", "mitochondria", (230, 40, 200), compact=True),
    "nuclei": ObjectKind("nuclei", "nuclei", (0, 170, 255)),
    "membrane": ObjectKind("membrane", "membrane", (255, 200, 0)),
}

_ALIASES = {"mitochondria": "mito", "mitochondrion": "mito", "nucleus": "nuclei", "membranes": "membrane"}


def object_kind(name: str) -> ObjectKind:
    """Look up an object by key or common name (``mito``, ``mitochondria``, ``nucleus``, ...)."""
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in OBJECTS:
        raise ValueError(f"unknown object {name!r}; choose from {', '.join(OBJECTS)}")
    return OBJECTS[key]


def is_compact(name: str) -> bool:
    """Whether objects of this kind have a bounded size; a user's own class is not assumed to."""
    try:
        return object_kind(name).compact
    except ValueError:
        return False


def colour_of(name: str) -> tuple[int, int, int]:
    """Colour of a known object; any other name (a user's class) gets a stable fallback colour."""
    try:
        return object_kind(name).colour
    except ValueError:
        return (0, 220, 90)
