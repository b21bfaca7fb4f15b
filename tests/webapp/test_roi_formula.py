"""The ROI calculator's arithmetic against hand computations."""
from __future__ import annotations

from dataclasses import replace

import pytest

from webapp.roi import RoiInputError, RoiInputs, compute_roi, money


def test_defaults_save_42500_per_1000_scans_when_no_scan_needs_review() -> None:
    result = compute_roi(RoiInputs(review_share=0.0))
    # 1000 × (50 − 7.50)
    assert result.savings_per_1000 == pytest.approx(42_500.0)
    assert money(result.savings_per_1000) == "$42,500.00"


def test_defaults_per_month_roi_and_hours_by_hand() -> None:
    result = compute_roi(RoiInputs())  # 5,000 scans a month, nothing flagged
    assert result.savings_per_month == pytest.approx(5000 * 42.5)          # 212,500
    assert result.roi_percent == pytest.approx(42.5 / 7.5 * 100)           # 566.67 %
    assert result.hours_saved_per_month == pytest.approx(5000 * 13 / 60)   # 1,083.3 h
    assert result.staff_time_value_per_month == pytest.approx(5000 * 13 / 60 * 80)
    assert result.cost_without_per_month == pytest.approx(250_000)
    assert result.cost_with_per_month == pytest.approx(37_500)


def test_a_flagged_scan_also_costs_a_manual_read() -> None:
    result = compute_roi(RoiInputs(scans_per_month=2000, review_share=0.2))
    # per scan: 50 − 7.50 − 0.2 × 50 = 32.50
    assert result.savings_per_1000 == pytest.approx(32_500)
    assert result.savings_per_month == pytest.approx(65_000)
    assert result.review_spend_per_month == pytest.approx(2000 * 0.2 * 50)
    assert result.hours_saved_per_month == pytest.approx(2000 * 0.8 * 13 / 60)
    assert result.roi_percent == pytest.approx(32.5 / 7.5 * 100)


def test_when_most_scans_are_flagged_it_costs_money() -> None:
    result = compute_roi(RoiInputs(review_share=0.9))
    # 50 − 7.50 − 45 = −2.50 a scan
    assert result.savings_per_1000 == pytest.approx(-2500)
    assert money(result.savings_per_1000) == "−$2,500.00"


def test_free_automated_reads_have_no_roi_percentage() -> None:
    assert compute_roi(RoiInputs(cost_automated=0)).roi_percent is None


@pytest.mark.parametrize(("change", "message"), [
    ({"scans_per_month": -1}, "Scans per month cannot be negative."),
    ({"cost_manual": None}, "Enter a value for cost per manual read."),
    ({"review_share": 1.5}, "Share flagged for review must be between 0% and 100%."),
])
def test_bad_inputs_are_refused_with_a_message(change: dict, message: str) -> None:
    with pytest.raises(RoiInputError) as error:
        compute_roi(replace(RoiInputs(), **change))
    assert str(error.value) == message
