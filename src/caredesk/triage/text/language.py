"""A tiny language guesser: counts common function words of each language.

Short care posts rarely carry enough letters for character n-grams, but nearly all contain a few function words.
A word shared by several languages ("de", "no", "a") counts for each of them in part, so only words that tell the
languages apart decide. Anything without clear evidence is "und" (undetermined, as in BCP 47).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

UNDETERMINED = "und"

PROFILES: dict[str, str] = {
    "en": "the and is are was were be been my i i'm you your it it's this that to of in on for with have has had "
    "not don't can't why what when how where who will would can just still again since but or at from they we our "
    "me an thanks please hi hello any there here so very do does did get got about been being after never all "
    "today yesterday nothing",
    "es": "el la los las de del que y en un una es por para con no mi mis me se lo le su al más pero muy ya hay "
    "está están esta este desde cuando como qué porque nada sin todo gracias hola tengo tiene son fue ha han nos "
    "yo sí también hoy ayer favor ni mismo llevo días",
    "fr": "le la les de des du et est un une en je j'ai pas ne que qui pour dans sur avec mon ma mes vous votre "
    "vos il elle nous ce c'est ça au aux plus mais depuis toujours rien merci bonjour très suis sont été aucun "
    "encore quand comment pourquoi n'est jours",
    "de": "der die das den dem des und ist nicht ich mein meine meinen sie es ein eine einen mit für auf zu im "
    "von seit kein keine noch schon wir ihr aber auch wie was warum wann bitte danke hallo habe hat sind war "
    "wird immer heute mehr nur sehr mich mir uns funktioniert tagen",
    "pt": "o a os as de do da dos das e é um uma em no na nos não que para com meu minha por mais mas se já "
    "ainda desde obrigado obrigada olá estou está tem foi são você vocês muito sem nada isso hoje quando como "
    "porque dias",
    "it": "il lo la i gli le di del della e è un una in che non per con mio mia sono ho ha mi ma più anche "
    "ancora da dal come quando perché grazie ciao niente nessun oggi sempre molto questo questa vostro giorni",
    "nl": "de het een en is niet ik mijn je jullie van op te met voor dat die er maar al nog geen sinds wat "
    "waarom wanneer hoe bedankt dank hallo heb heeft zijn was wordt ook naar om bij uit weer vandaag dagen",
}
LANGUAGES: tuple[str, ...] = tuple(PROFILES)

# Evidence needed before naming a language: one word that only this language uses, or more shared ones.
MIN_SCORE = 1.0
MIN_MARGIN = 0.75


def word_weights() -> dict[str, npt.NDArray[np.float64]]:
    """Per function word, how much it counts towards each language (shared words split their weight)."""
    owners: dict[str, list[int]] = {}
    for i, lang in enumerate(LANGUAGES):
        for word in set(PROFILES[lang].split()):
            owners.setdefault(word, []).append(i)
    weights: dict[str, npt.NDArray[np.float64]] = {}
    for word, langs in owners.items():
        vec = np.zeros(len(LANGUAGES))
        vec[langs] = 1.0 / len(langs)
        weights[word] = vec
    return weights


_NAMES = np.array((*LANGUAGES, UNDETERMINED), dtype=object)


def decide(scores: npt.NDArray[np.float64]) -> npt.NDArray[np.object_]:
    """Language per row of an (n posts, len(LANGUAGES)) score matrix."""
    if not len(scores):
        return np.zeros(0, dtype=object)
    order = np.argsort(-scores, axis=1, kind="stable")
    rows = np.arange(len(scores))
    best = scores[rows, order[:, 0]]
    second = scores[rows, order[:, 1]]
    known = (best >= MIN_SCORE) & (best - second >= MIN_MARGIN)
    picked = np.where(known, order[:, 0], len(LANGUAGES))
    out: npt.NDArray[np.object_] = _NAMES[picked]
    return out
