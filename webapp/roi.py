"""The ROI calculator's arithmetic, kept apart from the page so that it is tested by hand computation.

The model of costs (stated on the page in the same words, `FORMULA_TEXT`):

- Without TumorScreen every scan gets a manual read: it costs `cost_manual` and takes `minutes_manual`
  of staff time.
- With TumorScreen every scan gets an automated read (`cost_automated`, which includes the quick
  assisted look of `minutes_assisted` at the result). A scan flagged for human review (share
  `review_share`) *also* gets a full manual read: `cost_manual` more and `minutes_manual` instead of
  `minutes_assisted`.

So per scan the saving is `cost_manual − cost_automated − review_share × cost_manual`, and the staff
time saved is `(1 − review_share) × (minutes_manual − minutes_assisted)`. The read costs already pay the
readers, so the value of the freed staff time (hours × staff hourly cost) is shown beside the savings,
never added to them (that would count the same minutes twice).
"""
from __future__ import annotations

from dataclasses import dataclass

FORMULA_TEXT = (
    "Savings per scan = cost per manual read − cost per automated read − review share × cost per manual "
    "read (a scan flagged for review also gets a full manual read). "
    "Savings per 1,000 scans = 1,000 × savings per scan; savings per month = scans per month × savings "
    "per scan. "
    "ROI = savings ÷ spend on automated reads (scans × cost per automated read) × 100%. "
    "Hours saved per month = scans per month × (1 − review share) × (minutes per manual read − minutes "
    "per assisted read) ÷ 60. "
    "Staff time freed is valued at the staff hourly cost and shown apart: the read costs already pay "
    "the readers, so it is not added to the savings."
)


class RoiInputError(ValueError):
    """An input the calculator cannot use; the message is what the user sees."""


@dataclass(frozen=True)
class RoiInputs:
    scans_per_month: float = 5000
    minutes_manual: float = 15
    minutes_assisted: float = 2
    cost_manual: float = 50.0
    cost_automated: float = 7.50
    staff_hourly_cost: float = 80.0
    review_share: float = 0.0  # 0..1


@dataclass(frozen=True)
class RoiResult:
    savings_per_scan: float
    savings_per_1000: float
    savings_per_month: float
    cost_without_per_month: float
    cost_with_per_month: float
    automated_spend_per_month: float
    review_spend_per_month: float
    roi_percent: float | None  # None when nothing is spent on automated reads
    hours_saved_per_month: float
    staff_time_value_per_month: float


def validate(inputs: RoiInputs) -> None:
    fields = {
        "scans per month": inputs.scans_per_month,
        "minutes per manual read": inputs.minutes_manual,
        "minutes per assisted read": inputs.minutes_assisted,
        "cost per manual read": inputs.cost_manual,
        "cost per automated read": inputs.cost_automated,
        "staff hourly cost": inputs.staff_hourly_cost,
    }
    for name, value in fields.items():
        if value is None:
            raise RoiInputError(f"Enter a value for {name}.")
        if value < 0:
            raise RoiInputError(f"{name.capitalize()} cannot be negative.")
    if inputs.review_share is None or not 0 <= inputs.review_share <= 1:
        raise RoiInputError("Share flagged for review must be between 0% and 100%.")


def compute_roi(inputs: RoiInputs) -> RoiResult:
    """Every figure of the calculator from its inputs (see the module docstring for the model)."""
    validate(inputs)
    n, r = inputs.scans_per_month, inputs.review_share
    per_scan = inputs.cost_manual - inputs.cost_automated - r * inputs.cost_manual
    automated = n * inputs.cost_automated
    review = n * r * inputs.cost_manual
    hours = n * (1 - r) * (inputs.minutes_manual - inputs.minutes_assisted) / 60
    return RoiResult(
        savings_per_scan=per_scan,
        savings_per_1000=1000 * per_scan,
        savings_per_month=n * per_scan,
        cost_without_per_month=n * inputs.cost_manual,
        cost_with_per_month=automated + review,
        automated_spend_per_month=automated,
        review_spend_per_month=review,
        roi_percent=(n * per_scan) / automated * 100 if automated > 0 else None,
        hours_saved_per_month=hours,
        staff_time_value_per_month=hours * inputs.staff_hourly_cost,
    )


def money(value: float) -> str:
    """$42,500.00 / −$1,250.00: the one way the page prints an amount (tests read it back)."""
    sign = "−" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"
