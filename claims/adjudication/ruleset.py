"""Funds' rule sets: data files (``claims/rulesets/<fund>.json``) validated on load.

A fund's rule set has versions with effective dates; the version in force on the date of care
decides the claim, and its name is written on the ledger and the ClaimResponse so every
decision can be explained later by the rules that made it.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CareSetting = Literal["ambulatory", "hospital", "hospital_public", "pharmacy"]
CARE_SETTINGS: tuple[str, ...] = ("ambulatory", "hospital", "hospital_public", "pharmacy")
Rate = Decimal


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_rate(value: Decimal) -> Decimal:
    if not Decimal(0) <= value <= Decimal(1):
        raise ValueError(f"a rate is between 0 and 1, not {value}")
    return value


class LatePolicy(_Model):
    after_days: int = Field(ge=1)  # days between care and receipt beyond which a sheet is late
    action: Literal["penalty", "reject"]
    penalty_rate: Decimal = Decimal(0)  # share of the benefit withheld when action=penalty

    _rate = field_validator("penalty_rate")(_check_rate)


class FrequencyLimit(_Model):
    codes: tuple[str, ...]
    max: int = Field(ge=1)
    window_days: int = Field(ge=1)  # the line's day and the window_days - 1 days before it


class Ceiling(_Model):
    codes: tuple[str, ...]
    amount: Decimal = Field(ge=0)  # the most the fund pays for these codes per window
    window_days: int = Field(ge=1)


class DocumentRule(_Model):
    care_settings: tuple[str, ...]
    category: str  # http://terminology.hl7.org/CodeSystem/claiminformationcategory code
    label_fr: str


class PendRules(_Model):
    amount_above: Decimal | None = None  # a sheet above this total goes to an agent
    suspected_duplicate: bool = True  # same patient, act and day at another provider
    documents: tuple[DocumentRule, ...] = ()


class PreauthRules(_Model):
    care_settings: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    validity_days: int = Field(default=90, ge=1)

    def required(self, care_setting: str, code: str | None) -> bool:
        return care_setting in self.care_settings or (code is not None and code in self.codes)


class ReviewRules(_Model):
    # How long a request for information to the provider may stop the 48-hour clock (0: never).
    clock_pause_max_hours: int = Field(default=0, ge=0)


class Complementary(_Model):
    copay_rate: Decimal  # share of the patient's ticket modérateur a complementary insurer pays

    _rate = field_validator("copay_rate")(_check_rate)


class RulesetVersion(_Model):
    version: str
    effective_from: date
    effective_to: date | None = None  # inclusive; None = open-ended
    rates: dict[str, Decimal] = Field(default_factory=dict)  # care setting -> share of the tariff paid
    regime_rates: dict[str, dict[str, Decimal]] = Field(default_factory=dict)  # regime -> overrides
    ald_rate: Decimal = Decimal(1)
    tiers_payant: tuple[str, ...] = ()  # care settings (or "ald") paid to the provider
    late: LatePolicy | None = None
    pend: PendRules = PendRules()
    preauthorization: PreauthRules = PreauthRules()
    frequency_limits: tuple[FrequencyLimit, ...] = ()
    ceilings: tuple[Ceiling, ...] = ()
    review: ReviewRules = ReviewRules()
    # How long after its decision a claim may be appealed (recours), in days (0: no appeal).
    appeal_window_days: int = Field(default=60, ge=0)
    complementary: Complementary | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "RulesetVersion":
        for setting, rate in self.rates.items():
            if setting not in CARE_SETTINGS:
                raise ValueError(f"unknown care setting {setting!r} in rates")
            _check_rate(rate)
        for regime, overrides in self.regime_rates.items():
            for setting, rate in overrides.items():
                if setting not in CARE_SETTINGS:
                    raise ValueError(f"unknown care setting {setting!r} in regime_rates[{regime}]")
                _check_rate(rate)
        _check_rate(self.ald_rate)
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError(f"{self.version}: effective_to is before effective_from")
        if self.complementary is None and not self.rates:
            raise ValueError(f"{self.version}: a primary fund's version needs rates")
        return self

    def in_force(self, on: date) -> bool:
        return self.effective_from <= on and (self.effective_to is None or on <= self.effective_to)

    def rate(self, care_setting: str, regime: str | None) -> Decimal:
        if regime and care_setting in self.regime_rates.get(regime, {}):
            return self.regime_rates[regime][care_setting]
        return self.rates.get(care_setting, Decimal(0))


class FundRuleset(_Model):
    fund: str  # the fund's code: its https://fhir.sijill.ma/sid/fund identifier (CNSS, CNOPS…)
    name: str
    kind: Literal["primary", "complementary"]
    notes: str = ""  # where the figures come from; SAMPLE rule sets say so here
    versions: tuple[RulesetVersion, ...]

    @model_validator(mode="after")
    def _no_overlap(self) -> "FundRuleset":
        ordered = sorted(self.versions, key=lambda v: v.effective_from)
        for a, b in zip(ordered, ordered[1:]):
            if a.effective_to is None or a.effective_to >= b.effective_from:
                raise ValueError(f"{self.fund}: versions {a.version} and {b.version} overlap")
        if len({v.version for v in self.versions}) != len(self.versions):
            raise ValueError(f"{self.fund}: version names must be unique")
        for v in self.versions:
            if (self.kind == "complementary") != (v.complementary is not None):
                raise ValueError(f"{self.fund}: {v.version} must say how a {self.kind} insurer pays")
        return self

    def version_on(self, on: date) -> RulesetVersion | None:
        return next((v for v in self.versions if v.in_force(on)), None)


class Rulesets:
    """Every fund's rule set, by fund code (case-insensitive)."""

    def __init__(self, funds: dict[str, FundRuleset]) -> None:
        self._funds = {k.upper(): v for k, v in funds.items()}

    def fund(self, code: str) -> FundRuleset | None:
        return self._funds.get(code.upper())

    def version(self, code: str, on: date) -> RulesetVersion | None:
        fund = self.fund(code)
        return fund.version_on(on) if fund else None

    def by_version(self, code: str, version: str) -> RulesetVersion | None:
        fund = self.fund(code)
        return next((v for v in fund.versions if v.version == version), None) if fund else None

    def codes(self) -> list[str]:
        return sorted(self._funds)


def parse_ruleset(data: bytes | dict, source: str = "<data>") -> FundRuleset:
    raw = orjson.loads(data) if isinstance(data, (bytes, str)) else data
    try:
        return FundRuleset.model_validate(raw)
    except ValueError as exc:
        raise ValueError(f"Invalid rule set {source}: {exc}") from None


@lru_cache(maxsize=8)
def load_rulesets(directory: Path) -> Rulesets:
    """Every ``*.json`` directly in ``directory`` is one fund's rule set (sample data lives below)."""
    funds: dict[str, FundRuleset] = {}
    for path in sorted(directory.glob("*.json")):
        rs = parse_ruleset(path.read_bytes(), path.name)
        if rs.fund.upper() in funds:
            raise ValueError(f"Two rule sets for fund {rs.fund}: {path.name}")
        funds[rs.fund.upper()] = rs
    return Rulesets(funds)


def rulesets() -> Rulesets:
    from claims.settings import get_claims_settings

    return load_rulesets(get_claims_settings().rulesets_dir)
