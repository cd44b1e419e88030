"""Text: tokenising, language detection, the lexicon of cue words, phrase matching. Pure, and the lowest layer."""
