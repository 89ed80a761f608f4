"""The demo doctor's patients are in her care whatever the hour the demo is loaded."""
from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from ehr.demo.story_load import _doctor_visits

CASABLANCA = ZoneInfo("Africa/Casablanca")


def test_the_doctors_visits_are_over_before_the_day_of_loading_begins():
    today = date(2026, 12, 8)
    visits = _doctor_visits([f"pat-1-{i}" for i in range(12)], today)
    midnight = datetime(2026, 12, 8, tzinfo=CASABLANCA)
    assert len(visits) == 12
    for visit in visits:
        start, end = (datetime.fromisoformat(visit["period"][k]) for k in ("start", "end"))
        assert start < end <= midnight  # started (and over) even for a demo loaded at 01:00
