"""Cost of platforms that charge per call: prices (:mod:`.prices`, pure), the usage ledger and budgets
(:mod:`.models`, :mod:`.actions`, :mod:`.queries`)."""
