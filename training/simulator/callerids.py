"""Caller identities for the simulated population: mobile numbers and handset IMEIs."""

from __future__ import annotations

import numpy as np

__all__ = ["imeis", "phone_numbers"]

# Indonesian mobile prefixes (0811-0819, 0821-0823, 0851-0859, 0877-0878, 0895-0899 ->
# +62 8xx); 0820 is left out because it is not allocated. Telkomsel's weigh double.
_PREFIXES = np.array(
    [*range(811, 820), *range(821, 824), *range(851, 860), 877, 878, *range(895, 900)]
)
_TELKOMSEL = {811, 812, 813, 821, 822, 823, 851, 852, 853}
_PREFIX_P = np.array([2.0 if p in _TELKOMSEL else 1.0 for p in _PREFIXES])
_PREFIX_P /= _PREFIX_P.sum()


def phone_numbers(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct Indonesian mobile numbers in E.164."""
    numbers: list[str] = []
    seen: set[str] = set()
    while len(numbers) < n:
        k = n - len(numbers)
        prefix = rng.choice(_PREFIXES, size=k, p=_PREFIX_P)
        # Subscriber part: mostly 8 digits (0812-3456-7890), some older 7, some 9.
        length = rng.choice(np.array([7, 8, 9]), size=k, p=[0.15, 0.75, 0.10])
        sub = rng.integers(0, 10**length, dtype=np.int64)
        for p, ln, s in zip(prefix.tolist(), length.tolist(), sub.tolist(), strict=True):
            number = f"+62{p}{s:0{ln}d}"
            if number not in seen:
                seen.add(number)
                numbers.append(number)
    return numbers


def imeis(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct Luhn-valid 15-digit IMEI-like handset ids."""
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < n:
        k = n - len(ids)
        body = rng.integers(0, 10, size=(k, 14))
        # Reporting bodies seen on cheap handsets: 35 (GSMA/BABT) and 86 (China).
        body[:, :2] = np.where(rng.random(k)[:, None] < 0.5, [3, 5], [8, 6])
        doubled = body[:, 1::2] * 2
        total = body[:, 0::2].sum(axis=1) + (doubled // 10 + doubled % 10).sum(axis=1)
        check = (10 - total % 10) % 10
        for row, c in zip(body.tolist(), check.tolist(), strict=True):
            imei = "".join(map(str, row)) + str(c)
            if imei not in seen:
                seen.add(imei)
                ids.append(imei)
    return ids
