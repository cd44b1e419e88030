"""Hand-written word lists for triage v0, all written for this project.

Phrases are one or two lowercase tokens as produced by :mod:`caredesk.triage.text.tokens` (apostrophes kept, so both
"don't" and "dont" appear). Weights are on a rough -3..3 scale for valence and 0..1 "how much evidence" elsewhere;
they were set by reading support posts, not fitted, so that a person can argue with each one.
"""

from __future__ import annotations

from collections.abc import Mapping

# Placeholders that text.py substitutes before tokenising, so that URLs, handles and "!!!" become countable tokens
# without their contents leaking into word features.
URL = "xxurl"
MENTION = "xxmention"
EMAIL = "xxemail"
BANG = "xxbang"
PLACEHOLDERS = (URL, MENTION, EMAIL, BANG)


def _spread(weight: float, words: str) -> dict[str, float]:
    return {w.replace("_", " "): weight for w in words.split()}


# Valence. Underscores join the two tokens of a bigram. Mild words sit at 1, strong ones at 3.
VALENCE: dict[str, float] = {
    **_spread(
        -3.0,
        "worst terrible horrible awful disgusting pathetic appalling atrocious abysmal unacceptable disgraceful "
        "furious livid outrageous scam scammers shameful useless nightmare hate hated dreadful incompetent "
        "incompetence garbage trash rubbish crap shit shitty horrendous inexcusable thieves robbery fuming "
        "worthless diabolical shambles for_nothing",
    ),
    **_spread(
        -2.0,
        "joke bad poor broken fails failing angry annoyed annoying frustrated frustrating disappointed "
        "disappointing disappointment "
        "upset fail failed failure rude lousy mess messed hopeless unreliable unhappy sad shocking shocked "
        "ugh wtf smh fed_up sick_of waste wasted wasting lied lies liar misleading unprofessional ignored "
        "ignoring neglected damaged defective faulty ruined ridiculous overcharged ripped_off cheated dishonest "
        "dissatisfied impossible clueless careless greedy overpriced sucks suck never_again regret "
        "disconnected stranded fraud stolen hacked scammed unauthorized unauthorised sloppy insane",
    ),
    **_spread(
        -1.0,
        "slow sluggish wrong worse problem problems issue issues error errors bug bugs buggy crash crashes crashed "
        "crashing glitch glitchy outage outages delayed delay delays late cancelled canceled unable trouble "
        "struggling confusing confused complain complaint complaints inconvenience inconvenient expensive "
        "still_waiting on_hold stuck lost missing dropped dropping declined locked nobody tired worried "
        "concerned annoyance hassle nope meh blocked frozen freezing unusable",
    ),
    **_spread(
        3.0,
        "amazing awesome excellent fantastic outstanding brilliant superb wonderful perfect incredible "
        "exceptional phenomenal love loved loving lovely stellar flawless legend legends hero heroes "
        "top_notch and_beyond",
    ),
    **_spread(
        2.0,
        "you_rock guys_rock great nice happy glad pleased grateful appreciate appreciated helpful friendly "
        "smooth kind polite "
        "impressed impressive recommend recommended delighted satisfied reliable fab yay kudos shoutout "
        "shout_out bravo congrats congratulations enjoy enjoyed fun pleasure pleasant well_done best "
        "seamless painless beautiful spotless thrilled excited",
    ),
    **_spread(
        1.5,
        "good thanks thank thankyou cheers on_time",
    ),
    **_spread(
        1.0,
        "thx ty quick fast easy fixed resolved sorted efficient cool wow sweet clean comfortable comfy props "
        "quickly refunded solved",
    ),
    **_spread(0.5, "works working early finally"),
    # Emoji are tokens of their own; the variation selector after ❤ is dropped by the tokeniser. Negation does not
    # flip them (features.py): "no reply 😡" is angry, not pleased.
    **_spread(-3.0, "😡 🤬"),
    **_spread(-2.5, "😠 🙄"),
    **_spread(-2.0, "😤 👎 😞 💩 😩 😫 ☹ 💔"),
    **_spread(-1.5, "😢 😭 😒 🤦 🙁"),
    **_spread(-1.0, "😑 😕"),
    **_spread(3.0, "😍 🥰 🤩"),
    **_spread(2.5, "❤"),
    **_spread(2.0, "💙 💚 💜 🧡 💛 😊 😀 😃 😄 😁 👍 👏 🙌 🎉"),
    **_spread(1.5, "💯 ⭐ 🌟 👌"),
    **_spread(1.0, "🙂 ✨ 🙏 😎 💪"),
    # A handful of very common words in the other supported languages, so a Spanish rant is not "neutral".
    **_spread(
        -2.0,
        "pésimo pesimo fatal vergüenza estafa nefasto nul nulle honteux arnaque inadmissible "
        "scheiße scheisse katastrophe unverschämt schlecht schrecklich péssimo pessimo vergonha "
        "vergogna schifo pessimo slecht waardeloos belachelijk",
    ),
    **_spread(
        2.0,
        "gracias excelente genial merci génial parfait danke obrigado obrigada ótimo grazie ottimo bedankt geweldig",
    ),
}

