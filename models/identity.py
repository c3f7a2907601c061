"""Training data against identity-term bias (Dixon et al. 2018; Garg et al. 2019).

Models trained on OffensEval and HatEval learn that the mention of a group is
itself a sign of abuse, because most tweets in those sets that name a group
attack it. Three kinds of extra training rows break that shortcut:

- counterfactual copies: a training tweet that names an identity has a copy with
  the term swapped for another of the same kind, with the same label, so the
  label cannot depend on which group is named;
- real tweets that name a group and were labelled positive or neutral by the
  SemEval-2017 annotators, as not offensive and not hateful (a weak but real
  label: Dixon et al. used Wikipedia articles the same way);
- generated statements from a grammar of everyday tweets about people, mostly
  benign, some group-targeted abuse, so the model learns that the predicate,
  not the group, makes a post abusive.

The bias audit (benchmarks/bias.py) uses its own templates; none of these
frames is one of them, and an independent template set is the real test.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

GROUPS: dict[str, list[str]] = {
    "sexual orientation": [
        "gay",
        "lesbian",
        "bisexual",
        "straight",
        "heterosexual",
        "homosexual",
        "queer",
        "asexual",
        "pansexual",
    ],
    "gender identity": ["transgender", "trans", "nonbinary", "cisgender", "female", "male", "genderqueer", "intersex"],
    "religion": [
        "muslim",
        "christian",
        "jewish",
        "hindu",
        "buddhist",
        "sikh",
        "atheist",
        "catholic",
        "protestant",
        "mormon",
        "evangelical",
        "pagan",
        "orthodox",
    ],
    "ethnicity": [
        "black",
        "white",
        "asian",
        "latino",
        "latina",
        "hispanic",
        "arab",
        "african american",
        "indigenous",
        "native american",
        "biracial",
        "middle eastern",
        "roma",
        "pacific islander",
    ],
    "nationality": [
        "mexican",
        "american",
        "chinese",
        "indian",
        "nigerian",
        "syrian",
        "irish",
        "russian",
        "pakistani",
        "somali",
        "korean",
        "polish",
        "brazilian",
        "iranian",
        "vietnamese",
        "afghan",
        "ukrainian",
        "haitian",
        "filipino",
        "japanese",
        "german",
        "british",
        "canadian",
        "cuban",
        "kenyan",
        "jamaican",
        "palestinian",
        "israeli",
        "turkish",
        "italian",
    ],
    "disability": [
        "deaf",
        "blind",
        "disabled",
        "autistic",
        "wheelchair-using",
        "dyslexic",
        "paralysed",
        "neurodivergent",
        "hard of hearing",
        "visually impaired",
    ],
    "age": ["old", "young", "elderly", "teenage", "middle-aged", "older", "retired", "millennial", "senior"],
}
ALL_TERMS = [term for terms in GROUPS.values() for term in terms]
# Words with everyday meanings besides the identity ("white house", "straight
# away", "old friend") are swap targets but never swap sources.
AMBIGUOUS = {
    "straight",
    "white",
    "black",
    "old",
    "young",
    "older",
    "senior",
    "male",
    "female",
    "trans",
    "blind",
    "orthodox",
    "retired",
    "indian",
    "american",
    "christian",
}
PLURALS = {
    "muslims": "religion",
    "christians": "religion",
    "jews": "religion",
    "hindus": "religion",
    "sikhs": "religion",
    "atheists": "religion",
    "catholics": "religion",
    "buddhists": "religion",
    "gays": "sexual orientation",
    "lesbians": "sexual orientation",
    "homosexuals": "sexual orientation",
    "immigrants": "migration",
    "refugees": "migration",
    "migrants": "migration",
    "asylum seekers": "migration",
    "foreigners": "migration",
    "women": "gender",
    "men": "gender",
    "girls": "gender",
    "boys": "gender",
    "mexicans": "nationality",
    "africans": "nationality",
    "arabs": "ethnicity",
    "asians": "ethnicity",
    "latinos": "ethnicity",
    "hispanics": "ethnicity",
    "indians": "nationality",
    "syrians": "nationality",
    "chinese people": "nationality",
    "trans people": "gender identity",
    "disabled people": "disability",
    "deaf people": "disability",
    "autistic people": "disability",
    "old people": "age",
    "teenagers": "age",
}
# Origin and faith plurals swap among each other (all are targets of the same
# kind of abuse); gender, age and disability plurals only within their kind.
_PLURAL_POOL = {"religion": "origin", "migration": "origin", "nationality": "origin", "ethnicity": "origin"}
_SWAPPABLE = sorted({t for t in ALL_TERMS if t not in AMBIGUOUS} | set(PLURALS), key=len, reverse=True)
_TERM = re.compile(r"\b(" + "|".join(re.escape(t) for t in _SWAPPABLE) + r")\b", re.IGNORECASE)
_ANY_TERM = re.compile(
    r"\b(" + "|".join(re.escape(t) for t in sorted(set(ALL_TERMS) | set(PLURALS), key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


def names_identity(text: str) -> bool:
    return _ANY_TERM.search(text) is not None


def _same_kind(term: str) -> list[str]:
    lower = term.lower()
    if lower in PLURALS:
        kind = _PLURAL_POOL.get(PLURALS[lower], PLURALS[lower])
        same = [p for p, k in PLURALS.items() if p != lower and _PLURAL_POOL.get(k, k) == kind]
        return same or [p for p in PLURALS if p != lower]
    return [t for t in ALL_TERMS if t != lower]


def _cased_like(template: str, word: str) -> str:
    if template.isupper():
        return word.upper()
    if template[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def counterfactual(text: str, rng: random.Random) -> str | None:
    """The text with every identity term swapped for another of the same kind, or None."""
    if not _TERM.search(text):
        return None
    return _TERM.sub(lambda m: _cased_like(m.group(0), rng.choice(_same_kind(m.group(0)))), text)


NOUNS = [
    "guy",
    "girl",
    "woman",
    "man",
    "kid",
    "teenager",
    "student",
    "teacher",
    "nurse",
    "doctor",
    "engineer",
    "mom",
    "dad",
    "coworker",
    "roommate",
    "family",
    "couple",
    "author",
    "chef",
    "runner",
    "farmer",
    "lawyer",
    "pastor",
    "scientist",
    "veteran",
    "programmer",
    "musician",
    "writer",
    "cousin",
    "grandma",
    "uncle",
    "barista",
    "bus driver",
    "coach",
    "firefighter",
    "pharmacist",
    "photographer",
    "landlord",
    "vlogger",
]
PEOPLE = ["folks", "people", "friends", "students", "families", "kids", "voters", "fans", "workers", "neighbours"]
DOINGS = [
    "fixed my bike for free",
    "made the best tacos i've ever had",
    "just opened a bakery downtown",
    "ran the marathon in under four hours",
    "gave a great talk at the library",
    "is teaching me to knit",
    "won the pub quiz again",
    "volunteers at the food bank every saturday",
    "helped me with my taxes",
    "has the cutest dog",
    "recommended an amazing podcast",
    "got promoted this week",
    "is coaching my son's soccer team",
    "sings in the church choir",
    "organised the street party",
    "brought soup when i was sick",
    "finally finished their thesis",
    "plays guitar at the open mic",
    "runs the hardware store on main street",
    "told me about a new hiking trail",
]
FACTS = [
    "moved here in 2009",
    "works night shifts at the hospital",
    "is studying chemistry",
    "lives two floors below me",
    "drives for the city",
    "is running for the school board",
    "speaks three languages",
    "is getting married in june",
    "started a youtube channel about cooking",
    "was on the local news last night",
]
SAD = [
    "lost their job last week",
    "is in hospital after a car crash",
    "had their bike stolen",
    "missed the last train home",
    "failed the driving test twice",
    "had to cancel the wedding",
]
BENIGN_FRAMES: list[tuple[str, str]] = [  # (frame, sentiment label)
    ("as a {t} {n}, i {v}", "neutral"),
    ("shoutout to the {t} {n} who {d}", "positive"),
    ("the {t} {n} across the road {d}", "positive"),
    ("my {t} {n} {f}", "neutral"),
    ("just found out my {n} is {t}. anyway, she {d}", "positive"),
    ("{T} {p} in our town {d2}", "positive"),
    ("there's a {t} {n} in my class who {f}", "neutral"),
    ("my {t} {n} {s} :(", "negative"),
    ("so sad that my {t} {n} {s}", "negative"),
    ("i'm {t} and i {v}", "neutral"),
    ("im {t} lol. {V}", "neutral"),
    ("being a {t} {n} in this city is pretty normal tbh", "neutral"),
    ("we read a book by a {t} {n} in class today", "neutral"),
    ("the documentary about {t} {p} was really moving", "positive"),
    ("happy to see more {t} {p} at the council meeting", "positive"),
    ("a {t} {n} {d} #community", "positive"),
    ("is anyone else {t} and into board games?", "neutral"),
    ("my grandparents are {t} and they {v2}", "neutral"),
    ("our team has two {t} players this season", "neutral"),
    ("{T} and proud. {V}", "positive"),
    ("the new {n} at work is {t}, seems nice", "positive"),
    ("met some {t} {p} at the festival, great vibes", "positive"),
    ("i grew up in a {t} household", "neutral"),
    ("talked to a {t} {n} about the election today", "neutral"),
    ("love my {t} {n} so much ❤", "positive"),
    ("{T} {p} deserve the same rights as everyone", "positive"),
    ("the {t} {n} who {f} is my cousin", "neutral"),
    ("honestly the {t} {n} downstairs {d}", "positive"),
    ("my {n} is {t}. {V}", "neutral"),
    ("thanks to every {t} {n} who showed up today", "positive"),
]
ME = [
    "work in marketing",
    "love pizza",
    "go to the gym on mondays",
    "like hiking",
    "watch too much netflix",
    "am learning spanish",
    "volunteer at the shelter",
    "play the drums",
    "collect vinyl",
    "grow tomatoes",
]
SENTENCES = [
    "Going to the beach tomorrow.",
    "Can't wait for the weekend!",
    "Coffee first.",
    "Anyway, back to work.",
    "Who else is watching the game tonight?",
    "Have a good day everyone.",
]
TOXIC_FRAMES = [
    "{T} {p} are filth and need to be thrown out",
    "every {t} {n} is a worthless parasite",
    "{p} like that are animals, {t} trash",
    "no {t} scum should be allowed near our kids",
    "{T} {p} are subhuman, burn them all",
    "i'd punch any {t} {n} who talks to me",
    "{T} {p} are a plague, round them up",
    "f*** every {t} {n}, they're garbage",
    "{T} {p} are diseased rats",
    "send every {t} {n} back where they crawled from",
]


def _fill(frame: str, term: str, rng: random.Random) -> str:
    values = {
        "{t}": term,
        "{T}": term[:1].upper() + term[1:],
        "{n}": rng.choice(NOUNS),
        "{p}": rng.choice(PEOPLE),
        "{d}": rng.choice(DOINGS),
        "{d2}": rng.choice(DOINGS).replace(" is ", " are ").replace("has ", "have "),
        "{f}": rng.choice(FACTS),
        "{s}": rng.choice(SAD),
        "{v}": rng.choice(ME),
        "{v2}": rng.choice(ME)[3:],
        "{V}": rng.choice(SENTENCES),
    }
    for slot, value in values.items():
        frame = frame.replace(slot, value)
    return frame if rng.random() < 0.6 else frame[:1].upper() + frame[1:]


def generated(count: int, toxic_share: float, rng: random.Random) -> list[tuple[str, str, bool]]:
    """(text, sentiment label, toxic) rows; terms drawn evenly from every group."""
    rows = []
    for _ in range(count):
        term = rng.choice(ALL_TERMS)
        if rng.random() < toxic_share:
            rows.append((_fill(rng.choice(TOXIC_FRAMES), term, rng), "negative", True))
        else:
            frame, sentiment = rng.choice(BENIGN_FRAMES)
            rows.append((_fill(frame, term, rng), sentiment, False))
    return rows


def counterfactual_copies(
    texts: Iterable[str], labels: Iterable[int], share: float, rng: random.Random
) -> tuple[list[str], list[int]]:
    """Swapped copies of a share of the rows that name an identity, with their labels."""
    out_texts, out_labels = [], []
    for text, label in zip(texts, labels, strict=True):
        if rng.random() < share:
            swapped = counterfactual(text, rng)
            if swapped is not None and swapped != text:
                out_texts.append(swapped)
                out_labels.append(label)
    return out_texts, out_labels
