"""Rules: PII, topics, the per-post lexicon counts the rules use, and the reasons they give. Pure."""