# Words that flip (and damp) the valence of the next few tokens and turn "service" words into complaints.
NEGATORS: frozenset[str] = frozenset(
    "not no never don't dont doesn't doesnt didn't didnt isn't isnt wasn't wasnt aren't arent weren't werent "
    "won't wont can't cant cannot couldn't couldnt shouldn't haven't havent hasn't hasnt hadn't nothing nobody "
    "none neither nor without unable ain't aint lack lacking "
    # The other supported languages; only the pre-verb ones work this way ("sin internet", "pas de connexion",
    # "kein Internet"); German and Dutch post-verb "nicht"/"niet" are caught as bigrams in COMPLAINT instead.
    "sin nunca ni pas jamais sans aucun aucune kein keine keinen nie ohne não sem non senza mai geen nooit "
    "zonder".split()
)

# Tokens that end a negation scope: "not cheap but fast" must not negate "fast".
SCOPE_BREAKERS: frozenset[str] = frozenset(["but", "though", "however", "although", "?", "¿", ".", ",", ";", ":", "!"])

# Words after these outweigh words before them in sentiment.
CONTRAST: frozenset[str] = frozenset(["but", "however", "pero", "mais", "aber", "maar"])

INTENSIFIERS: dict[str, float] = {
    **dict.fromkeys(
        "very really so extremely totally absolutely completely super incredibly seriously utterly truly highly "
        "deeply insanely ridiculously terribly such".split(),
        1.5,
    ),
    "too": 1.3,
    "most": 1.3,
    **dict.fromkeys("slightly somewhat bit kinda little fairly rather".split(), 0.6),
}

# "no internet", "without signal": a missing service is both a complaint and an outage signal.
SERVICE_NOUNS: frozenset[str] = frozenset(
    "internet wifi broadband signal service reception connection connectivity network cable tv phone landline "
    "power electricity water gas heating data 4g 5g lte coverage dial "
    "conexión conexion señal senal luz connexion réseau reseau courant électricité verbindung netz empfang "
    "strom wlan rete segnale luce conexão rede sinal verbinding bereik stroom".split()
)

# "not working", "never arrived", "can't log in": a negated service verb is a complaint.
SERVICE_VERBS: frozenset[str] = frozenset(
    "work works working worked arrive arrived arriving receive received deliver delivered load loading loads "
    "connect connecting connected open opening respond responding responded reply replied answer answered "
    "answering fix fixed resolve resolved refund refunded help helped helping show showing shown sync syncing "
    "update updated install print charging accept accepted accepting let log login sign access send sent turn "
    "start boot play stream streaming pay process processed credited honored honoured come came turned picked "
    "hear heard gotten got get refunding authorise authorize transfer "
    "funciona funcionan llegado llegó llega recibido fonctionne marche arrivé arrivée reçu livré "
    "funktioniert angekommen geliefert erhalten funziona arrivato arrivata consegnato chegou recebi entregue "
    "werkt aangekomen bezorgd ontvangen".split()
)

