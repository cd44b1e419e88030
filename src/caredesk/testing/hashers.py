"""A password hasher for the test suite only: Django's PBKDF2 with few iterations.

Django's default of 1,000,000 iterations costs about half a second per user on these machines, and the suite
creates users in most tests. The hashes keep the standard ``pbkdf2_sha256$<iterations>$...`` form, so a server or
command started by a test in another process, with the default hashers, still verifies them.
"""

from __future__ import annotations

from django.contrib.auth.hashers import PBKDF2PasswordHasher


class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    iterations = 1_000
