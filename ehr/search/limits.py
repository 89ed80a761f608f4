"""Cost limits of a search request, checked before any SQL: each refusal is a 400 ``too-costly``
naming the limit and the setting that raises it (docs/operations.md "Limits").

The database's statement timeout stops what gets past these; these refuse the shapes known to
be costly whatever the data (hundreds of sort keys, one parameter repeated hundreds of times,
wildcard includes that fan out to every referring resource)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from ehr.outcome import FHIRError
from ehr.search.params import or_values


@dataclass(frozen=True)
class SearchLimits:
    params: int  # parameters of one search, all names together
    values: int  # values of one parameter: its occurrences times its comma-separated alternatives
    sort_keys: int
    includes: int  # _include and _revinclude together
    wildcard_includes: int  # of which "*" or "Type:*"

    @classmethod
    def of(cls, settings) -> "SearchLimits":
        return cls(settings.max_search_params, settings.max_search_param_values, settings.max_sort_keys,
                   settings.max_includes, settings.max_wildcard_includes)

    def as_text(self) -> str:
        """For the CapabilityStatement: what a client must stay within."""
        return (f"Search limits: at most {self.params} parameters, {self.values} values of one parameter, "
                f"{self.sort_keys} _sort keys, {self.includes} _include/_revinclude of which "
                f"{self.wildcard_includes} wildcard (*); larger requests get 400 too-costly.")


def _refuse(what: str, setting: str, where: str) -> FHIRError:
    return FHIRError.of(400, "too-costly", f"{what} (limit {setting}); split the request", f"http.{where}")


def check_search(params: Sequence[tuple[str, str]], limits: SearchLimits | None) -> None:
    if limits is None:
        return
    shaping = {"_format", "_pretty"}
    counted = [(name, value) for name, value in params if name not in shaping]
    if len(counted) > limits.params:
        raise _refuse(f"The search has {len(counted)} parameters, at most {limits.params} are accepted",
                      "SIJILL_MAX_SEARCH_PARAMS", counted[limits.params][0])
    values: Counter[str] = Counter()
    for name, value in counted:
        values[name] += len(or_values(value)) if name != "_sort" else 1
    for name, n in values.items():
        if n > limits.values and not name.startswith(("_include", "_revinclude")):
            raise _refuse(f"{name} has {n} values, at most {limits.values} are accepted",
                          "SIJILL_MAX_SEARCH_PARAM_VALUES", name)
    sort_keys = sum(len([k for k in value.split(",") if k.strip()]) for name, value in counted if name == "_sort")
    if sort_keys > limits.sort_keys:
        raise _refuse(f"_sort has {sort_keys} keys, at most {limits.sort_keys} are accepted", "SIJILL_MAX_SORT_KEYS", "_sort")
    includes = [(name, value) for name, value in counted if name.partition(":")[0] in ("_include", "_revinclude")]
    if len(includes) > limits.includes:
        raise _refuse(f"The search has {len(includes)} _include/_revinclude, at most {limits.includes} are accepted",
                      "SIJILL_MAX_INCLUDES", includes[0][0])
    wildcards = [name for name, value in includes if value == "*" or value.endswith(":*")]
    if len(wildcards) > limits.wildcard_includes:
        raise _refuse(f"The search has {len(wildcards)} wildcard includes (*), at most {limits.wildcard_includes} "
                      "are accepted", "SIJILL_MAX_WILDCARD_INCLUDES", wildcards[0])


def check_bundle_searches(wheres: list[str], limit: int | None) -> None:
    """413 for a batch or transaction Bundle of more searches than ``limit`` (``wheres``: theirs)."""
    if limit is not None and len(wheres) > limit:
        raise FHIRError.of(413, "too-costly", f"The Bundle has {len(wheres)} searches; at most {limit} are accepted "
                           "(limit SIJILL_MAX_BUNDLE_SEARCHES)", wheres[limit])