# Evidence that something is wrong, beyond plain negative words (which count on their own).
COMPLAINT: dict[str, float] = {
    **_spread(
        1.0,
        "broken outage outages overcharged charged_twice double_charged wrong missing damaged defective faulty "
        "stuck error errors crash crashes crashed crashing bug buggy glitch failed fails failing declined "
        "disconnected still_waiting been_waiting on_hold is_down are_down went_down been_down still_down "
        "down_again keeps_crashing keeps_dropping unacceptable ridiculous terrible worst useless scam "
        "complaint complain lost delayed cancelled canceled late unusable frozen for_nothing funktioniert_nicht "
        "geht_nicht kommt_nicht werkt_niet",
    ),
    **_spread(
        0.5,
        "problem problems issue issues slow dropping dropped locked waiting refund keeps again charged overdue "
        "manager "
        "incorrect blocked",
    ),
    **_spread(0.3, "hours days weeks"),
}

OUTAGE: dict[str, float] = {
    **_spread(
        1.0,
        "outage outages blackout is_down are_down went_down been_down still_down down_again down_for "
        "down_since goes_down keeps_dropping service_interruption network_down servers_down site_down "
        "app_down",
    ),
    **_spread(0.7, "offline interruption disconnected"),
    **_spread(0.3, "dropping dropped"),
}

CHURN: dict[str, float] = {
    **_spread(
        1.0,
        "cancel_my cancelling canceling going_elsewhere switching_to close_my closing_my last_straw "
        "terminate_my port_my my_business",
    ),
    **_spread(0.8, "switch_to to_cancel unsubscribe"),
    **_spread(0.6, "cancel cancellation terminate competitor never_again done_with leaving_you"),
    **_spread(0.4, "switching porting elsewhere quit"),
}

SAFETY: dict[str, float] = {
    **_spread(
        1.0,
        "fraud fraudulent stolen hacked unauthorized unauthorised theft emergency injured injury unsafe "
        "dangerous compromised sparking",
    ),
    # Payments the customer did not make are fraud even when nobody says "fraud".
    **_spread(0.8, "scammed phishing stranded didn't_make don't_recognise don't_recognize someone_used"),
    **_spread(0.6, "medical hospital wheelchair fire leak vulnerable hack"),
    # People who cannot wait as long as others.
    **_spread(0.5, "baby newborn pregnant elderly disabled"),
}

REQUEST: dict[str, float] = {
    **_spread(
        1.0,
        "help please pls plz asap urgent urgently call_me contact_me dm_me escalate assist assistance let_me get_back",
    ),
    **_spread(
        0.7,
        "fix refund compensation compensate reimburse reimbursement replacement explain investigate update_on "
        "respond reply someone 🙏 resolve",
    ),
    **_spread(0.4, "need anyone want support sort"),
}

QUESTION: dict[str, float] = {
    "?": 1.0,
    "¿": 1.0,
    **_spread(
        0.6,
        "how_do how_can how_long how_much how_to when_will when_does is_there can_i could_you do_you "
        "does_anyone anyone_know wondering any_idea any_update where_is where_can what_time",
    ),
    **_spread(0.4, "can_you what's where's"),
}

# A post that opens with one of these is probably a question even without "?" (common on mobile).
QUESTION_STARTERS: frozenset[str] = frozenset(
    "how when where what why who which is are can could do does did will would should has have any "
    "cómo como cuándo cuando dónde donde qué por comment quand où pourquoi est wie wann wo warum kann "
    "quando onde porque come dove perché hoe wanneer waar waarom".split()
)

SPAM: dict[str, float] = {
    **_spread(
        1.0,
        "giveaway giveaways airdrop followback f4f followforfollow follow_back for_follow sub4sub l4l "
        "passive_income in_bio",
    ),
    **_spread(0.6, "forex nft crypto onlyfans winner prize retweet_to rt_to win_a"),
    **_spread(0.4, "bitcoin btc eth earn click claim giveaway_ends my_channel promo invest"),
    **_spread(0.2, "free subscribe investment"),
}

ALL_RULE_TABLES: Mapping[str, Mapping[str, float]] = {
    "valence": VALENCE,
    "complaint": COMPLAINT,
    "outage": OUTAGE,
    "churn": CHURN,
    "safety": SAFETY,
    "request": REQUEST,
    "question": QUESTION,
    "spam": SPAM,
}
